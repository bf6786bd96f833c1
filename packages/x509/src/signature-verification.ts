import { constants, createVerify, verify } from 'node:crypto';
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

type VerifyKey = Parameters<typeof verify>[2];

/** The hash and key argument of node's crypto.verify for a check, after the algorithm and key agree. */
function prepare(check: SignatureCheck, operation: string): { hash: string; key: VerifyKey } {
  const params = verificationParametersOf(check.algorithm, operation);
  const keyType = describePublicKey(check.publicKeySpki, operation).type;
  if (keyType !== params.keyType) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: a ${params.keyType} signature algorithm cannot be used with an ${keyType} key`);
  }
  const key = publicKeyObject(check.publicKeySpki, operation);
  // The KeyObject alone where node's defaults are what we want (DER ECDSA signatures, PKCS#1 v1.5
  // padding): an options object costs node a slower key lookup on every call.
  if (params.pssSaltLength !== undefined) {
    return { hash: params.hash, key: { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: params.pssSaltLength } };
  }
  return { hash: params.hash, key };
}

/**
 * Verifies a signature with OpenSSL through node's crypto. Returns false for a wrong signature;
 * throws INVALID_ARGUMENT when the algorithm is unsupported or does not fit the key.
 */
export function verifySignature(check: SignatureCheck, operation = 'verify signature'): boolean {
  const { hash, key } = prepare(check, operation);
  return verify(hash, check.data, key, check.signature);
}

/**
 * {@link verifySignature} on a libuv worker thread (crypto.verify with a callback), for hot paths
 * that would otherwise spend the event loop on it: an ECDSA P-256 verification costs more than
 * building and wrapping the OCSP response it checks.
 */
export async function verifySignatureAsync(check: SignatureCheck, operation = 'verify signature'): Promise<boolean> {
  const { hash, key } = prepare(check, operation);
  return new Promise((resolve, reject) =>
    verify(hash, check.data, key, check.signature, (err, valid) => (err ? reject(new PkiError('INTERNAL', `${operation}: ${err.message}`, { cause: err })) : resolve(valid))),
  );
}

/**
 * A signature check over data that arrives in pieces (a CRL of millions of entries, checked as it
 * streams past): `update` with each piece in order, then `verify` once with the signature.
 */
export interface StreamingSignatureVerifier {
  update(data: Uint8Array): void;
  verify(signature: Uint8Array): boolean;
}

export function streamingSignatureVerifier(check: Omit<SignatureCheck, 'data' | 'signature'>, operation = 'verify signature'): StreamingSignatureVerifier {
  const { hash, key } = prepare({ ...check, data: new Uint8Array(0), signature: new Uint8Array(0) }, operation);
  const verifier = createVerify(hash);
  return {
    update: (data) => void verifier.update(data),
    verify: (signature) => verifier.verify(key as Parameters<typeof verifier.verify>[0], signature),
  };
}
