import { ocspRequestSignatureCheck, parseCertificate, verifyCertificateSignature, verifySignatureAsync, type OcspRequestSignature, type ParsedCertificate } from '@pki/x509';

/** A generation this responder answers for, as far as identifying callers goes. */
export interface CallerIssuer {
  keyId: string;
  certificateDer: Uint8Array;
}

export type CallerIdentity = { ok: true; callerKey: string } | { ok: false; reason: string };

interface KnownIssuer {
  keyId: string;
  subjectDer: Buffer;
  spki: Buffer;
}

interface Verdict {
  callerKey?: string;
  reason?: string;
  notBefore: number;
  notAfter: number;
}

/** Certificates whose verdict is remembered (a signed request's certificate is checked once, not per request). */
const CACHE_SIZE = 4096;

/**
 * Who a caller certificate names, for metering (issue 13): a certificate issued by one of the CA
 * generations this responder answers for, checked by signature (generations share one DN, so the
 * name alone says nothing) and validity period. The caller key is the issuer's key identifier and
 * the certificate's serial, both lower-case hex, joined by ':' (OcspUsageEntry.caller_key), which is
 * exactly how ra names an issued certificate (issuer_key_id, serial_hex): ra maps it to a
 * registered application system. Any certificate of ours identifies its holder; whether it belongs
 * to a registered system (and is still in good standing) is ra's call, not the responder's.
 */
export class CallerCertificates {
  readonly #issuers: KnownIssuer[];
  readonly #verdicts = new Map<string, Verdict>();

  constructor(issuers: readonly CallerIssuer[]) {
    this.#issuers = issuers.map((i) => {
      const certificate = parseCertificate(i.certificateDer, 'caller certificates: issuer');
      return { keyId: i.keyId, subjectDer: certificate.subjectDer, spki: certificate.subjectPublicKeyInfo };
    });
  }

  /** Identifies the holder of `certificateDer`; a verdict per distinct certificate is cached. */
  identify(certificateDer: Uint8Array, now = Date.now()): CallerIdentity {
    const cacheKey = Buffer.from(certificateDer.buffer, certificateDer.byteOffset, certificateDer.byteLength).toString('base64');
    let verdict = this.#verdicts.get(cacheKey);
    if (verdict === undefined) {
      verdict = this.#judge(certificateDer);
      if (this.#verdicts.size >= CACHE_SIZE) this.#verdicts.clear();
      this.#verdicts.set(cacheKey, verdict);
    }
    if (verdict.callerKey === undefined) return { ok: false, reason: verdict.reason ?? 'not identified' };
    // RFC 5280 §6.1.3 (a)(2): the certificate must be within its validity period now.
    if (now < verdict.notBefore || now > verdict.notAfter) return { ok: false, reason: 'the certificate is not within its validity period' };
    return { ok: true, callerKey: verdict.callerKey };
  }

  /**
   * An RFC 6960 §4.1.2 signed request: the signature over tbsRequest must verify with the first
   * certificate in `certs`, and that certificate must identify a caller (above). Verified on a
   * libuv worker thread, not on the serving thread's event loop.
   */
  async identifySigner(signature: OcspRequestSignature, now = Date.now()): Promise<CallerIdentity> {
    const signerDer = signature.certs[0];
    if (signerDer === undefined) return { ok: false, reason: 'the signed request carries no certificate to verify it with' };
    const identity = this.identify(signerDer, now);
    if (!identity.ok) return identity;
    let signer: ParsedCertificate;
    try {
      signer = parseCertificate(signerDer, 'signed OCSP request');
      const valid = await verifySignatureAsync(ocspRequestSignatureCheck(signature, signer.subjectPublicKeyInfo), 'signed OCSP request');
      return valid ? identity : { ok: false, reason: 'the request signature does not verify with its certificate' };
    } catch (err) {
      return { ok: false, reason: (err as Error).message };
    }
  }

  #judge(certificateDer: Uint8Array): Verdict {
    let certificate: ParsedCertificate;
    try {
      certificate = parseCertificate(certificateDer, 'caller certificate');
    } catch {
      return { reason: 'not a certificate', notBefore: 0, notAfter: 0 };
    }
    const times = { notBefore: certificate.notBefore.getTime(), notAfter: certificate.notAfter.getTime() };
    if (certificate.basicConstraints?.ca) return { reason: 'a CA certificate does not identify a caller', ...times };
    for (const issuer of this.#issuers) {
      if (!certificate.issuerDer.equals(issuer.subjectDer)) continue;
      try {
        if (verifyCertificateSignature(certificate, issuer.spki)) return { callerKey: `${issuer.keyId}:${certificate.serialNumber.toString('hex')}`, ...times };
      } catch {
        // an algorithm that does not fit this generation's key: try the next one
      }
    }
    return { reason: 'the certificate was not issued by a CA generation of this responder', ...times };
  }
}
