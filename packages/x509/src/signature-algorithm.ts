import { AsnConvert } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier } from '@peculiar/asn1-x509';
import { RsaSaPssParams } from '@peculiar/asn1-rsa';
import { PkiError } from '@pki/kit';
import * as oid from './oids';

/** The signature algorithms the CA signs with; the names are what the key manager port takes. */
export const SignatureAlgorithms = ['RSA-SHA256', 'RSA-PSS-SHA256', 'ECDSA-SHA256', 'ECDSA-SHA384'] as const;
export type SignatureAlgorithm = (typeof SignatureAlgorithms)[number];

export function isSignatureAlgorithm(value: unknown): value is SignatureAlgorithm {
  return typeof value === 'string' && (SignatureAlgorithms as readonly string[]).includes(value);
}

/**
 * RFC 4055 §2.1: hash AlgorithmIdentifiers inside RSASSA-PSS parameters carry NULL parameters
 * ("the following algorithm identifiers are used when a NULL parameter MUST be present").
 */
function hashWithNull(algorithm: string): AlgorithmIdentifier {
  return new AlgorithmIdentifier({ algorithm, parameters: null });
}

/**
 * The AlgorithmIdentifier written into TBSCertificate.signature and Certificate.signatureAlgorithm
 * (RFC 5280 §4.1.1.2: both fields MUST be identical). A fresh object each call: the @peculiar
 * constants are shared mutable instances.
 */
export function signatureAlgorithmIdentifier(algorithm: SignatureAlgorithm): AlgorithmIdentifier {
  switch (algorithm) {
    case 'RSA-SHA256':
      // RFC 4055 §5: sha256WithRSAEncryption parameters MUST be NULL.
      return new AlgorithmIdentifier({ algorithm: oid.id_sha256WithRSAEncryption, parameters: null });
    case 'RSA-PSS-SHA256': {
      // RFC 4055 §3.1 / RFC 8017 A.2.3: SHA-256, MGF1 with SHA-256, 32-byte salt, trailer 1.
      const params = new RsaSaPssParams({
        hashAlgorithm: hashWithNull(oid.id_sha256),
        maskGenAlgorithm: new AlgorithmIdentifier({
          algorithm: oid.id_mgf1,
          parameters: AsnConvert.serialize(hashWithNull(oid.id_sha256)),
        }),
        saltLength: 32,
      });
      return new AlgorithmIdentifier({ algorithm: oid.id_RSASSA_PSS, parameters: AsnConvert.serialize(params) });
    }
    case 'ECDSA-SHA256':
      // RFC 5758 §3.2: the parameters field MUST be absent for ecdsa-with-SHA256/384.
      return new AlgorithmIdentifier({ algorithm: oid.id_ecdsaWithSHA256 });
    case 'ECDSA-SHA384':
      return new AlgorithmIdentifier({ algorithm: oid.id_ecdsaWithSHA384 });
  }
}

/** What node's crypto.verify needs for one AlgorithmIdentifier. */
export interface VerificationParameters {
  keyType: 'RSA' | 'EC';
  hash: 'sha256' | 'sha384' | 'sha512';
  /** Present for RSASSA-PSS. */
  pssSaltLength?: number;
}

const HASH_BY_OID: Record<string, VerificationParameters['hash']> = {
  [oid.id_sha256]: 'sha256',
  [oid.id_sha384]: 'sha384',
  [oid.id_sha512]: 'sha512',
};

/**
 * Interprets a signature AlgorithmIdentifier read from a CSR or certificate. Only algorithms a
 * relying party of this PKI accepts are understood (no SHA-1, no MD5): anything else is refused.
 */
export function verificationParametersOf(identifier: AlgorithmIdentifier, operation: string): VerificationParameters {
  switch (identifier.algorithm) {
    case oid.id_sha256WithRSAEncryption:
      return { keyType: 'RSA', hash: 'sha256' };
    case '1.2.840.113549.1.1.12': // sha384WithRSAEncryption (RFC 4055 §5)
      return { keyType: 'RSA', hash: 'sha384' };
    case '1.2.840.113549.1.1.13': // sha512WithRSAEncryption (RFC 4055 §5)
      return { keyType: 'RSA', hash: 'sha512' };
    case oid.id_ecdsaWithSHA256:
      return { keyType: 'EC', hash: 'sha256' };
    case oid.id_ecdsaWithSHA384:
      return { keyType: 'EC', hash: 'sha384' };
    case oid.id_RSASSA_PSS:
      return pssParametersOf(identifier, operation);
    default:
      throw new PkiError('INVALID_ARGUMENT', `${operation}: unsupported signature algorithm ${identifier.algorithm}`);
  }
}

function pssParametersOf(identifier: AlgorithmIdentifier, operation: string): VerificationParameters {
  if (!identifier.parameters) {
    // RFC 4055 §3.1 defaults are SHA-1 and MGF1-SHA-1: not accepted.
    throw new PkiError('INVALID_ARGUMENT', `${operation}: RSASSA-PSS without parameters means SHA-1, which is not accepted`);
  }
  let params: RsaSaPssParams;
  try {
    params = AsnConvert.parse(identifier.parameters, RsaSaPssParams);
  } catch (err) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: malformed RSASSA-PSS parameters`, { cause: err });
  }
  const hash = HASH_BY_OID[params.hashAlgorithm.algorithm];
  if (hash === undefined) throw new PkiError('INVALID_ARGUMENT', `${operation}: unsupported RSASSA-PSS hash ${params.hashAlgorithm.algorithm}`);
  if (params.maskGenAlgorithm.algorithm !== oid.id_mgf1 || !params.maskGenAlgorithm.parameters) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: RSASSA-PSS mask generation must be MGF1`);
  }
  const mgfHash = AsnConvert.parse(params.maskGenAlgorithm.parameters, AlgorithmIdentifier).algorithm;
  // Node's verifier uses the message hash for MGF1; a different MGF1 hash cannot be checked.
  if (HASH_BY_OID[mgfHash] !== hash) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: RSASSA-PSS MGF1 hash differs from the message hash`);
  }
  if (params.trailerField !== 1) throw new PkiError('INVALID_ARGUMENT', `${operation}: RSASSA-PSS trailer field must be 1`);
  return { keyType: 'RSA', hash, pssSaltLength: params.saltLength };
}

/** DER of {@link signatureAlgorithmIdentifier}: the exact bytes a TBS carries for `algorithm`. */
export function signatureAlgorithmIdentifierDer(algorithm: SignatureAlgorithm): Buffer {
  return Buffer.from(algorithmIdentifierDer(algorithm));
}

// Encoded once per algorithm by the schema layer; shared, so never handed out to be written to.
const identifierDers = new Map<SignatureAlgorithm, Buffer>();

/** {@link signatureAlgorithmIdentifierDer} without the copy, for this package's encoders (read only). */
export function algorithmIdentifierDer(algorithm: SignatureAlgorithm): Buffer {
  let der = identifierDers.get(algorithm);
  if (der === undefined) {
    if (!isSignatureAlgorithm(algorithm)) throw new PkiError('INVALID_ARGUMENT', `encode signature algorithm: unknown algorithm '${String(algorithm)}'`);
    identifierDers.set(algorithm, (der = Buffer.from(AsnConvert.serialize(signatureAlgorithmIdentifier(algorithm)))));
  }
  return der;
}

/**
 * Which of the CA's signature algorithms an AlgorithmIdentifier's DER is, byte for byte; undefined
 * for anything else (another algorithm, or the right OID with other or wrongly encoded parameters).
 */
export function signatureAlgorithmOfDer(der: Uint8Array): SignatureAlgorithm | undefined {
  const bytes = Buffer.from(der.buffer, der.byteOffset, der.byteLength);
  return SignatureAlgorithms.find((algorithm) => algorithmIdentifierDer(algorithm).equals(bytes));
}
