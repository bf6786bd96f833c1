import { PkiError } from '@pki/kit';
import { assembleCertificate, describePublicKey, type PublicKeyDescription, type SignatureAlgorithm, verifyCertificateSignatureDer } from '@pki/x509';
import type { KeyManager } from '../ports/key-manager';

/**
 * The algorithm a CA key signs with. RSA CA keys use PKCS#1 v1.5 with SHA-256, as the citizen
 * CA's G2 and G3 generations do (domain.md); EC keys use the hash matching the curve size.
 */
export function signatureAlgorithmForIssuerKey(key: PublicKeyDescription): SignatureAlgorithm {
  if (key.type === 'RSA') return 'RSA-SHA256';
  return key.curve === 'P-384' ? 'ECDSA-SHA384' : 'ECDSA-SHA256';
}

/** Same, from the issuer's SubjectPublicKeyInfo. */
export function signatureAlgorithmForIssuerSpki(issuerSpki: Uint8Array): SignatureAlgorithm {
  return signatureAlgorithmForIssuerKey(describePublicKey(issuerSpki, 'choose signature algorithm'));
}

/**
 * Signs a TBSCertificate in the key manager and assembles the certificate, then verifies the
 * result against the issuer's public key before anyone sees it. The check catches a keyId that
 * does not belong to the issuer certificate and faulty HSM output (an RSA-CRT fault would leak
 * the private key if the signature were published).
 */
export async function signCertificate(
  keyManager: KeyManager,
  request: { issuerKeyId: string; issuerSpki: Uint8Array; algorithm: SignatureAlgorithm; tbsDer: Buffer },
  operation: string,
): Promise<Buffer> {
  const { signature } = await keyManager.sign({ keyId: request.issuerKeyId, algorithm: request.algorithm, data: request.tbsDer });
  const certificateDer = assembleCertificate(request.tbsDer, request.algorithm, signature);
  // Read back from the certificate's own bytes, as a relying party will read them.
  if (!verifyCertificateSignatureDer(certificateDer, request.issuerSpki, operation)) {
    throw new PkiError('INTERNAL', `${operation}: the signature made with key ${request.issuerKeyId} does not verify with the issuer's public key`);
  }
  return certificateDer;
}

/** notBefore for a certificate made now: X.509 times have whole seconds (RFC 5280 §4.1.2.5). */
export function wholeSecond(date: Date): Date {
  return new Date(Math.floor(date.getTime() / 1000) * 1000);
}

/** `date` plus whole calendar years, in UTC (29 February becomes 1 March in common years). */
export function addYears(date: Date, years: number): Date {
  const result = new Date(date.getTime());
  result.setUTCFullYear(result.getUTCFullYear() + years);
  return result;
}
