import { createHash, createPublicKey, randomBytes, verify, type KeyObject } from 'node:crypto';
import * as graphene from 'graphene-pk11';
import * as pkcs11 from 'pkcs11js';
import { type Logger, PkiError } from '@pki/kit';
import { ecSubjectPublicKeyInfo, ecdsaSignatureToDer, namedCurveParameters, rsaSubjectPublicKeyInfo, uncompressedEcPoint, type EcCurve } from '@pki/x509';
import type {
  GenerateKeyPairRequest,
  GenerateKeyPairResponse,
  GetPublicKeyRequest,
  GetPublicKeyResponse,
  DigestSigningKeyManager,
  KeyImportingKeyManager,
  KeyManagerHealth,
  SignDigestRequest,
  SignRequest,
  SignResponse,
} from '../../ports/key-manager';
import { assertAlgorithmFitsKey, type CreateTransportKeyRequest, type ImportWrappedKeyRequest, keyIdBytes, sha256DigestInfo, validateGenerateKeyPairRequest, validateSignDigestRequest, validateSignRequest } from '../../ports/key-manager';
import { toPkiError } from './pkcs11-errors';
import { SessionPool } from './session-pool';

export interface Pkcs11KeyManagerConfig {
  /** Path of the vendor's PKCS#11 module (SoftHSM: /usr/lib/softhsm/libsofthsm2.so). */
  modulePath: string;
  /** The token is found by label: slot ids are not stable (SoftHSM renumbers them on init). */
  tokenLabel: string;
  /** CKU_USER PIN. Read from a secret file by the caller; never logged or put in an error. */
  pin: string;
  /** Sessions opened at start; also the number of HSM operations in flight at once. */
  sessionPoolSize: number;
}

// PKCS#11 v2.40 §5.6 CK_STATE values (pkcs11js does not export them).
const CKS_RO_USER_FUNCTIONS = 1;
const CKS_RW_USER_FUNCTIONS = 3;

const CURVE_BY_PARAMS = new Map<string, EcCurve>([
  [namedCurveParameters('P-256').toString('hex'), 'P-256'],
  [namedCurveParameters('P-384').toString('hex'), 'P-384'],
]);

interface CachedKey {
  privateKey: graphene.Key;
  type: 'RSA' | 'EC';
}

/** What a test signature showed; see {@link Pkcs11KeyManager.probeSignature}. */
export interface ProbeSignatureResult {
  /** Safe to log: token label and live sessions. */
  detail: string;
}

/** The fixed message of every test signature. Not DER, so it can never pass for a TBS structure. */
const PROBE_MESSAGE = Buffer.from('ca-signer HSM health probe: not a certificate, CRL or OCSP response');

/**
 * The test-signature key: an EC P-256 key pair made as session objects (CKA_TOKEN false) when the
 * module is opened. It is not a CA key, so its signatures need no audit event; it is never stored
 * in the token, so probing changes no token state and needs no key ceremony; and it vanishes with
 * the sessions, so every re-initialisation proves key generation and signing afresh.
 */
interface ProbeKey {
  privateKey: graphene.PrivateKey;
  publicKey: KeyObject;
}

/**
 * CA keys in a PKCS#11 token through graphene-pk11.
 *
 * - The module is initialised with CKF_OS_LOCKING_OK: signatures run on libuv worker threads, and
 *   without the flag SoftHSM turns its own locking off (toolchain.md).
 * - One login (CKU_USER) serves every session: PKCS#11 login state is per application (§5.6).
 * - Signing and key generation use pkcs11js's callback variants, so the work happens in the libuv
 *   pool and never blocks the event loop.
 * - Private keys are generated in the token as CKA_SENSITIVE, non-extractable token objects.
 *
 * - A session whose operation fails with a device or session error (UNAVAILABLE) is closed and
 *   never lent again (see {@link SessionPool}).
 * - {@link probeSignature} makes a test signature with a throw-away session key.
 *
 * One instance per process at a time: C_Initialize and C_Finalize act on the whole module, so a
 * second instance would share (and on close, finalize) the first one's state. Re-initialisation
 * after the HSM goes away is {@link ResilientKeyManager}'s job: it closes this instance and opens a
 * new one, and it opens the circuit on exactly the errors {@link toPkiError} maps to UNAVAILABLE.
 */
export class Pkcs11KeyManager implements DigestSigningKeyManager, KeyImportingKeyManager {
  readonly #module: graphene.Module;
  readonly #slot: graphene.Slot;
  readonly #pool: SessionPool<graphene.Session>;
  readonly #logger: Logger | undefined;
  readonly #tokenLabel: string;
  /** Private key handles by keyId. PKCS#11 object handles are valid in every session of the application. */
  readonly #keys = new Map<string, CachedKey>();
  readonly #probeKey: ProbeKey;
  #closed = false;

  private constructor(module: graphene.Module, slot: graphene.Slot, sessions: graphene.Session[], probeKey: ProbeKey, tokenLabel: string, logger: Logger | undefined) {
    this.#module = module;
    this.#slot = slot;
    this.#pool = new SessionPool(sessions, {
      isBroken: (err) => err instanceof PkiError && err.code === 'UNAVAILABLE',
      discard: (session) => {
        logger?.warn({ tokenLabel, sessionsLeft: this.#pool.stats.size }, 'HSM session failed; closed and left out of the pool');
        closeQuietly(() => session.close());
      },
    });
    this.#probeKey = probeKey;
    this.#tokenLabel = tokenLabel;
    this.#logger = logger;
  }

  /**
   * Loads the module, finds the token by label, opens `sessionPoolSize` read-write sessions and
   * logs in once. For SoftHSM, `process.env.SOFTHSM2_CONF` must be set before this is called.
   */
  static async open(config: Pkcs11KeyManagerConfig, options: { logger?: Logger } = {}): Promise<Pkcs11KeyManager> {
    const operation = 'open HSM';
    if (!Number.isInteger(config.sessionPoolSize) || config.sessionPoolSize < 1 || config.sessionPoolSize > 64) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: sessionPoolSize must be 1 to 64`);
    }
    let module: graphene.Module;
    try {
      module = graphene.Module.load(config.modulePath);
    } catch (err) {
      throw new PkiError('UNAVAILABLE', `${operation}: HSM unavailable: cannot load PKCS#11 module ${config.modulePath}`, { cause: err });
    }
    const sessions: graphene.Session[] = [];
    try {
      module.initialize({ flags: pkcs11.CKF_OS_LOCKING_OK });
      const slot = findSlotByTokenLabel(module, config.tokenLabel, operation);
      for (let i = 0; i < config.sessionPoolSize; i++) {
        sessions.push(slot.open(graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION));
      }
      try {
        sessions[0]!.login(config.pin, graphene.UserType.USER);
      } catch (err) {
        // Another part of this process may have logged in already (login is per application).
        if (!/CKR_USER_ALREADY_LOGGED_IN/.test((err as Error).message)) throw err;
      }
      const probeKey = await generateProbeKey(sessions[0]!, operation);
      const manager = new Pkcs11KeyManager(module, slot, sessions, probeKey, config.tokenLabel, options.logger);
      options.logger?.info({ tokenLabel: config.tokenLabel, sessions: sessions.length, module: module.libraryDescription.trim() }, 'HSM opened');
      return manager;
    } catch (err) {
      for (const session of sessions) closeQuietly(() => session.close());
      closeQuietly(() => module.finalize());
      closeQuietly(() => module.close());
      throw toPkiError(err, operation);
    }
  }

  async generateKeyPair(request: GenerateKeyPairRequest): Promise<GenerateKeyPairResponse> {
    const operation = 'generate key pair';
    this.#assertOpen(operation);
    validateGenerateKeyPairRequest(request, operation);
    const id = randomBytes(16);
    const keyId = id.toString('hex');
    const { spec, label } = request;
    const common = { token: true, id, label };
    const publicTemplate: graphene.ITemplate = { ...common, verify: true, encrypt: false, wrap: false, private: false };
    // CA keys only sign: no decrypt/unwrap/derive, never leave the token in clear (§4.9 CKA_SENSITIVE,
    // CKA_EXTRACTABLE). private is forced true by graphene for private keys.
    const privateTemplate: graphene.ITemplate = { ...common, sign: true, decrypt: false, unwrap: false, derive: false, sensitive: true, extractable: false };
    let mechanism: graphene.KeyGenMechanism;
    if (spec.type === 'RSA') {
      mechanism = graphene.KeyGenMechanism.RSA;
      Object.assign(publicTemplate, { keyType: graphene.KeyType.RSA, modulusBits: spec.bits, publicExponent: Buffer.from([1, 0, 1]) });
      privateTemplate.keyType = graphene.KeyType.RSA;
    } else {
      mechanism = graphene.KeyGenMechanism.EC;
      Object.assign(publicTemplate, { keyType: graphene.KeyType.EC, paramsEC: namedCurveParameters(spec.curve) });
      privateTemplate.keyType = graphene.KeyType.EC;
    }
    return this.#pool.use(operation, async (session) => {
      try {
        const pair = await new Promise<graphene.IKeyPair>((resolve, reject) =>
          session.generateKeyPair(mechanism, publicTemplate, privateTemplate, (err, keys) =>
            err || keys === null ? reject(err ?? new Error('C_GenerateKeyPair returned no keys')) : resolve(keys),
          ),
        );
        const publicKeySpki = readPublicKey(pair.publicKey, operation);
        this.#keys.set(keyId, { privateKey: pair.privateKey, type: spec.type });
        this.#logger?.info({ keyId, keyLabel: label, keySpec: spec }, 'CA key pair generated in HSM');
        return { keyId, publicKeySpki };
      } catch (err) {
        throw toPkiError(err, operation);
      }
    });
  }

  async createTransportKey(request: CreateTransportKeyRequest): Promise<GenerateKeyPairResponse> {
    const operation = 'create transport key';
    this.#assertOpen(operation);
    if (typeof request.label !== 'string' || request.label.length === 0 || Buffer.byteLength(request.label) > 128) throw new PkiError('INVALID_ARGUMENT', `${operation}: label must be 1 to 128 bytes`);
    if (request.bits !== 3072 && request.bits !== 4096) throw new PkiError('INVALID_ARGUMENT', `${operation}: a transport key is RSA 3072 or 4096`);
    const id = randomBytes(16);
    const keyId = id.toString('hex');
    const common = { token: true, id, label: request.label, keyType: graphene.KeyType.RSA };
    // The public half wraps (the exporting side uses it); the private half only unwraps: no
    // decrypt, so it cannot be used as a decryption oracle for anything but key objects.
    const publicTemplate: graphene.ITemplate = { ...common, modulusBits: request.bits, publicExponent: Buffer.from([1, 0, 1]), wrap: true, encrypt: false, verify: false, private: false };
    const privateTemplate: graphene.ITemplate = { ...common, unwrap: true, decrypt: false, sign: false, derive: false, sensitive: true, extractable: false };
    return this.#pool.use(operation, async (session) => {
      try {
        const pair = await new Promise<graphene.IKeyPair>((resolve, reject) =>
          session.generateKeyPair(graphene.KeyGenMechanism.RSA, publicTemplate, privateTemplate, (err, keys) => (err || keys === null ? reject(err ?? new Error('C_GenerateKeyPair returned no keys')) : resolve(keys))),
        );
        this.#logger?.info({ keyId, keyLabel: request.label }, 'transport key pair generated in HSM');
        return { keyId, publicKeySpki: readPublicKey(pair.publicKey, operation) };
      } catch (err) {
        throw toPkiError(err, operation);
      }
    });
  }

  async importWrappedKey(request: ImportWrappedKeyRequest): Promise<{ keyId: string }> {
    const operation = 'import wrapped key';
    this.#assertOpen(operation);
    const transportId = keyIdBytes(request.transportKeyId, operation);
    const jwk = createPublicKey({ key: request.publicKeySpki, format: 'der', type: 'spki' }).export({ format: 'jwk' });
    if (jwk.kty !== 'RSA' || !jwk.n || !jwk.e) throw new PkiError('INVALID_ARGUMENT', `${operation}: only RSA CA keys are imported`);
    const modulusBytes = Buffer.from(jwk.n, 'base64url');
    const exponentBytes = Buffer.from(jwk.e, 'base64url');
    const id = randomBytes(16);
    const keyId = id.toString('hex');
    return this.#pool.use(operation, async (session) => {
      let kek: graphene.Key | undefined;
      try {
        const found = session.find({ class: graphene.ObjectClass.PRIVATE_KEY, id: transportId });
        if (found.length !== 1) throw new PkiError('NOT_FOUND', `${operation}: transport key ${request.transportKeyId} not found in token '${this.#tokenLabel}'`);
        const transport = found.items(0).toType<graphene.PrivateKey>();
        // Step 1 (C_UnwrapKey, CKM_RSA_PKCS_OAEP): the AES key, as a session object that dies with the session.
        const oaep = { name: 'RSA_PKCS_OAEP', params: new graphene.RsaOaepParams(graphene.MechanismEnum.SHA1, graphene.RsaMgf.MGF1_SHA1) };
        kek = session.unwrapKey(oaep, transport, request.wrappedKek, {
          class: graphene.ObjectClass.SECRET_KEY, keyType: graphene.KeyType.AES, token: false, unwrap: true, encrypt: false, decrypt: false, sensitive: true, extractable: false,
        });
        // Step 2 (C_UnwrapKey, CKM_AES_KEY_WRAP_PAD): the CA key, as generated keys are made (sign only, sensitive, never extractable).
        const unwrapped = session.unwrapKey({ name: 'AES_KEY_WRAP_PAD', params: null }, kek, request.wrappedKey, {
          class: graphene.ObjectClass.PRIVATE_KEY, keyType: graphene.KeyType.RSA, token: true, private: true, id, label: request.label,
          sign: true, decrypt: false, unwrap: false, derive: false, sensitive: true, extractable: false,
        });
        const { modulus } = unwrapped.getAttribute({ modulus: null });
        if (!(modulus as Buffer).equals(modulusBytes)) {
          unwrapped.destroy();
          throw new PkiError('INVALID_ARGUMENT', `${operation}: the unwrapped key does not belong to the certificate's public key`);
        }
        session.create({
          class: graphene.ObjectClass.PUBLIC_KEY, keyType: graphene.KeyType.RSA, token: true, private: false, id, label: request.label,
          modulus: modulusBytes, publicExponent: exponentBytes, verify: true, encrypt: false, wrap: false,
        });
        this.#logger?.info({ keyId, keyLabel: request.label, transportKeyId: request.transportKeyId }, 'CA key imported into HSM (unwrapped)');
        return { keyId };
      } catch (err) {
        throw toPkiError(err, operation);
      } finally {
        if (kek) closeQuietly(() => kek!.destroy());
      }
    });
  }

  async getPublicKey(request: GetPublicKeyRequest): Promise<GetPublicKeyResponse> {
    const operation = 'get public key';
    this.#assertOpen(operation);
    const id = keyIdBytes(request.keyId, operation);
    return this.#pool.use(operation, async (session) => {
      try {
        const found = session.find({ class: graphene.ObjectClass.PUBLIC_KEY, id });
        // graphene collections take an index; items(0) of an empty collection does not throw.
        if (found.length === 0) throw new PkiError('NOT_FOUND', `${operation}: key ${request.keyId} not found in token '${this.#tokenLabel}'`);
        return { publicKeySpki: readPublicKey(found.items(0).toType<graphene.PublicKey>(), operation) };
      } catch (err) {
        throw toPkiError(err, operation);
      }
    });
  }

  async sign(request: SignRequest): Promise<SignResponse> {
    const operation = 'sign';
    this.#assertOpen(operation);
    const id = validateSignRequest(request, operation);
    const { algorithm, keyId } = request;
    // ECDSA: SoftHSM 2.6 has no CKM_ECDSA_SHA256, so the hash is computed here and signed with
    // CKM_ECDSA (PKCS#11 v2.40 §2.3.6), which returns r || s.
    const toSign =
      algorithm === 'ECDSA-SHA256' || algorithm === 'ECDSA-SHA384'
        ? createHash(algorithm === 'ECDSA-SHA256' ? 'sha256' : 'sha384').update(request.data).digest()
        : Buffer.from(request.data);
    return this.#signWith(operation, id, keyId, algorithm, mechanismOf(algorithm), toSign);
  }

  /**
   * Signs a digest made outside the token: RSASSA-PKCS1-v1_5 as CKM_RSA_PKCS over the DigestInfo
   * (RFC 8017 §9.2), RSASSA-PSS as CKM_RSA_PKCS_PSS with the same parameters as
   * CKM_SHA256_RSA_PKCS_PSS, ECDSA as CKM_ECDSA (PKCS#11 v2.40 §2.1.6, §2.1.13, §2.3.6). The
   * signatures are the ones {@link sign} makes over the data itself.
   */
  async signDigest(request: SignDigestRequest): Promise<SignResponse> {
    const operation = 'sign digest';
    this.#assertOpen(operation);
    const id = validateSignDigestRequest(request, operation);
    const { algorithm, keyId } = request;
    const digest = Buffer.from(request.digest);
    switch (algorithm) {
      case 'RSA-SHA256':
        return this.#signWith(operation, id, keyId, algorithm, 'RSA_PKCS', sha256DigestInfo(digest));
      case 'RSA-PSS-SHA256':
        return this.#signWith(operation, id, keyId, algorithm, { name: 'RSA_PKCS_PSS', params: new graphene.RsaPssParams(graphene.MechanismEnum.SHA256, graphene.RsaMgf.MGF1_SHA256, 32) }, digest);
      case 'ECDSA-SHA256':
      case 'ECDSA-SHA384':
        return this.#signWith(operation, id, keyId, algorithm, 'ECDSA', digest);
    }
  }

  #signWith(operation: string, id: Buffer, keyId: string, algorithm: SignRequest['algorithm'], mechanism: graphene.MechanismType, toSign: Buffer): Promise<SignResponse> {
    return this.#pool.use(operation, async (session) => {
      try {
        const key = this.#findPrivateKey(session, id, keyId, operation);
        assertAlgorithmFitsKey(algorithm, key.type, keyId, operation);
        // C_SignInit runs here (cheap); C_Sign runs on a libuv worker thread.
        const signer = session.createSign(mechanism, key.privateKey);
        const signature = await new Promise<Buffer>((resolve, reject) =>
          signer.once(toSign, (err, data) => (err ? reject(err) : resolve(Buffer.from(data)))),
        );
        return { signature: key.type === 'EC' ? ecdsaSignatureToDer(signature) : signature };
      } catch (err) {
        const error = toPkiError(err, operation);
        if (error.code === 'NOT_FOUND') this.#keys.delete(keyId);
        throw error;
      }
    });
  }

  async healthCheck(): Promise<KeyManagerHealth> {
    if (this.#closed) return { healthy: false, detail: 'key manager closed' };
    try {
      return await this.#pool.use('health check', async (session) => {
        // C_GetSessionInfo reaches the token, and its state says whether the login still holds.
        const { state } = session.lib.C_GetSessionInfo(session.handle);
        if (state !== CKS_RW_USER_FUNCTIONS && state !== CKS_RO_USER_FUNCTIONS) {
          return { healthy: false, detail: `HSM session not logged in (state ${state})` };
        }
        const token = this.#slot.getToken();
        return { healthy: true, detail: `token '${token.label}' logged in, ${this.#pool.stats.size} sessions` };
      });
    } catch (err) {
      return { healthy: false, detail: toPkiError(err, 'health check').message };
    }
  }

  /**
   * A test signature: the session's state (C_GetSessionInfo: still logged in?), the token's
   * presence (C_GetTokenInfo), then C_SignInit and
   * C_Sign with the session probe key on a libuv worker thread, and the signature verified here,
   * so a device that answers with garbage counts as failed too. Throws the PkiError of whatever
   * failed; a session that failed with a device error is dropped like any other.
   */
  async probeSignature(): Promise<ProbeSignatureResult> {
    const operation = 'test signature';
    this.#assertOpen(operation);
    return this.#pool.use(operation, async (session) => {
      try {
        const { state } = session.lib.C_GetSessionInfo(session.handle);
        if (state !== CKS_RW_USER_FUNCTIONS && state !== CKS_RO_USER_FUNCTIONS) {
          // The login is gone (e.g. the HSM restarted): nothing will sign until we log in again.
          throw new PkiError('UNAVAILABLE', `${operation}: HSM unavailable: session not logged in (state ${state})`);
        }
        // C_GetTokenInfo: is our token still in its slot? HSMs answer CKR_TOKEN_NOT_PRESENT when it
        // is not; SoftHSM answers CKR_GENERAL_ERROR once its token folder is gone, while its
        // sessions and session objects live on in memory and would sign happily.
        const label = this.#slot.getToken().label.trim();
        if (label !== this.#tokenLabel) {
          throw new PkiError('UNAVAILABLE', `${operation}: HSM unavailable: the slot now holds token '${label}', not '${this.#tokenLabel}'`);
        }
        const digest = createHash('sha256').update(PROBE_MESSAGE).digest();
        const signer = session.createSign('ECDSA', this.#probeKey.privateKey);
        const raw = await new Promise<Buffer>((resolve, reject) => signer.once(digest, (err, data) => (err ? reject(err) : resolve(Buffer.from(data)))));
        const signature = ecdsaSignatureToDer(raw);
        if (!verify('sha256', PROBE_MESSAGE, { key: this.#probeKey.publicKey, dsaEncoding: 'der' }, signature)) {
          throw new PkiError('UNAVAILABLE', `${operation}: HSM unavailable: the test signature does not verify`);
        }
        return { detail: `token '${this.#tokenLabel}', ${this.#pool.stats.size} sessions` };
      } catch (err) {
        throw toPkiError(err, operation);
      }
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const sessions = await this.#pool.close();
    closeQuietly(() => sessions[0]?.logout());
    for (const session of sessions) closeQuietly(() => session.close());
    closeQuietly(() => this.#module.finalize());
    closeQuietly(() => this.#module.close());
    this.#keys.clear();
    this.#logger?.info({ tokenLabel: this.#tokenLabel }, 'HSM closed');
  }

  #assertOpen(operation: string): void {
    if (this.#closed) throw new PkiError('UNAVAILABLE', `${operation}: key manager closed`);
  }

  #findPrivateKey(session: graphene.Session, id: Buffer, keyId: string, operation: string): CachedKey {
    const cached = this.#keys.get(keyId);
    if (cached !== undefined) return cached;
    const found = session.find({ class: graphene.ObjectClass.PRIVATE_KEY, id });
    if (found.length === 0) throw new PkiError('NOT_FOUND', `${operation}: key ${keyId} not found in token '${this.#tokenLabel}'`);
    if (found.length > 1) throw new PkiError('INTERNAL', `${operation}: ${found.length} private keys share CKA_ID ${keyId}`);
    const privateKey = found.items(0).toType<graphene.PrivateKey>();
    const keyType = privateKey.getAttribute({ keyType: null }).keyType;
    const type = keyType === graphene.KeyType.RSA ? 'RSA' : keyType === graphene.KeyType.EC ? 'EC' : undefined;
    if (type === undefined) throw new PkiError('INVALID_ARGUMENT', `${operation}: key ${keyId} is neither RSA nor EC`);
    const entry = { privateKey, type } as const;
    this.#keys.set(keyId, entry);
    return entry;
  }
}

function findSlotByTokenLabel(module: graphene.Module, label: string, operation: string): graphene.Slot {
  const slots = module.getSlots(true);
  const labels: string[] = [];
  for (let i = 0; i < slots.length; i++) {
    const slot = slots.items(i);
    const tokenLabel = slot.getToken().label.trim();
    if (tokenLabel === label) return slot;
    labels.push(tokenLabel);
  }
  throw new PkiError('UNAVAILABLE', `${operation}: HSM unavailable: no token labelled '${label}' (tokens present: ${labels.map((l) => `'${l}'`).join(', ') || 'none'})`);
}

/** Makes the session probe key (see {@link ProbeKey}) in `session`, on a libuv worker thread. */
async function generateProbeKey(session: graphene.Session, operation: string): Promise<ProbeKey> {
  const label = 'ca-signer health probe';
  const publicTemplate: graphene.ITemplate = { token: false, label, keyType: graphene.KeyType.EC, paramsEC: namedCurveParameters('P-256'), verify: true, private: false };
  const privateTemplate: graphene.ITemplate = { token: false, label, keyType: graphene.KeyType.EC, sign: true, decrypt: false, derive: false, sensitive: true, extractable: false };
  try {
    const pair = await new Promise<graphene.IKeyPair>((resolve, reject) =>
      session.generateKeyPair(graphene.KeyGenMechanism.EC, publicTemplate, privateTemplate, (err, keys) =>
        err || keys === null ? reject(err ?? new Error('C_GenerateKeyPair returned no keys')) : resolve(keys),
      ),
    );
    const publicKey = createPublicKey({ key: readPublicKey(pair.publicKey, operation), format: 'der', type: 'spki' });
    return { privateKey: pair.privateKey, publicKey };
  } catch (err) {
    throw toPkiError(err, `${operation}: make the session key for test signatures`);
  }
}

function mechanismOf(algorithm: SignRequest['algorithm']): graphene.MechanismType {
  switch (algorithm) {
    case 'RSA-SHA256':
      return 'SHA256_RSA_PKCS';
    case 'RSA-PSS-SHA256':
      // Must match the AlgorithmIdentifier @pki/x509 writes: SHA-256, MGF1-SHA-256, salt 32.
      return { name: 'SHA256_RSA_PKCS_PSS', params: new graphene.RsaPssParams(graphene.MechanismEnum.SHA256, graphene.RsaMgf.MGF1_SHA256, 32) };
    case 'ECDSA-SHA256':
    case 'ECDSA-SHA384':
      return 'ECDSA';
  }
}

/** SPKI DER of a token public key, built from its attributes. */
function readPublicKey(key: graphene.PublicKey, operation: string): Buffer {
  const { keyType } = key.getAttribute({ keyType: null });
  if (keyType === graphene.KeyType.RSA) {
    const { modulus, publicExponent } = key.getAttribute({ modulus: null, publicExponent: null });
    return rsaSubjectPublicKeyInfo(modulus as Buffer, publicExponent as Buffer);
  }
  if (keyType === graphene.KeyType.EC) {
    const { paramsECDSA, pointEC } = key.getAttribute({ paramsECDSA: null, pointEC: null });
    const curve = CURVE_BY_PARAMS.get((paramsECDSA as Buffer).toString('hex'));
    if (curve === undefined) throw new PkiError('INVALID_ARGUMENT', `${operation}: unsupported EC curve in token key`);
    return ecSubjectPublicKeyInfo(curve, uncompressedEcPoint(pointEC as Buffer, curve, operation));
  }
  throw new PkiError('INVALID_ARGUMENT', `${operation}: token key is neither RSA nor EC`);
}

function closeQuietly(action: () => void): void {
  try {
    action();
  } catch {
    // Shutting down: the HSM may already be gone, and there is nothing left to do about it.
  }
}
