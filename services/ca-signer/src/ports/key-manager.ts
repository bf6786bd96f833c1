import { PkiError } from '@pki/kit';
import { type EcCurve, isSignatureAlgorithm, type SignatureAlgorithm } from '@pki/x509';

export type { SignatureAlgorithm };

/** The CA key types this signer makes. RSA sizes below 2048 are not offered at all. */
export type CaKeySpec = { type: 'RSA'; bits: 2048 | 3072 | 4096 } | { type: 'EC'; curve: EcCurve };

export interface GenerateKeyPairRequest {
  /** CKA_LABEL: a human name for the key, e.g. "citizen-ca-g3-2025". */
  label: string;
  spec: CaKeySpec;
}

export interface GenerateKeyPairResponse {
  /** Lower-case hex of CKA_ID; the key's identity for every later call. */
  keyId: string;
  /** SubjectPublicKeyInfo DER. */
  publicKeySpki: Buffer;
}

export interface GetPublicKeyRequest {
  keyId: string;
}

export interface GetPublicKeyResponse {
  publicKeySpki: Buffer;
}

export interface SignRequest {
  keyId: string;
  algorithm: SignatureAlgorithm;
  /** The bytes to sign (a TBS structure); hashing is part of the algorithm. */
  data: Uint8Array;
}

/**
 * Signs a digest computed outside the HSM: for data too large to pass whole (a CRL of millions of
 * entries is hashed as it streams through the signer). `digest` is the algorithm's own hash of the
 * data (SHA-256, or SHA-384 for ECDSA-SHA384); the signature is the one {@link KeyManager.sign}
 * would make over the data.
 */
export interface SignDigestRequest {
  keyId: string;
  algorithm: SignatureAlgorithm;
  digest: Uint8Array;
}

export interface SignResponse {
  /** The signature as X.509 carries it: RSA octets, or for ECDSA the DER Ecdsa-Sig-Value. */
  signature: Buffer;
}

export interface KeyManagerHealth {
  healthy: boolean;
  /** Why not, in words safe to log (never the PIN). */
  detail: string;
}

/**
 * Where the CA's private keys live. One request object in, one response out (smallstep's
 * kms.KeyManager shape), so a network HSM, SoftHSM and the in-memory fake are interchangeable.
 *
 * Errors are PkiErrors: INVALID_ARGUMENT for a bad request (malformed keyId, algorithm that does
 * not fit the key), NOT_FOUND for an unknown key, UNAVAILABLE when the HSM cannot be reached or a
 * session died (retry later), INTERNAL otherwise. A failed call signs nothing.
 */
export interface KeyManager {
  generateKeyPair(request: GenerateKeyPairRequest): Promise<GenerateKeyPairResponse>;
  getPublicKey(request: GetPublicKeyRequest): Promise<GetPublicKeyResponse>;
  sign(request: SignRequest): Promise<SignResponse>;
  healthCheck(): Promise<KeyManagerHealth>;
  /** Finishes in-flight operations, then releases the HSM. Later calls fail with UNAVAILABLE. */
  close(): Promise<void>;
}

/**
 * An optional capability (smallstep's pattern: one small interface per capability): signing a
 * digest made outside the HSM, for data too large to pass whole. The PKCS#11 adapter, the
 * circuit breaker around it and the fake have it; CRL signing requires it.
 */
export interface DigestSigningKeyManager extends KeyManager {
  signDigest(request: SignDigestRequest): Promise<SignResponse>;
}

export function supportsDigestSigning(keyManager: KeyManager): keyManager is DigestSigningKeyManager {
  return typeof (keyManager as Partial<DigestSigningKeyManager>).signDigest === 'function';
}

/** The key type a signature algorithm needs. */
export function keyTypeOfAlgorithm(algorithm: SignatureAlgorithm): 'RSA' | 'EC' {
  return algorithm.startsWith('RSA') ? 'RSA' : 'EC';
}

// CKA_ID is a byte string; this signer makes 16-byte ids but accepts any id an HSM vendor tool
// made (1 to 64 bytes), written as hex.
const KEY_ID = /^(?:[0-9a-f]{2}){1,64}$/;

/** Checks a keyId and returns its CKA_ID bytes. */
export function keyIdBytes(keyId: unknown, operation: string): Buffer {
  if (typeof keyId !== 'string' || !KEY_ID.test(keyId)) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: keyId must be 1 to 64 bytes in lower-case hex`);
  }
  return Buffer.from(keyId, 'hex');
}

/** Checks a key generation request; shared by every adapter so they refuse the same things. */
export function validateGenerateKeyPairRequest(request: GenerateKeyPairRequest, operation: string): void {
  if (typeof request.label !== 'string' || request.label.length === 0 || Buffer.byteLength(request.label) > 128) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: label must be 1 to 128 bytes`);
  }
  const spec = request.spec as { type?: unknown; bits?: unknown; curve?: unknown } | undefined;
  const ok =
    (spec?.type === 'RSA' && (spec.bits === 2048 || spec.bits === 3072 || spec.bits === 4096)) ||
    (spec?.type === 'EC' && (spec.curve === 'P-256' || spec.curve === 'P-384'));
  if (!ok) throw new PkiError('INVALID_ARGUMENT', `${operation}: key spec must be RSA 2048/3072/4096 or EC P-256/P-384`);
}

/** Checks the parts of a sign request that do not depend on the key. */
export function validateSignRequest(request: SignRequest, operation: string): Buffer {
  const id = keyIdBytes(request.keyId, operation);
  if (!isSignatureAlgorithm(request.algorithm)) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: unsupported signature algorithm '${String(request.algorithm)}'`);
  }
  if (!(request.data instanceof Uint8Array) || request.data.length === 0) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: data must be non-empty bytes`);
  }
  return id;
}

/** The hash each algorithm signs, and its digest length in octets. */
export function digestOfAlgorithm(algorithm: SignatureAlgorithm): { hash: 'sha256' | 'sha384'; length: number } {
  return algorithm === 'ECDSA-SHA384' ? { hash: 'sha384', length: 48 } : { hash: 'sha256', length: 32 };
}

/** Checks a digest-signing request; returns the CKA_ID bytes. */
export function validateSignDigestRequest(request: SignDigestRequest, operation: string): Buffer {
  const id = keyIdBytes(request.keyId, operation);
  if (!isSignatureAlgorithm(request.algorithm)) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: unsupported signature algorithm '${String(request.algorithm)}'`);
  }
  const { length, hash } = digestOfAlgorithm(request.algorithm);
  if (!(request.digest instanceof Uint8Array) || request.digest.length !== length) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: a ${request.algorithm} digest is ${length} octets of ${hash.toUpperCase()}`);
  }
  return id;
}

/** DigestInfo (RFC 8017 §9.2) of a SHA-256 digest: what RSASSA-PKCS1-v1_5 pads and signs. */
export function sha256DigestInfo(digest: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from('3031300d060960864801650304020105000420', 'hex'), digest]);
}

/** INVALID_ARGUMENT when the key cannot make signatures of this algorithm. */
export function assertAlgorithmFitsKey(algorithm: SignatureAlgorithm, keyType: 'RSA' | 'EC', keyId: string, operation: string): void {
  if (keyTypeOfAlgorithm(algorithm) !== keyType) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: key ${keyId} is an ${keyType} key and cannot sign ${algorithm}`);
  }
}

/** A key pair whose private half only unwraps keys brought to the ceremony (never signs, never decrypts data). */
export interface CreateTransportKeyRequest {
  label: string;
  bits: 3072 | 4096;
}

/**
 * A private key brought wrapped from another HSM: `wrappedKek` is an AES-256 key wrapped with
 * RSA-OAEP (SHA-1, MGF1-SHA-1) under the transport key, `wrappedKey` the PKCS#8 private key
 * wrapped with that AES key by AES Key Wrap with Padding (RFC 5649): the two steps of PKCS#11's
 * CKM_RSA_AES_KEY_WRAP. The key is unwrapped inside the token as a sensitive, non-extractable
 * signing key and never exists in clear outside an HSM.
 */
export interface ImportWrappedKeyRequest {
  transportKeyId: string;
  wrappedKek: Buffer;
  wrappedKey: Buffer;
  label: string;
  /** The public key the unwrapped private key must belong to (from the CA certificate); stored beside it. */
  publicKeySpki: Buffer;
}

/** Optional capability: bringing CA keys of a previous system into the token (migration, decision 0031). */
export interface KeyImportingKeyManager extends KeyManager {
  createTransportKey(request: CreateTransportKeyRequest): Promise<GenerateKeyPairResponse>;
  importWrappedKey(request: ImportWrappedKeyRequest): Promise<{ keyId: string }>;
}

export function supportsKeyImport(keyManager: KeyManager): keyManager is KeyImportingKeyManager {
  const k = keyManager as Partial<KeyImportingKeyManager>;
  return typeof k.createTransportKey === 'function' && typeof k.importWrappedKey === 'function';
}
