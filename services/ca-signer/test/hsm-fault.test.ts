import { execFileSync } from 'node:child_process';
import { createPublicKey, randomBytes, verify } from 'node:crypto';
import { mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { PkiError } from '@pki/kit';
import { createSoftHsmToken, type SoftHsmToken, useSoftHsmConfig } from '@pki/testing';
import { buildFaultShim, type FaultShim } from '../../../tools/pkcs11-fault-shim/fault-shim';
import { Pkcs11KeyManager } from '../src/adapters/pkcs11';
import { ResilientKeyManager, type ResilientKeyManagerOptions } from '../src/adapters/resilient';
import type { KeyManager } from '../src/ports/key-manager';
import { expectPkiError } from './key-manager-contract';

/*
 * HSM fault test at the key-manager level: a real SoftHSM token reached through a PKCS#11 shim
 * (tools/pkcs11-fault-shim) that makes the module fail on command and, like a real device, keeps
 * the old sessions dead until the module is re-initialised.
 */

let dir: string;
let token: SoftHsmToken;
let shim: FaultShim;
let restoreSoftHsm: () => void;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ca-signer-hsm-fault-'));
  token = await createSoftHsmToken({ dir: join(dir, 'softhsm'), label: 'hsm-fault', pin: '135790', soPin: '24680135' });
  restoreSoftHsm = useSoftHsmConfig(token);
  shim = await buildFaultShim(dir, token.modulePath);
});
afterEach(() => shim.clear());
afterAll(async () => {
  shim?.dispose();
  restoreSoftHsm?.();
  await rm(dir, { recursive: true, force: true });
});

const openPkcs11 = (sessionPoolSize = 4) =>
  Pkcs11KeyManager.open({ modulePath: shim.modulePath, tokenLabel: token.label, pin: token.pin, sessionPoolSize });

const openResilient = (options: Partial<ResilientKeyManagerOptions> = {}) =>
  ResilientKeyManager.open({
    open: () => openPkcs11(),
    probeIntervalMs: 0,
    operationTimeoutMs: 5_000,
    recovery: { initialDelayMs: 50, maxDelayMs: 400 },
    ...options,
  });

async function waitFor(what: string, predicate: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Outcome {
  startedAt: number;
  ms: number;
  data: Buffer;
  signature?: Buffer;
  error?: unknown;
}

/**
 * Steady signing load: `concurrency` callers, each signing again as soon as it has an answer.
 * After a failure a caller waits 2 ms, as a client's retry would; without that pause a fast-failing
 * loop would run on microtasks alone and starve the timers it is meant to be tested alongside.
 */
function startLoad(keyManager: KeyManager, keyId: string, concurrency: number) {
  const outcomes: Outcome[] = [];
  let stopped = false;
  const worker = async () => {
    while (!stopped) {
      const data = randomBytes(64);
      const startedAt = performance.now();
      try {
        const { signature } = await keyManager.sign({ keyId, algorithm: 'RSA-SHA256', data });
        outcomes.push({ startedAt, ms: performance.now() - startedAt, data, signature });
      } catch (error) {
        outcomes.push({ startedAt, ms: performance.now() - startedAt, data, error });
        await new Promise((r) => setTimeout(r, 2));
      }
    }
  };
  const workers = Array.from({ length: concurrency }, worker);
  return {
    outcomes,
    successes: () => outcomes.filter((o) => o.signature !== undefined).length,
    failures: () => outcomes.filter((o) => o.error !== undefined).length,
    stop: async () => {
      stopped = true;
      await Promise.all(workers);
    },
  };
}

describe('HSM fault under load (SoftHSM behind a fault-injecting PKCS#11 shim)', () => {
  it('fails fast with UNAVAILABLE while the module is down, and resumes signing by itself when it is back', async () => {
    const keyManager = await openResilient();
    try {
      const { keyId, publicKeySpki } = await keyManager.generateKeyPair({ label: 'fault-test-issuing', spec: { type: 'RSA', bits: 2048 } });
      const publicKey = createPublicKey({ key: publicKeySpki, format: 'der', type: 'spki' });
      let ticks = 0;
      const ticker = setInterval(() => ticks++, 1);
      const load = startLoad(keyManager, keyId, 16);
      let openedAt = Infinity;
      try {
        await waitFor('signatures before the fault', () => load.successes() >= 50);

        // The module fails mid-load.
        shim.inject('device-error');
        await waitFor('the circuit to open', () => keyManager.state !== 'closed');
        openedAt = performance.now();
        const ticksAtFault = ticks;
        await waitFor('fast failures and two failed re-initialisations', () => load.failures() >= 200 && keyManager.stats().recoveryAttempts >= 2 && keyManager.state === 'open');
        const duringFault = await keyManager.healthCheck();
        expect(duringFault.healthy).toBe(false);
        // The failing call is named when PKCS#11 reports it synchronously; the async sign callback
        // only carries the return value.
        expect(duringFault.detail).toMatch(/^HSM unavailable \(circuit open since \S+Z: sign: HSM unavailable: CKR_DEVICE_ERROR( in C_Sign(Init)?)?\); last attempt: open HSM: HSM unavailable: CKR_DEVICE_ERROR in C_Initialize; retrying every \d+ ms, next attempt in \d+ ms$/);
        expect(ticks).toBeGreaterThan(ticksAtFault); // the event loop keeps turning during the outage

        // The module is back: nobody restarts anything.
        shim.clear();
        await waitFor('the circuit to close', () => keyManager.state === 'closed');
        const successesAtRecovery = load.successes();
        await waitFor('signatures after recovery', () => load.successes() >= successesAtRecovery + 50);
      } finally {
        await load.stop();
        clearInterval(ticker);
      }

      const failures = load.outcomes.filter((o) => o.error !== undefined);
      expect(failures.length).toBeGreaterThanOrEqual(200);
      for (const { error } of failures) {
        expect(error).toBeInstanceOf(PkiError);
        expect(error).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/^sign: HSM unavailable \(circuit open since \S+Z: sign: HSM unavailable: CKR_DEVICE_ERROR/) });
      }
      // Failing fast: callers that arrived while the circuit was open never waited on the dead
      // HSM. The bound is generous on purpose (a tenth of the 20 s gRPC deadline): this checks
      // that no call hangs, not how fast the machine is.
      const whileOpen = failures.filter((o) => o.startedAt > openedAt);
      expect(whileOpen.length).toBeGreaterThan(100);
      expect(Math.max(...whileOpen.map((o) => o.ms))).toBeLessThan(2_000);

      const signatures = load.outcomes.filter((o) => o.signature !== undefined);
      expect(signatures.every((o) => verify('sha256', o.data, publicKey, o.signature!))).toBe(true);
      expect(keyManager.stats()).toMatchObject({ state: 'closed', trips: 1, recoveries: 1, recoveryHalted: false });
      expect(keyManager.stats().recoveryAttempts).toBeGreaterThanOrEqual(3);
      expect(await keyManager.healthCheck()).toMatchObject({ healthy: true, detail: expect.stringContaining(`HSM circuit closed; last test signature at`) });
    } finally {
      await keyManager.close();
    }
  });

  it('an idle signer notices a removed token by its periodic test signature, and recovers when the token is back', async () => {
    const keyManager = await openResilient({ probeIntervalMs: 100 });
    try {
      const { keyId, publicKeySpki } = await keyManager.generateKeyPair({ label: 'fault-test-ec', spec: { type: 'EC', curve: 'P-256' } });
      shim.inject('token-removed');
      await waitFor('the circuit to open', () => keyManager.state !== 'closed');
      expect(keyManager.stats().reason).toBe('test signature: HSM unavailable: CKR_DEVICE_REMOVED in C_GetSessionInfo');
      await waitFor('a failed re-initialisation', () => keyManager.stats().lastError !== keyManager.stats().reason && keyManager.state === 'open');
      expect(keyManager.stats().lastError).toBe(`open HSM: HSM unavailable: no token labelled '${token.label}' (tokens present: none)`);
      await expectPkiError(keyManager.sign({ keyId, algorithm: 'ECDSA-SHA256', data: Buffer.from('x') }), 'UNAVAILABLE', `sign: HSM unavailable (circuit open since`);
      expect((await keyManager.healthCheck()).healthy).toBe(false);

      shim.clear();
      await waitFor('the circuit to close', () => keyManager.state === 'closed');
      // The key made before the token left is still there: it lives in the token, not the session.
      const data = Buffer.from('after reinsertion');
      const { signature } = await keyManager.sign({ keyId, algorithm: 'ECDSA-SHA256', data });
      expect(verify('sha256', data, { key: createPublicKey({ key: publicKeySpki, format: 'der', type: 'spki' }), dsaEncoding: 'der' }, signature)).toBe(true);
      expect((await keyManager.healthCheck()).healthy).toBe(true);
    } finally {
      await keyManager.close();
    }
  });

  it('without the shim: notices SoftHSM’s token folder taken away, and recovers when it is put back', async () => {
    // The plain SoftHSM module, so this is SoftHSM's own behaviour when its token disappears.
    const keyManager = await openResilient({
      open: () => Pkcs11KeyManager.open({ modulePath: token.modulePath, tokenLabel: token.label, pin: token.pin, sessionPoolSize: 2 }),
      probeIntervalMs: 100,
    });
    const away = `${token.tokenDir}.away`;
    try {
      const { keyId, publicKeySpki } = await keyManager.generateKeyPair({ label: 'folder-test', spec: { type: 'EC', curve: 'P-256' } });
      await rename(token.tokenDir, away);
      await waitFor('the circuit to open', () => keyManager.state !== 'closed');
      // SoftHSM keeps sessions and session objects in memory: only C_GetTokenInfo notices.
      expect(keyManager.stats().reason).toBe('test signature: CKR_GENERAL_ERROR in C_GetTokenInfo');
      await waitFor('a failed re-initialisation', () => keyManager.stats().recoveryAttempts >= 1 && keyManager.state === 'open');
      expect(keyManager.stats().lastError).toMatch(/^open HSM: /);
      expect((await keyManager.healthCheck()).healthy).toBe(false);

      await rename(away, token.tokenDir);
      await waitFor('the circuit to close', () => keyManager.state === 'closed');
      const data = Buffer.from('after the folder came back');
      const { signature } = await keyManager.sign({ keyId, algorithm: 'ECDSA-SHA256', data });
      expect(verify('sha256', data, { key: createPublicKey({ key: publicKeySpki, format: 'der', type: 'spki' }), dsaEncoding: 'der' }, signature)).toBe(true);
    } finally {
      await keyManager.close();
      await rename(away, token.tokenDir).catch(() => undefined);
    }
  });

  it('the PKCS#11 adapter alone drops dead sessions and never lends them again (re-initialising is the breaker’s job)', async () => {
    const keyManager = await openPkcs11(2);
    try {
      const { keyId } = await keyManager.generateKeyPair({ label: 'pool-test', spec: { type: 'EC', curve: 'P-256' } });
      const request = { keyId, algorithm: 'ECDSA-SHA256' as const, data: Buffer.from('x') };
      expect(await keyManager.healthCheck()).toEqual({ healthy: true, detail: `token '${token.label}' logged in, 2 sessions` });
      shim.inject('device-error');
      await expectPkiError(keyManager.sign(request), 'UNAVAILABLE', 'sign: HSM unavailable: CKR_DEVICE_ERROR in C_SignInit');
      await expectPkiError(keyManager.sign(request), 'UNAVAILABLE', 'sign: HSM unavailable: CKR_DEVICE_ERROR in C_SignInit');
      await expectPkiError(keyManager.sign(request), 'UNAVAILABLE', 'sign: HSM unavailable: every HSM session has failed');
      shim.clear();
      // The device is back, but both sessions died with it: only a re-initialisation helps.
      await expectPkiError(keyManager.sign(request), 'UNAVAILABLE', 'sign: HSM unavailable: every HSM session has failed');
      expect(await keyManager.healthCheck()).toEqual({ healthy: false, detail: 'health check: HSM unavailable: every HSM session has failed' });
    } finally {
      await keyManager.close();
    }
  });

  it('makes the test signature with a session key, which never lands in the token', async () => {
    const keyManager = await openPkcs11(1);
    try {
      await keyManager.generateKeyPair({ label: 'a token key', spec: { type: 'EC', curve: 'P-256' } });
      await expect(keyManager.probeSignature()).resolves.toEqual({ detail: `token '${token.label}', 1 sessions` });
      // Another process sees the token's objects: the CA-style key, not the probe key (CKA_TOKEN false).
      const objects = execFileSync('pkcs11-tool', ['--module', token.modulePath, '--token-label', token.label, '--login', '--pin', token.pin, '--list-objects'], {
        env: { ...process.env, SOFTHSM2_CONF: token.configPath },
        encoding: 'utf8',
      });
      expect(objects).toContain('label:      a token key');
      expect(objects).not.toContain('health probe');
    } finally {
      await keyManager.close();
    }
  });
});
