import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificationRequest } from '@peculiar/asn1-csr';
import { PkiError } from '@pki/kit';
import { parseName, type ParsedNameAttribute } from './name';
import { type PublicKeyDescription, describePublicKey } from './public-key';
import { verifySignature } from './signature-verification';

export interface ParsedCsr {
  subject: ParsedNameAttribute[];
  /** SubjectPublicKeyInfo DER of the requested key. */
  subjectPublicKeyInfo: Buffer;
  publicKey: PublicKeyDescription;
  /** Whether the request is signed by the private key of `subjectPublicKeyInfo` (proof of possession). */
  signatureValid: boolean;
}

/**
 * Parses a PKCS#10 certification request (RFC 2986) and checks its self-signature over the
 * certificationRequestInfo bytes exactly as received. Malformed input, an unsupported key or an
 * unsupported signature algorithm is INVALID_ARGUMENT "parse CSR: ..."; a well-formed request with
 * a wrong signature parses with `signatureValid: false`.
 */
export function parseCsr(der: Uint8Array): ParsedCsr {
  const operation = 'parse CSR';
  if (!(der instanceof Uint8Array) || der.length === 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: request is empty`);
  let csr: CertificationRequest;
  try {
    csr = AsnConvert.parse(der, CertificationRequest);
  } catch (err) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: not a DER PKCS#10 request`, { cause: err });
  }
  const info = csr.certificationRequestInfoRaw;
  if (info === undefined) throw new PkiError('INTERNAL', `${operation}: the parser kept no certificationRequestInfo bytes`);
  // RFC 2986 §4.1: version MUST be 0 (v1).
  if (csr.certificationRequestInfo.version !== 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: unsupported version`);
  const subjectPublicKeyInfo = Buffer.from(AsnConvert.serialize(csr.certificationRequestInfo.subjectPKInfo));
  const publicKey = describePublicKey(subjectPublicKeyInfo, operation);
  const signatureValid = verifySignature(
    { publicKeySpki: subjectPublicKeyInfo, algorithm: csr.signatureAlgorithm, data: new Uint8Array(info), signature: new Uint8Array(csr.signature) },
    operation,
  );
  return { subject: parseName(csr.certificationRequestInfo.subject), subjectPublicKeyInfo, publicKey, signatureValid };
}
