import { createHash, createPublicKey, type KeyObject, verify } from 'node:crypto';
import type { PersonalDataVault } from '@pki/ra';
import * as der from './der';

/**
 * The CPU work of the pre-pass for one batch of certificate lines: parse, verify against the old
 * issuer, seal as ra seals (decision 0021). Pure, so it runs the same in the importer's thread
 * and in the worker threads that spread it over the cores (stage-worker.ts).
 */
export interface CertificateLine {
  line: number;
  serial: string;
  b64: string;
}

export interface IssuerKey {
  keyId: string;
  generation: string;
  spki: Buffer;
}

export interface PreparedBatch {
  /** Rows for legacy_import.certificates, in column order (export_id first). */
  rows: unknown[][];
  duplicates: Array<{ serialHex: string; line: number; firstLine: number }>;
  errors: Array<{ location: string; problem: string }>;
}

export class CertificateBatchPreparer {
  readonly #issuers: Map<string, IssuerKey & { key: KeyObject }>;

  constructor(
    issuers: IssuerKey[],
    private readonly vault: PersonalDataVault,
    private readonly exportId: string,
  ) {
    this.#issuers = new Map(issuers.map((i) => [i.keyId, { ...i, key: createPublicKey({ key: i.spki, format: 'der', type: 'spki' }) }]));
  }

  prepare(lines: CertificateLine[]): PreparedBatch {
    const out: PreparedBatch = { rows: [], duplicates: [], errors: [] };
    const seen = new Map<string, { sha: Buffer; line: number }>();
    for (const { line, serial, b64 } of lines) {
      const where = `certificates.txt:${line}`;
      const bytes = Buffer.from(b64, 'base64');
      let cert: der.CertificateFields;
      try {
        if (bytes.toString('base64') !== b64) throw new der.DerError('not canonical base64');
        cert = der.readCertificate(bytes);
      } catch (err) {
        out.errors.push({ location: where, problem: `not a DER certificate in base64 (${(err as Error).message})` });
        continue;
      }
      if (cert.serialHex !== serial.toLowerCase()) out.errors.push({ location: where, problem: `the serial column (${serial}) differs from the certificate's serial ${cert.serialHex}` });
      const issuer = cert.authorityKeyId ? this.#issuers.get(cert.authorityKeyId) : undefined;
      if (!issuer) {
        out.errors.push({ location: where, problem: `issued by key ${cert.authorityKeyId ?? '(no authorityKeyIdentifier)'}, which is none of the export's generations` });
        continue;
      }
      const sha = createHash('sha256').update(bytes).digest();
      const first = seen.get(cert.serialHex);
      if (first) {
        if (first.sha.equals(sha)) out.duplicates.push({ serialHex: cert.serialHex, line, firstLine: first.line });
        else out.errors.push({ location: where, problem: `serial ${cert.serialHex} is also line ${first.line}, with another certificate` });
        continue;
      }
      seen.set(cert.serialHex, { sha, line });
      if (!verify('sha256', cert.tbs, issuer.key, cert.signature)) {
        out.errors.push({ location: where, problem: `its signature does not verify against generation ${issuer.generation}'s key` });
        continue;
      }
      const sealed = this.vault.seal('certificate', cert.serialHex, bytes);
      out.rows.push([this.exportId, cert.serialHex, issuer.generation, issuer.keyId, cert.notBefore, cert.notAfter, cert.subjectSerialNumber ?? null, Buffer.from(cert.spki), sha, sealed.ciphertext, sealed.keyId, line]);
    }
    return out;
  }
}
