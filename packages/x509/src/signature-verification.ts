import { constants, verify } from 'node:crypto';
import type { AlgorithmIdentifier } from '@peculiar/asn1-x509';
import { PkiError } from '@pki/kit';
import { describePublicKey, publicKeyObject } from './public-key';
import { verificationParametersOf } from './signature-algorithm';

export interface SignatureCheck {
  /** SPKI DER of the key that supposedly signed. */
  publicKeySpki: Uint8Array;
  /** The signature AlgorithmIdentifier as it appears in the signed object. */
  algorithm: AlgorithmIdentifier;
  /** The exact signed bytes (DER of the TBS part as received, never a re-encoding). */
  data: Uint8Array;
  /** For ECDSA the DER Ecdsa-Sig-Value, as X.509 carries it. */
  signature: Uint8Array;
}

/**
 * Verifies a signature with OpenSSL through node's crypto. Returns false for a wrong signature;
 * throws INVALID_ARGUMENT when the algorithm is unsupported or does not fit the key.
 */
export function verifySignature(check: SignatureCheck, operation = 'verify signature'): boolean {
  const params = verificationParametersOf(check.algorithm, operation);
  const keyType = describePublicKey(check.publicKeySpki, operation).type;
  if (keyType !== params.keyType) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: a ${params.keyType} signature algorithm cannot be used with an ${keyType} key`);
  }
  const key = publicKeyObject(check.publicKeySpki, operation);
  if (params.keyType === 'EC') return verify(params.hash, check.data, { key, dsaEncoding: 'der' }, check.signature);
  if (params.pssSaltLength !== undefined) {
    return verify(params.hash, check.data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: params.pssSaltLength }, check.signature);
  }
  return verify(params.hash, check.data, { key, padding: constants.RSA_PKCS1_PADDING }, check.signature);
}
