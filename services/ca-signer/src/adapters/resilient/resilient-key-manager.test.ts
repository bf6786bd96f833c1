import { PkiError } from '@pki/kit';
import type { KeyManager, SignRequest } from '../../ports/key-manager';
import { expectPkiError } from '../../../test/key-manager-contract';
import { FakeKeyManager } from '../fake';
import { type HsmMetrics, type HsmOperation, type HsmOutcome, ResilientKeyManager, type ResilientKeyManagerOptions } from './resilient-key-manager';

/**
 * One fake HSM shared by every module instance the breaker opens, as a real token outlives
 * C_Finalize: keys survive re-initialisation, outages are switched on the token, and the test can
 * see how many instances are open at once and how many calls reached the HSM.
 */
class FakeHsm {
  readonly token = new FakeKeyManager();
  readonly events: string[] = [];
  /** Calls that reached the HSM, by operation. */
  readonly calls = { sign: 0, getPublicKey: 0, generateKeyPair: 0, healthCheck: 0 };
  live = 0;
  opens = 0;
  /** Makes the next opens fail like this (e.g. a wrong PIN). */
  openFailure: PkiError | undefined;
  /** While set, sign() waits for it: a hung HSM. */
  hang: Promise<void> | undefined;

  outage(reason: string | undefined): void {
    this.token.simulateOutage(reason);
  }

  open = async (): Promise<KeyManager> => {
    // A PKCS#11 module is initialised once per process: a second instance would share and later
    // finalize the first one's state.
    if (this.live > 0) throw new Error('module initialised while a previous instance is still open');
    if (this.openFailure) throw this.openFailure;
    const health = await this.token.healthCheck();
    if (!health.healthy) throw new PkiError('UNAVAILABLE', `open HSM: ${health.detail}`);
    const instance = ++this.opens;
    this.live++;
    this.events.push(`open ${instance}`);
    let closed = false;
    const guard = (operation: string) => {
      if (closed) throw new PkiError('UNAVAILABLE', `${operation}: key manager closed`);
    };
    return {
      generateKeyPair: async (r) => (guard('generate key pair'), this.calls.generateKeyPair++, this.token.generateKeyPair(r)),
      getPublicKey: async (r) => (guard('get public key'), this.calls.getPublicKey++, this.token.getPublicKey(r)),
      sign: async (r) => {
        guard('sign');
        this.calls.sign++;
        if (this.hang) await this.hang;
        return this.token.sign(r);
      },
      healthCheck: async () => (this.calls.healthCheck++, this.token.healthCheck()),
      close: async () => {
        if (closed) return;
        closed = true;
        this.live--;
        this.events.push(`close ${instance}`);
      },
    };
  };
}

class RecordingMetrics implements HsmMetrics {
  readonly states: number[] = [];
  readonly counts = new Map<string, number>();
  readonly durations: HsmOperation[] = [];
  circuitState = { set: (value: number) => void this.states.push(value) };
  operations = {
    inc: ({ operation, outcome }: { operation: HsmOperation; outcome: HsmOutcome }) => void this.counts.set(`${operation}/${outcome}`, this.count(operation, outcome) + 1),
  };
  operationSeconds = { observe: ({ operation }: { operation: HsmOperation }) => void this.durations.push(operation) };
  count(operation: HsmOperation, outcome: HsmOutcome): number {
    return this.counts.get(`${operation}/${outcome}`) ?? 0;
  }
}

async function waitFor(what: string, predicate: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

let hsm: FakeHsm;
let metrics: RecordingMetrics;
let keyId: string;
const managers: ResilientKeyManager[] = [];
const data = Buffer.from('tbs');
const signRequest = (): SignRequest => ({ keyId, algorithm: 'ECDSA-SHA256', data });

async function start(options: Partial<ResilientKeyManagerOptions> = {}): Promise<ResilientKeyManager> {
  const manager = await ResilientKeyManager.open({
    open: hsm.open,
    probeIntervalMs: 0,
    operationTimeoutMs: 1_000,
    recovery: { initialDelayMs: 10, maxDelayMs: 40 },
    metrics,
    ...options,
  });
  managers.push(manager);
  return manager;
}

beforeEach(async () => {
  hsm = new FakeHsm();
  metrics = new RecordingMetrics();
  ({ keyId } = await hsm.token.generateKeyPair({ label: 'issuing', spec: { type: 'EC', curve: 'P-256' } }));
});
afterEach(async () => {
  await Promise.all(managers.splice(0).map((m) => m.close()));
});

describe('ResilientKeyManager (circuit breaker around the HSM)', () => {
  it('passes calls through while closed and reports the last test signature as health', async () => {
    const manager = await start();
    await expect(manager.sign(signRequest())).resolves.toMatchObject({ signature: expect.any(Buffer) });
    expect(await manager.getPublicKey({ keyId })).toEqual(await hsm.token.getPublicKey({ keyId }));
    const health = await manager.healthCheck();
    expect(health).toEqual({ healthy: true, detail: expect.stringMatching(/^HSM circuit closed; last test signature at \S+Z took [\d.]+ ms \(fake key manager, 1 keys\)$/) });
    const healthChecks = hsm.calls.healthCheck;
    await manager.healthCheck();
    expect(hsm.calls.healthCheck).toBe(healthChecks); // cheap: no HSM call per readiness probe
    expect(manager.stats()).toMatchObject({ state: 'closed', trips: 0, recoveries: 0, recoveryHalted: false });
    expect(metrics.states).toEqual([0]);
    expect(metrics.count('sign', 'ok')).toBe(1);
    expect(metrics.count('test_signature', 'ok')).toBe(1);
  });

  it('does not open the circuit for refused requests (INVALID_ARGUMENT, NOT_FOUND)', async () => {
    const manager = await start();
    await expectPkiError(manager.sign({ ...signRequest(), keyId: 'XYZ' }), 'INVALID_ARGUMENT', 'sign: keyId must be');
    await expectPkiError(manager.sign({ ...signRequest(), keyId: '00'.repeat(16) }), 'NOT_FOUND', 'not found');
    await expectPkiError(manager.sign({ ...signRequest(), algorithm: 'RSA-SHA256' }), 'INVALID_ARGUMENT', 'cannot sign RSA-SHA256');
    expect(manager.state).toBe('closed');
    expect(metrics.count('sign', 'rejected')).toBe(3);
    await expect(manager.sign(signRequest())).resolves.toBeDefined();
  });

  it('opens on a device error, fails fast without touching the HSM, re-initialises with backoff and closes when a test signature works', async () => {
    const manager = await start();
    hsm.outage('CKR_DEVICE_ERROR');
    const first = await expectPkiError(manager.sign(signRequest()), 'UNAVAILABLE', 'sign: HSM unavailable (circuit open since ');
    expect(first.message).toMatch(/^sign: HSM unavailable \(circuit open since \S+Z: sign: HSM unavailable: CKR_DEVICE_ERROR\); retrying every 10 ms, next attempt in \d+ ms$/);
    expect(first.cause).toMatchObject({ message: 'sign: HSM unavailable: CKR_DEVICE_ERROR' });
    expect(manager.state).toBe('open');
    expect(hsm.events).toEqual(['open 1', 'close 1']); // the failed instance is finalised at once

    // While open, nothing reaches the HSM: not signatures, not key look-ups.
    const reached = { ...hsm.calls };
    await expectPkiError(manager.sign(signRequest()), 'UNAVAILABLE', 'sign: HSM unavailable (circuit open since');
    await expectPkiError(manager.getPublicKey({ keyId }), 'UNAVAILABLE', 'get public key: HSM unavailable (circuit open since');
    await expectPkiError(manager.generateKeyPair({ label: 'k', spec: { type: 'EC', curve: 'P-256' } }), 'UNAVAILABLE', 'generate key pair: HSM unavailable');
    expect(hsm.calls).toEqual(reached);
    expect(metrics.count('sign', 'circuit_open')).toBe(1);
    expect(metrics.count('sign', 'unavailable')).toBe(1);
    expect(await manager.healthCheck()).toEqual({ healthy: false, detail: expect.stringMatching(/^HSM unavailable \(circuit open since \S+: sign: HSM unavailable: CKR_DEVICE_ERROR\)/) });

    // Attempts fail while the HSM is down, the delay doubles up to its bound.
    await waitFor('three failed recovery attempts', () => manager.stats().recoveryAttempts >= 3 && manager.state === 'open');
    const stats = manager.stats();
    expect(stats).toMatchObject({ state: 'open', trips: 1, recoveries: 0, reason: 'sign: HSM unavailable: CKR_DEVICE_ERROR', lastError: 'open HSM: HSM unavailable: CKR_DEVICE_ERROR' });
    expect((await manager.healthCheck()).detail).toMatch(/last attempt: open HSM: HSM unavailable: CKR_DEVICE_ERROR; retrying every 40 ms, next attempt in \d+ ms$/);
    expect(metrics.states).toEqual(expect.arrayContaining([0, 2, 1]));

    hsm.outage(undefined);
    await waitFor('the circuit to close', () => manager.state === 'closed');
    expect(hsm.events).toEqual(['open 1', 'close 1', 'open 2']);
    expect(hsm.live).toBe(1);
    await expect(manager.sign(signRequest())).resolves.toBeDefined();
    expect(manager.stats()).toMatchObject({ state: 'closed', trips: 1, recoveries: 1, openedAt: undefined, reason: undefined });
    expect((await manager.healthCheck()).healthy).toBe(true);
    expect(metrics.states.at(-1)).toBe(0);
  });

  it('fails every queued and concurrent caller with the same circuit-open error', async () => {
    const manager = await start();
    let release!: () => void;
    hsm.hang = new Promise((r) => (release = r));
    const calls = Array.from({ length: 20 }, () => manager.sign(signRequest()).then(() => 'signed', (e: PkiError) => e));
    await waitFor('the calls to reach the HSM', () => hsm.calls.sign === 20);
    hsm.outage('CKR_DEVICE_REMOVED');
    release();
    const results = await Promise.all(calls);
    for (const result of results) {
      expect(result).toBeInstanceOf(PkiError);
      expect(result).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringContaining('sign: HSM unavailable (circuit open since ') });
    }
    expect(manager.stats().trips).toBe(1);
  });

  it('opens on a call that outlives the operation timeout, and the late answer does not disturb the recovered HSM', async () => {
    const manager = await start({ operationTimeoutMs: 30 });
    let release!: () => void;
    hsm.hang = new Promise((r) => (release = r));
    await expectPkiError(manager.sign(signRequest()), 'UNAVAILABLE', 'no answer within 30 ms');
    expect(manager.state).not.toBe('closed');
    hsm.hang = undefined;
    await waitFor('the circuit to close', () => manager.state === 'closed');
    release();
    await expect(manager.sign(signRequest())).resolves.toBeDefined();
    expect(manager.stats()).toMatchObject({ trips: 1, recoveries: 1 });
  });

  it('notices a dead HSM with its periodic test signature, with no traffic at all', async () => {
    const manager = await start({ probeIntervalMs: 10 });
    const before = manager.stats().lastTestSignature!.at;
    await waitFor('a periodic test signature', () => manager.stats().lastTestSignature!.at !== before);
    hsm.outage('CKR_TOKEN_NOT_PRESENT');
    await waitFor('the circuit to open', () => manager.state !== 'closed');
    expect(manager.stats().reason).toBe('test signature: HSM unavailable: CKR_TOKEN_NOT_PRESENT');
    expect((await manager.healthCheck()).healthy).toBe(false);
    hsm.outage(undefined);
    await waitFor('the circuit to close', () => manager.state === 'closed');
  });

  it('stops retrying on a PIN error instead of locking the token, and says so', async () => {
    const manager = await start();
    hsm.outage('CKR_DEVICE_ERROR');
    hsm.openFailure = new PkiError('FAILED_PRECONDITION', 'open HSM: CKR_PIN_INCORRECT in C_Login');
    await expectPkiError(manager.sign(signRequest()), 'UNAVAILABLE', 'circuit open');
    await waitFor('recovery to halt', () => manager.stats().recoveryHalted);
    const attempts = manager.stats().recoveryAttempts;
    await new Promise((r) => setTimeout(r, 60));
    expect(manager.stats().recoveryAttempts).toBe(attempts);
    expect((await manager.healthCheck()).detail).toContain("not retrying after 'open HSM: CKR_PIN_INCORRECT in C_Login': fix the HSM configuration and restart");
  });

  it('refuses to start when the first test signature fails, and closes what it opened', async () => {
    hsm.outage('CKR_DEVICE_ERROR');
    await expectPkiError(start(), 'UNAVAILABLE', 'open HSM: HSM unavailable: CKR_DEVICE_ERROR');
    hsm.outage(undefined);
    const notLoggedIn = async (): Promise<KeyManager> => ({ ...(await hsm.open()), healthCheck: async () => ({ healthy: false, detail: 'HSM session not logged in (state 0)' }) });
    await expectPkiError(start({ open: notLoggedIn }), 'UNAVAILABLE', 'test signature: HSM session not logged in (state 0)');
    expect(hsm.live).toBe(0);
  });

  it('after close, stops recovering and answers key manager closed', async () => {
    const manager = await start();
    hsm.outage('CKR_DEVICE_ERROR');
    await expectPkiError(manager.sign(signRequest()), 'UNAVAILABLE', 'circuit open');
    await manager.close();
    hsm.outage(undefined);
    await new Promise((r) => setTimeout(r, 50));
    expect(hsm.live).toBe(0);
    expect(manager.state).not.toBe('closed');
    await expectPkiError(manager.sign(signRequest()), 'UNAVAILABLE', 'sign: key manager closed');
    expect(await manager.healthCheck()).toEqual({ healthy: false, detail: 'key manager closed' });
  });

  it('rejects options that would spin or never retry', async () => {
    await expectPkiError(start({ recovery: { initialDelayMs: 0, maxDelayMs: 10 } }), 'INVALID_ARGUMENT', 'recovery.initialDelayMs must be');
    await expectPkiError(start({ recovery: { initialDelayMs: 100, maxDelayMs: 10 } }), 'INVALID_ARGUMENT', 'recovery.maxDelayMs must be at least');
    await expectPkiError(start({ operationTimeoutMs: 0 }), 'INVALID_ARGUMENT', 'operationTimeoutMs must be');
    expect(hsm.opens).toBe(0);
  });
});
