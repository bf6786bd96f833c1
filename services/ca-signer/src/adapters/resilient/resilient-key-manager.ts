import { performance } from 'node:perf_hooks';
import { type Clock, type Logger, PkiError, systemClock } from '@pki/kit';
import { supportsDigestSigning } from '../../ports/key-manager';
import type {
  GenerateKeyPairRequest,
  GenerateKeyPairResponse,
  GetPublicKeyRequest,
  GetPublicKeyResponse,
  DigestSigningKeyManager,
  KeyManager,
  KeyManagerHealth,
  SignDigestRequest,
  SignRequest,
  SignResponse,
} from '../../ports/key-manager';

/**
 * closed: calls go to the HSM. open: the HSM failed; calls fail at once and a recovery is
 * scheduled. half-open: a recovery attempt is re-initialising the module and making a test
 * signature; calls still fail at once. Unlike a web client's breaker, no caller's request is used
 * as the trial: the test signature is, so no certificate waits on a suspect HSM.
 */
export type CircuitState = 'closed' | 'half-open' | 'open';

/** The value of the `hsm_circuit_state` gauge. */
export const CIRCUIT_STATE_VALUE: Readonly<Record<CircuitState, number>> = { closed: 0, 'half-open': 1, open: 2 };

export type HsmOperation = 'sign' | 'get_public_key' | 'generate_key_pair' | 'test_signature';
/**
 * ok; rejected: the request was refused (bad argument, unknown key); unavailable: the HSM failed
 * (this opens the circuit); circuit_open: failed fast without touching the HSM; error: anything else.
 */
export type HsmOutcome = 'ok' | 'rejected' | 'unavailable' | 'circuit_open' | 'error';

/**
 * The metrics this key manager feeds. prom-client's Gauge, Counter<'operation' | 'outcome'> and
 * Histogram<'operation'> fit these shapes as they are, so this file needs no prom-client import.
 */
export interface HsmMetrics {
  /** hsm_circuit_state: see {@link CIRCUIT_STATE_VALUE}. */
  circuitState: { set(value: number): void };
  /** hsm_operations_total{operation,outcome} */
  operations: { inc(labels: { operation: HsmOperation; outcome: HsmOutcome }): void };
  /** hsm_operation_seconds{operation}: calls that reached the HSM (fast failures are not timed). */
  operationSeconds: { observe(labels: { operation: HsmOperation }, seconds: number): void };
}

/**
 * An optional capability of a key manager (smallstep style: a separate small interface): a test
 * signature that proves the HSM signs. The PKCS#11 adapter has it; a key manager without it is
 * probed through healthCheck().
 */
export interface SignatureProbe {
  probeSignature(): Promise<{ detail: string }>;
}

export interface ResilientKeyManagerOptions {
  /**
   * Opens the HSM: loads and initialises the module, finds the token, logs in, opens the session
   * pool. Called once at start and again by each recovery attempt, always after the previous
   * instance has been closed (C_Finalize), because a PKCS#11 module is initialised once per process.
   */
  open(): Promise<KeyManager>;
  /** How often a test signature runs while the circuit is closed; 0 turns it off. */
  probeIntervalMs: number;
  /** sign, getPublicKey and test signatures that take longer fail with UNAVAILABLE and open the circuit. */
  operationTimeoutMs: number;
  /** Wait before the first recovery attempt; doubles after each failed attempt up to maxDelayMs. */
  recovery: { initialDelayMs: number; maxDelayMs: number };
  clock?: Clock;
  logger?: Logger;
  metrics?: HsmMetrics;
}

export interface TestSignatureRecord {
  at: Date;
  durationMs: number;
  detail: string;
}

/** For metrics and operators; the same facts as healthCheck(), as data. */
export interface ResilientKeyManagerStats {
  state: CircuitState;
  /** When the circuit last changed state. */
  since: Date;
  /** Since when the HSM has been unusable (open or half-open only). */
  openedAt?: Date;
  /** The failure that opened the circuit. */
  reason?: string;
  /** The latest failure: the one that opened the circuit, or a failed recovery attempt. */
  lastError?: string;
  /** How often the circuit has opened. */
  trips: number;
  /** How often a recovery brought the HSM back. */
  recoveries: number;
  recoveryAttempts: number;
  nextAttemptAt?: Date;
  /** Recovery stopped for good (a wrong PIN is not retried: it would lock the token). */
  recoveryHalted: boolean;
  lastTestSignature?: TestSignatureRecord;
}

/**
 * A circuit breaker around the HSM, implementing the same KeyManager port.
 *
 * A device or session failure (PkiError UNAVAILABLE from the adapter, a call that outlives
 * `operationTimeoutMs`, or any failed test signature) opens the circuit: from then on every call
 * fails at once with UNAVAILABLE and a message saying since when and why, without touching the
 * HSM. The failed instance is closed right away (queued callers fail now; in-flight calls finish;
 * then C_Finalize). A background loop re-opens the module with exponential backoff, makes a test
 * signature, and closes the circuit when it succeeds: signing resumes without restarting the
 * process. Refused requests (INVALID_ARGUMENT, NOT_FOUND) say nothing about the HSM's health and
 * never open the circuit.
 *
 * healthCheck() is cheap (no HSM call): it reports the state and the last test signature, which
 * a timer repeats every `probeIntervalMs` while closed, so an idle signer notices a dead HSM too.
 */
export class ResilientKeyManager implements DigestSigningKeyManager {
  readonly #options: ResilientKeyManagerOptions;
  readonly #clock: Clock;
  readonly #logger: Logger | undefined;
  readonly #metrics: HsmMetrics | undefined;
  #inner: KeyManager | undefined;
  /** +1 per successful (re)open: a failure of an older instance must not trip the new one. */
  #generation = 0;
  #state: CircuitState = 'closed';
  #since: Date;
  #openedAt: Date | undefined;
  #reason: string | undefined;
  #lastError: string | undefined;
  #trips = 0;
  #recoveries = 0;
  #recoveryAttempts = 0;
  #delayMs: number;
  #nextAttemptAt: Date | undefined;
  #halted = false;
  #lastTestSignature: TestSignatureRecord | undefined;
  /** Closing of failed instances, in order; the next open waits for it. */
  #teardown: Promise<void> = Promise.resolve();
  #recoveryTimer: NodeJS.Timeout | undefined;
  #probeTimer: NodeJS.Timeout | undefined;
  #attempt: Promise<void> | undefined;
  #closed = false;

  private constructor(options: ResilientKeyManagerOptions, inner: KeyManager, testSignature: TestSignatureRecord) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger;
    this.#metrics = options.metrics;
    this.#inner = inner;
    this.#lastTestSignature = testSignature;
    this.#since = this.#clock.now();
    this.#delayMs = options.recovery.initialDelayMs;
    this.#metrics?.circuitState.set(CIRCUIT_STATE_VALUE.closed);
    this.#scheduleProbe();
  }

  /**
   * Opens the HSM and makes a first test signature. Fails if either fails: a signer that cannot
   * sign at start is misconfigured or has no HSM, and an operator should hear it from the start
   * command rather than from a pod that stays unready.
   */
  static async open(options: ResilientKeyManagerOptions): Promise<ResilientKeyManager> {
    validateOptions(options);
    const inner = await options.open();
    try {
      const record = await testSignature(inner, options, options.clock ?? systemClock, options.metrics);
      return new ResilientKeyManager(options, inner, record);
    } catch (err) {
      await closeQuietly(inner, options.logger);
      throw PkiError.from(err, 'open HSM');
    }
  }

  get state(): CircuitState {
    return this.#state;
  }

  stats(): ResilientKeyManagerStats {
    return {
      state: this.#state,
      since: this.#since,
      openedAt: this.#openedAt,
      reason: this.#reason,
      lastError: this.#lastError,
      trips: this.#trips,
      recoveries: this.#recoveries,
      recoveryAttempts: this.#recoveryAttempts,
      nextAttemptAt: this.#nextAttemptAt,
      recoveryHalted: this.#halted,
      lastTestSignature: this.#lastTestSignature,
    };
  }

  generateKeyPair(request: GenerateKeyPairRequest): Promise<GenerateKeyPairResponse> {
    // No time limit: an RSA-4096 key pair can take a network HSM a minute, and this runs in a key
    // ceremony, not under a caller's deadline.
    return this.#call('generate key pair', 'generate_key_pair', 0, (km) => km.generateKeyPair(request));
  }

  getPublicKey(request: GetPublicKeyRequest): Promise<GetPublicKeyResponse> {
    return this.#call('get public key', 'get_public_key', this.#options.operationTimeoutMs, (km) => km.getPublicKey(request));
  }

  sign(request: SignRequest): Promise<SignResponse> {
    return this.#call('sign', 'sign', this.#options.operationTimeoutMs, (km) => km.sign(request));
  }

  signDigest(request: SignDigestRequest): Promise<SignResponse> {
    return this.#call('sign digest', 'sign', this.#options.operationTimeoutMs, (km) => {
      if (!supportsDigestSigning(km)) throw new PkiError('FAILED_PRECONDITION', 'sign digest: this HSM adapter cannot sign digests');
      return km.signDigest(request);
    });
  }

  /** No HSM call: the circuit's state and the last test signature. */
  async healthCheck(): Promise<KeyManagerHealth> {
    if (this.#closed) return { healthy: false, detail: 'key manager closed' };
    if (this.#state !== 'closed') return { healthy: false, detail: this.#describeOutage() };
    const last = this.#lastTestSignature;
    const probe = last === undefined ? 'no test signature yet' : `last test signature at ${last.at.toISOString()} took ${last.durationMs.toFixed(1)} ms (${last.detail})`;
    return { healthy: true, detail: `HSM circuit closed; ${probe}` };
  }

  /**
   * Stops probing and recovering, lets in-flight calls finish and closes the HSM. A recovery
   * attempt under way finishes first, so the module is never finalised under it.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#recoveryTimer);
    clearTimeout(this.#probeTimer);
    await this.#attempt;
    const inner = this.#inner;
    this.#inner = undefined;
    if (inner !== undefined) this.#teardown = this.#teardown.then(() => closeQuietly(inner, this.#logger));
    await this.#teardown;
  }

  async #call<T>(operation: string, metric: HsmOperation, timeoutMs: number, run: (km: KeyManager) => Promise<T>): Promise<T> {
    if (this.#closed) throw new PkiError('UNAVAILABLE', `${operation}: key manager closed`);
    const inner = this.#inner;
    if (this.#state !== 'closed' || inner === undefined) {
      this.#metrics?.operations.inc({ operation: metric, outcome: 'circuit_open' });
      throw this.#circuitOpenError(operation);
    }
    const generation = this.#generation;
    const started = performance.now();
    try {
      const result = await withTimeout(run(inner), timeoutMs, operation);
      this.#observe(metric, 'ok', started);
      return result;
    } catch (err) {
      const error = PkiError.from(err, operation);
      if (error.code !== 'UNAVAILABLE') {
        this.#observe(metric, error.code === 'INTERNAL' ? 'error' : 'rejected', started);
        throw error;
      }
      this.#observe(metric, 'unavailable', started);
      this.#trip(generation, error.message);
      if (this.#closed || this.#state === 'closed') throw error; // closing, or a replaced instance's late failure
      // Every caller of a failed HSM gets the same answer, whether its own call or a neighbour's
      // failed first (a queued caller otherwise sees "wait for HSM session: key manager closed").
      throw this.#circuitOpenError(operation, error);
    }
  }

  #observe(operation: HsmOperation, outcome: HsmOutcome, started: number): void {
    this.#metrics?.operations.inc({ operation, outcome });
    this.#metrics?.operationSeconds.observe({ operation }, (performance.now() - started) / 1000);
  }

  #circuitOpenError(operation: string, cause?: PkiError): PkiError {
    return new PkiError('UNAVAILABLE', `${operation}: ${this.#describeOutage()}`, {
      cause,
      details: { hsmCircuit: this.#state, ...(cause?.details.pkcs11ReturnValue ? { pkcs11ReturnValue: cause.details.pkcs11ReturnValue } : {}) },
    });
  }

  /** "HSM unavailable (circuit open since <time>: <reason>); <what happens next>" */
  #describeOutage(): string {
    const since = (this.#openedAt ?? this.#since).toISOString();
    let next: string;
    if (this.#halted) {
      next = `not retrying after '${this.#lastError}': fix the HSM configuration and restart`;
    } else if (this.#state === 'half-open') {
      next = 're-initialising the HSM now';
    } else {
      const waitMs = Math.max(0, (this.#nextAttemptAt?.getTime() ?? 0) - this.#clock.now().getTime());
      const lastAttempt = this.#lastError !== this.#reason ? `last attempt: ${this.#lastError}; ` : '';
      next = `${lastAttempt}retrying every ${formatDuration(this.#delayMs)}, next attempt in ${formatDuration(waitMs)}`;
    }
    return `HSM unavailable (circuit open since ${since}: ${this.#reason ?? 'unknown'}); ${next}`;
  }

  #setState(state: CircuitState): void {
    this.#state = state;
    this.#since = this.#clock.now();
    this.#metrics?.circuitState.set(CIRCUIT_STATE_VALUE[state]);
  }

  /** Opens the circuit, unless this failure belongs to an instance already replaced or closed. */
  #trip(generation: number, reason: string): void {
    if (this.#closed || generation !== this.#generation || this.#state !== 'closed') return;
    const failed = this.#inner;
    this.#inner = undefined;
    this.#setState('open');
    this.#openedAt = this.#since;
    this.#reason = reason;
    this.#lastError = reason;
    this.#trips++;
    this.#halted = false;
    this.#delayMs = this.#options.recovery.initialDelayMs;
    clearTimeout(this.#probeTimer);
    this.#logger?.error({ reason, trips: this.#trips }, 'HSM circuit opened: HSM calls fail fast while the module is re-initialised');
    // Closed now, not at the first attempt: queued callers fail at once instead of each trying a
    // dead session, and in-flight calls drain so C_Finalize never runs under a C_Sign.
    if (failed !== undefined) this.#teardown = this.#teardown.then(() => closeQuietly(failed, this.#logger));
    this.#scheduleRecovery();
  }

  #scheduleRecovery(): void {
    this.#nextAttemptAt = new Date(this.#clock.now().getTime() + this.#delayMs);
    this.#recoveryTimer = setTimeout(() => {
      this.#attempt = this.#recover().finally(() => (this.#attempt = undefined));
    }, this.#delayMs);
    this.#recoveryTimer.unref();
  }

  async #recover(): Promise<void> {
    if (this.#closed) return;
    this.#setState('half-open');
    this.#recoveryAttempts++;
    this.#nextAttemptAt = undefined;
    await this.#teardown;
    let candidate: KeyManager | undefined;
    try {
      if (this.#closed) return;
      candidate = await this.#options.open();
      const record = await testSignature(candidate, this.#options, this.#clock, this.#metrics);
      if (this.#closed) {
        const closing = candidate;
        this.#teardown = this.#teardown.then(() => closeQuietly(closing, this.#logger));
        return;
      }
      const downMs = this.#clock.now().getTime() - (this.#openedAt?.getTime() ?? 0);
      this.#inner = candidate;
      this.#generation++;
      this.#recoveries++;
      this.#lastTestSignature = record;
      this.#setState('closed');
      this.#logger?.info({ downMs, attempts: this.#recoveryAttempts, reason: this.#reason }, 'HSM circuit closed: module re-initialised and test signature verified');
      this.#openedAt = undefined;
      this.#reason = undefined;
      this.#delayMs = this.#options.recovery.initialDelayMs;
      this.#scheduleProbe();
    } catch (err) {
      const error = PkiError.from(err, 'recover HSM');
      if (candidate !== undefined) {
        const failed = candidate;
        this.#teardown = this.#teardown.then(() => closeQuietly(failed, this.#logger));
      }
      this.#lastError = error.message;
      if (this.#closed) return;
      this.#setState('open');
      if (error.code === 'FAILED_PRECONDITION') {
        // A wrong or locked PIN: each retry would count against the token's PIN retry limit and
        // could lock the CA's user PIN. Only an operator can fix this.
        this.#halted = true;
        this.#logger?.error({ err: error }, 'HSM recovery stopped: the error needs an operator, retrying could lock the token');
        return;
      }
      this.#delayMs = Math.min(this.#delayMs * 2, this.#options.recovery.maxDelayMs);
      this.#logger?.warn({ err: error, nextAttemptInMs: this.#delayMs }, 'HSM recovery attempt failed');
      this.#scheduleRecovery();
    }
  }

  #scheduleProbe(): void {
    if (this.#options.probeIntervalMs <= 0 || this.#closed) return;
    this.#probeTimer = setTimeout(() => void this.#probe(), this.#options.probeIntervalMs);
    this.#probeTimer.unref();
  }

  /** The periodic test signature; any failure opens the circuit (the probe itself is well-formed). */
  async #probe(): Promise<void> {
    const inner = this.#inner;
    if (this.#closed || this.#state !== 'closed' || inner === undefined) return;
    const generation = this.#generation;
    try {
      this.#lastTestSignature = await testSignature(inner, this.#options, this.#clock, this.#metrics);
    } catch (err) {
      this.#trip(generation, PkiError.from(err, 'test signature').message);
      return;
    }
    if (generation === this.#generation) this.#scheduleProbe();
  }
}

function hasSignatureProbe(keyManager: KeyManager): keyManager is KeyManager & SignatureProbe {
  return typeof (keyManager as Partial<SignatureProbe>).probeSignature === 'function';
}

/** One test signature (or, for a key manager without one, its health check), timed and bounded. */
async function testSignature(keyManager: KeyManager, options: ResilientKeyManagerOptions, clock: Clock, metrics?: HsmMetrics): Promise<TestSignatureRecord> {
  const operation = 'test signature';
  const started = performance.now();
  try {
    let detail: string;
    if (hasSignatureProbe(keyManager)) {
      detail = (await withTimeout(keyManager.probeSignature(), options.operationTimeoutMs, operation)).detail;
    } else {
      const health = await withTimeout(keyManager.healthCheck(), options.operationTimeoutMs, operation);
      if (!health.healthy) throw new PkiError('UNAVAILABLE', `${operation}: ${health.detail}`);
      detail = health.detail;
    }
    const durationMs = performance.now() - started;
    metrics?.operations.inc({ operation: 'test_signature', outcome: 'ok' });
    metrics?.operationSeconds.observe({ operation: 'test_signature' }, durationMs / 1000);
    return { at: clock.now(), durationMs, detail };
  } catch (err) {
    const error = PkiError.from(err, operation);
    metrics?.operations.inc({ operation: 'test_signature', outcome: error.code === 'UNAVAILABLE' ? 'unavailable' : 'error' });
    metrics?.operationSeconds.observe({ operation: 'test_signature' }, (performance.now() - started) / 1000);
    throw error;
  }
}

/**
 * Bounds a call to the HSM. On timeout the native call keeps its session until it returns (it
 * cannot be cancelled); the caller gets UNAVAILABLE and the circuit opens, and re-initialisation
 * waits for that call to come back before C_Finalize.
 */
function withTimeout<T>(promise: Promise<T>, timeoutMs: number, operation: string): Promise<T> {
  if (timeoutMs <= 0) return promise;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PkiError('UNAVAILABLE', `${operation}: HSM unavailable: no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function closeQuietly(keyManager: KeyManager, logger: Logger | undefined): Promise<void> {
  try {
    await keyManager.close();
  } catch (err) {
    // The HSM is already failing; closing it is best effort, and the next open starts clean.
    logger?.warn({ err }, 'closing the failed HSM instance failed');
  }
}

/** "250 ms", "4 s", "2.5 s": for messages an operator reads. */
function formatDuration(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  return `${Number((ms / 1_000).toFixed(1))} s`;
}

function validateOptions(options: ResilientKeyManagerOptions): void {
  const operation = 'open HSM';
  const { probeIntervalMs, operationTimeoutMs, recovery } = options;
  const check = (ok: boolean, message: string) => {
    if (!ok) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${message}`);
  };
  check(Number.isInteger(probeIntervalMs) && probeIntervalMs >= 0, 'probeIntervalMs must be a whole number of ms, 0 or more');
  check(Number.isInteger(operationTimeoutMs) && operationTimeoutMs > 0, 'operationTimeoutMs must be a whole number of ms above 0');
  check(Number.isInteger(recovery.initialDelayMs) && recovery.initialDelayMs > 0, 'recovery.initialDelayMs must be a whole number of ms above 0');
  check(Number.isInteger(recovery.maxDelayMs) && recovery.maxDelayMs >= recovery.initialDelayMs, 'recovery.maxDelayMs must be at least recovery.initialDelayMs');
}
