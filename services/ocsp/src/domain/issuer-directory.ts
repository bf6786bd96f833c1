import { createHash } from 'node:crypto';
import { PkiError } from '@pki/kit';
import { parseCertificate, publicKeyBits, type CertIdHash, type ParsedCertificate } from '@pki/x509';

/** What a serving thread needs to match a CertID to a CA generation (RFC 6960 §4.1.1). */
export interface IssuerEntry {
  index: number;
  keyId: string;
  /** Hex of SHA-1 / SHA-256 over the issuer's subject DER and public key bits, per CertID hash. */
  nameHash: Record<CertIdHash, string>;
  keyHash: Record<CertIdHash, string>;
  /** The generation's certificate: callers' certificates (mTLS, signed requests) are checked against it. */
  certificateDer: Uint8Array;
}

/** A delegated responder whose certificate pre-produced responses carry; shared by all its responses. */
export interface ResponderEntry {
  index: number;
  certificateDer: Uint8Array;
  signatureAlgorithmDer: Uint8Array;
}

/** The directory as sent to the serving threads (structured-clone friendly). */
export interface DirectorySnapshot {
  issuers: IssuerEntry[];
  responders: ResponderEntry[];
}

export interface IssuerRecord {
  keyId: string;
  certificateDer: Buffer;
  certificate: ParsedCertificate;
  /** The active delegated responder certificate, as ca-signer last said. */
  responderCertificateDer?: Buffer;
  responderCertificate?: ParsedCertificate;
}

const NODE_HASH: Record<CertIdHash, string> = { SHA1: 'sha1', SHA256: 'sha256' };
const hashHex = (algorithm: CertIdHash, data: Uint8Array) => createHash(NODE_HASH[algorithm]).update(data).digest('hex');

/**
 * The CA generations this responder answers for, and the responder certificates its stored
 * responses carry. Generations share one subject DN (domain.md), so a CertID is matched on its
 * issuer name hash AND key hash, never on the name alone. Indexes are small integers that the
 * shared store keeps per record; they only grow (a generation or responder seen once keeps its
 * index for the life of the process).
 */
export class IssuerDirectory {
  readonly #issuers = new Map<string, IssuerRecord & { index: number }>();
  readonly #responders = new Map<string, ResponderEntry>();
  #version = 0;

  /** Adds or updates a generation; returns true when the directory changed. */
  setIssuer(keyId: string, certificateDer: Buffer, responderCertificateDer?: Buffer): boolean {
    const existing = this.#issuers.get(keyId);
    if (existing && existing.certificateDer.equals(certificateDer) && (existing.responderCertificateDer?.equals(responderCertificateDer ?? Buffer.alloc(0)) ?? responderCertificateDer === undefined)) return false;
    if (!existing && this.#issuers.size >= 255) throw new PkiError('RESOURCE_EXHAUSTED', 'issuer directory: more than 255 CA generations');
    const certificate = parseCertificate(certificateDer, 'issuer directory');
    const record = {
      keyId,
      certificateDer,
      certificate,
      index: existing?.index ?? this.#issuers.size,
      ...(responderCertificateDer && responderCertificateDer.length > 0 ? { responderCertificateDer, responderCertificate: parseCertificate(responderCertificateDer, 'issuer directory: responder') } : {}),
    };
    this.#issuers.set(keyId, record);
    this.#version++;
    return true;
  }

  issuer(keyId: string): (IssuerRecord & { index: number }) | undefined {
    return this.#issuers.get(keyId);
  }

  issuerByIndex(index: number): (IssuerRecord & { index: number }) | undefined {
    for (const issuer of this.#issuers.values()) if (issuer.index === index) return issuer;
    return undefined;
  }

  issuers(): Array<IssuerRecord & { index: number }> {
    return [...this.#issuers.values()];
  }

  /** The index of a responder certificate with its signature algorithm, registered on first sight. */
  responderIndex(certificateDer: Uint8Array, signatureAlgorithmDer: Uint8Array): { index: number; added: boolean } {
    const key = `${createHash('sha256').update(certificateDer).digest('hex')}/${Buffer.from(signatureAlgorithmDer).toString('hex')}`;
    const known = this.#responders.get(key);
    if (known) return { index: known.index, added: false };
    if (this.#responders.size >= 0xffff) throw new PkiError('RESOURCE_EXHAUSTED', 'issuer directory: too many responder certificates');
    const entry = { index: this.#responders.size, certificateDer: Buffer.from(certificateDer), signatureAlgorithmDer: Buffer.from(signatureAlgorithmDer) };
    this.#responders.set(key, entry);
    this.#version++;
    return { index: entry.index, added: true };
  }

  get version(): number {
    return this.#version;
  }

  snapshot(): DirectorySnapshot {
    return {
      issuers: this.issuers().map((i) => {
        const bits = publicKeyBits(i.certificate.subjectPublicKeyInfo);
        return {
          index: i.index,
          keyId: i.keyId,
          nameHash: { SHA1: hashHex('SHA1', i.certificate.subjectDer), SHA256: hashHex('SHA256', i.certificate.subjectDer) },
          keyHash: { SHA1: hashHex('SHA1', bits), SHA256: hashHex('SHA256', bits) },
          certificateDer: i.certificateDer,
        };
      }),
      responders: [...this.#responders.values()].sort((a, b) => a.index - b.index),
    };
  }
}

/** Finds the generation a CertID names: by name hash and key hash together. */
export class IssuerMatcher {
  readonly #byHashes = new Map<string, IssuerEntry>();

  constructor(snapshot: DirectorySnapshot) {
    for (const issuer of snapshot.issuers) {
      for (const hash of ['SHA1', 'SHA256'] as const) this.#byHashes.set(`${hash}:${issuer.nameHash[hash]}:${issuer.keyHash[hash]}`, issuer);
    }
  }

  match(hash: CertIdHash, issuerNameHash: Buffer, issuerKeyHash: Buffer): IssuerEntry | undefined {
    return this.#byHashes.get(`${hash}:${issuerNameHash.toString('hex')}:${issuerKeyHash.toString('hex')}`);
  }
}
