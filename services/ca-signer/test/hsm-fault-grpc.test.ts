import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createLogger, PkiError } from '@pki/kit';
import { createGrpcClient, type ServiceClient } from '@pki/grpc';
import { caSignerV1, healthV1 } from '@pki/proto';
import { buildFaultShim, type FaultShim } from '../../../tools/pkcs11-fault-shim/fault-shim';
import { startCaSigner, type RunningCaSigner } from '../src/app';
import type { CaSignerConfig } from '../src/config';
import { Pkcs11KeyManager } from '../src/adapters/pkcs11';
import { ResilientKeyManager } from '../src/adapters/resilient';
import { startCaSignerFixture, type CaSignerFixture } from './service-fixture';

/*
 * HSM fault test through the whole service: IssueCertificate over gRPC with mTLS, PostgreSQL, and
 * SoftHSM reached through the fault-injecting PKCS#11 shim (tools/pkcs11-fault-shim). The
 * standard fixture makes the database, identities and the development CA hierarchy; its signer is
 * then stopped (one PKCS#11 module instance per process) and a second one is started on the same
 * config, its key manager the circuit breaker over the shim.
 */

const subject = [
  { type: 'C', value: 'TW' },
  { type: 'CN', value: '王小明' },
  { type: 'serialNumber', value: '1234567890123456' },
];

let fixture: CaSignerFixture;
let shim: FaultShim;
let signer: RunningCaSigner;
let keyManager: ResilientKeyManager;
let asRa: ServiceClient<typeof caSignerV1.CaSignerService>;
let health: ServiceClient<typeof healthV1.Health>;
let issuingCa: X509Certificate;

beforeAll(async () => {
  fixture = await startCaSignerFixture();
  await fixture.signer.runtime.stop();
  shim = await buildFaultShim(fixture.dir, fixture.config.hsm.modulePath);
  const config: CaSignerConfig = { ...fixture.config, hsm: { ...fixture.config.hsm, modulePath: shim.modulePath } };
  const logger = createLogger({ service: 'ca-signer', level: 'silent' });
  keyManager = await ResilientKeyManager.open({
    open: () =>
      Pkcs11KeyManager.open(
        { modulePath: config.hsm.modulePath, tokenLabel: config.hsm.tokenLabel, pin: config.hsm.pinFile.reveal(), sessionPoolSize: config.hsm.sessionPoolSize },
        { logger },
      ),
    probeIntervalMs: 200,
    operationTimeoutMs: 5_000,
    recovery: { initialDelayMs: 100, maxDelayMs: 800 },
    logger,
  });
  signer = await startCaSigner(config, { keyManager, logger });
  const client = <S extends Parameters<typeof createGrpcClient>[0]>(service: S) =>
    createGrpcClient(service, { address: signer.grpcAddress, serverIdentity: fixture.identities['ca-signer'].identity, tls: fixture.identities.ra, deadlineMs: 20_000 });
  asRa = client(caSignerV1.CaSignerService);
  health = client(healthV1.Health);
  issuingCa = new X509Certificate(readFileSync(join(fixture.caDir, 'issuing.pem')));
});
afterAll(async () => {
  asRa?.close();
  health?.close();
  await signer?.runtime.stop();
  shim?.dispose();
  await fixture?.stop();
});

async function readiness(): Promise<{ status: number; body: { ready: boolean; checks: Record<string, string> } }> {
  const res = await fetch(`${signer.opsUrl}/readyz`);
  return { status: res.status, body: (await res.json()) as { ready: boolean; checks: Record<string, string> } };
}

const grpcServing = async () => (await health.check({ service: '' })).status === healthV1.HealthCheckResponse_ServingStatus.SERVING;

async function waitFor(what: string, predicate: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Outcome {
  startedAt: number;
  ms: number;
  certificate?: Uint8Array;
  error?: unknown;
}

describe('HSM fault under IssueCertificate load over gRPC', () => {
  it('answers UNAVAILABLE fast while the HSM is down, turns unready, and recovers by itself', async () => {
    // A few subscriber keys, reused: making an RSA key per request would be the test's bottleneck.
    const keys = Array.from({ length: 4 }, () => generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' }));
    const outcomes: Outcome[] = [];
    let stopped = false;
    let n = 0;
    const worker = async () => {
      while (!stopped) {
        const i = n++;
        const startedAt = performance.now();
        try {
          const response = await asRa.issueCertificate({ idempotencyKey: `fault-load-${i}/SIGN`, profile: 'citizen-signature', publicKeySpki: keys[i % keys.length]!, subject });
          outcomes.push({ startedAt, ms: performance.now() - startedAt, certificate: response.certificate });
        } catch (error) {
          outcomes.push({ startedAt, ms: performance.now() - startedAt, error });
          await new Promise((r) => setTimeout(r, 5)); // a client's retry pause
        }
      }
    };
    const successes = () => outcomes.filter((o) => o.certificate !== undefined).length;
    const failures = () => outcomes.filter((o) => o.error !== undefined).length;
    const workers = Array.from({ length: 8 }, worker);
    let openedAt = Infinity;
    try {
      expect(await readiness()).toMatchObject({ status: 200, body: { ready: true, checks: { hsm: 'ok' } } });
      await waitFor('certificates before the fault', () => successes() >= 20);

      shim.inject('device-error');
      await waitFor('the circuit to open', () => keyManager.state !== 'closed');
      openedAt = performance.now();
      await waitFor('fast failures', () => failures() >= 50);
      const unready = await readiness();
      expect(unready.status).toBe(503);
      expect(unready.body.checks.hsm).toMatch(/^hsm: HSM unavailable \(circuit open since \S+Z: (sign|test signature): HSM unavailable: CKR_DEVICE_ERROR/);
      expect(unready.body.checks.database).toBe('ok');
      expect(await grpcServing()).toBe(false);

      shim.clear();
      await waitFor('readiness', async () => (await readiness()).status === 200);
      expect(await grpcServing()).toBe(true);
      const atRecovery = successes();
      await waitFor('certificates after recovery', () => successes() >= atRecovery + 20);
    } finally {
      stopped = true;
      await Promise.all(workers);
    }

    const failed = outcomes.filter((o) => o.error !== undefined);
    for (const { error } of failed) {
      expect(error).toBeInstanceOf(PkiError);
      expect(error).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringContaining('HSM unavailable (circuit open since ') });
    }
    // Generous on purpose (a tenth of the 20 s deadline): no request waits on the dead HSM.
    const whileOpen = failed.filter((o) => o.startedAt > openedAt);
    expect(whileOpen.length).toBeGreaterThan(0);
    expect(Math.max(...whileOpen.map((o) => o.ms))).toBeLessThan(2_000);
    // Every certificate issued before, during and after the outage is signed by the issuing CA.
    const issued = outcomes.filter((o) => o.certificate !== undefined);
    expect(issued.every((o) => new X509Certificate(Buffer.from(o.certificate!)).verify(issuingCa.publicKey))).toBe(true);
    expect(keyManager.stats()).toMatchObject({ state: 'closed', trips: 1, recoveries: 1 });
  });
});
