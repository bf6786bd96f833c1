import { constants, generateKeyPair, type KeyObject, privateEncrypt, randomBytes, sign } from 'node:crypto';
import { promisify } from 'node:util';
import { PkiError } from '@pki/kit';
import type {
  GenerateKeyPairRequest,
  GenerateKeyPairResponse,
  GetPublicKeyRequest,
  GetPublicKeyResponse,
  DigestSigningKeyManager,
  KeyManagerHealth,
  SignDigestRequest,
  SignRequest,
  SignResponse,
} from '../../ports/key-manager';
import { assertAlgorithmFitsKey, keyIdBytes, sha256DigestInfo, validateGenerateKeyPairRequest, validateSignDigestRequest, validateSignRequest } from '../../ports/key-manager';

const generate = promisify(generateKeyPair);

interface FakeKey {
  label: string;
  type: 'RSA' | 'EC';
  privateKey: KeyObject;
  publicKeySpki: Buffer;
}

/** One signature the fake made, for tests asserting what was (or was not) signed. */
export interface FakeSignature {
  keyId: string;
  algorithm: SignRequest['algorithm'];
  data: Buffer;
}

/**
 * An in-memory key manager on node's crypto, for tests of logic that does not depend on the HSM.
 * It validates requests exactly like the PKCS#11 adapter (same shared checks, same error codes)
 * and records every signature it makes. Never used outside tests: its keys are in process memory.
 */
export class FakeKeyManager implements DigestSigningKeyManager {
  readonly #keys = new Map<string, FakeKey>();
  readonly #signatures: FakeSignature[] = [];
  #closed = false;
  #unavailable: string | undefined;

  /** Every signature made so far, oldest first. */
  get signatures(): readonly FakeSignature[] {
    return this.#signatures;
  }

  /** Makes every later call fail with UNAVAILABLE, as a dead HSM would (undefined heals it). */
  simulateOutage(reason: string | undefined): void {
    this.#unavailable = reason;
  }

  async generateKeyPair(request: GenerateKeyPairRequest): Promise<GenerateKeyPairResponse> {
    const operation = 'generate key pair';
    this.#assertUsable(operation);
    validateGenerateKeyPairRequest(request, operation);
    const { spec } = request;
    const pair =
      spec.type === 'RSA'
        ? await generate('rsa', { modulusLength: spec.bits, publicExponent: 65537 })
        : await generate('ec', { namedCurve: spec.curve });
    const keyId = randomBytes(16).toString('hex');
    const publicKeySpki = pair.publicKey.export({ format: 'der', type: 'spki' });
    this.#keys.set(keyId, { label: request.label, type: spec.type, privateKey: pair.privateKey, publicKeySpki });
    return { keyId, publicKeySpki: Buffer.from(publicKeySpki) };
  }

  async getPublicKey(request: GetPublicKeyRequest): Promise<GetPublicKeyResponse> {
    const operation = 'get public key';
    this.#assertUsable(operation);
    return { publicKeySpki: Buffer.from(this.#key(request.keyId, operation).publicKeySpki) };
  }

  async sign(request: SignRequest): Promise<SignResponse> {
    const operation = 'sign';
    this.#assertUsable(operation);
    validateSignRequest(request, operation);
    const key = this.#key(request.keyId, operation);
    assertAlgorithmFitsKey(request.algorithm, key.type, request.keyId, operation);
    const data = Buffer.from(request.data);
    let signature: Buffer;
    switch (request.algorithm) {
      case 'RSA-SHA256':
        signature = sign('sha256', data, { key: key.privateKey, padding: constants.RSA_PKCS1_PADDING });
        break;
      case 'RSA-PSS-SHA256':
        signature = sign('sha256', data, { key: key.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
        break;
      case 'ECDSA-SHA256':
        signature = sign('sha256', data, { key: key.privateKey, dsaEncoding: 'der' });
        break;
      case 'ECDSA-SHA384':
        signature = sign('sha384', data, { key: key.privateKey, dsaEncoding: 'der' });
        break;
    }
    this.#signatures.push({ keyId: request.keyId, algorithm: request.algorithm, data });
    return { signature };
  }

  async signDigest(request: SignDigestRequest): Promise<SignResponse> {
    const operation = 'sign digest';
    this.#assertUsable(operation);
    validateSignDigestRequest(request, operation);
    const key = this.#key(request.keyId, operation);
    assertAlgorithmFitsKey(request.algorithm, key.type, request.keyId, operation);
    const digest = Buffer.from(request.digest);
    let signature: Buffer;
    switch (request.algorithm) {
      case 'RSA-SHA256':
        // RSASSA-PKCS1-v1_5 over a DigestInfo is the private-key operation with type-1 padding.
        signature = privateEncrypt({ key: key.privateKey, padding: constants.RSA_PKCS1_PADDING }, sha256DigestInfo(digest));
        break;
      default:
        // node's crypto has no raw-digest RSA-PSS or ECDSA signing (sign(null, ...) hashes again).
        throw new PkiError('INVALID_ARGUMENT', `${operation}: the fake key manager signs only RSA-SHA256 digests`);
    }
    this.#signatures.push({ keyId: request.keyId, algorithm: request.algorithm, data: digest });
    return { signature };
  }

  async healthCheck(): Promise<KeyManagerHealth> {
    if (this.#closed) return { healthy: false, detail: 'key manager closed' };
    if (this.#unavailable !== undefined) return { healthy: false, detail: `HSM unavailable: ${this.#unavailable}` };
    return { healthy: true, detail: `fake key manager, ${this.#keys.size} keys` };
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #assertUsable(operation: string): void {
    if (this.#closed) throw new PkiError('UNAVAILABLE', `${operation}: key manager closed`);
    if (this.#unavailable !== undefined) throw new PkiError('UNAVAILABLE', `${operation}: HSM unavailable: ${this.#unavailable}`);
  }

  #key(keyId: string, operation: string): FakeKey {
    keyIdBytes(keyId, operation);
    const key = this.#keys.get(keyId);
    if (key === undefined) throw new PkiError('NOT_FOUND', `${operation}: key ${keyId} not found`);
    return key;
  }
}
