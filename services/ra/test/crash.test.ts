import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createGrpcClient } from '@pki/grpc';
import { caSignerV1 } from '@pki/proto';
import type { ChildProcess } from 'node:child_process';
import pg from 'pg';
import { startRaFixture, type RaFixture } from './ra-fixture';
import { cardNumber, person, register } from './lifecycle-helpers';

// A real ra process is killed with SIGKILL at each step of an issuance. Afterwards every
// certificate ca-signer signed for ra is in the registry (valid, or revoked when nobody asked for
// it any more), none was signed twice, and each has its status and audit events.
let f: RaFixture;
let signerDb: pg.Pool;
let current: ChildProcess | undefined;

/** Stops the running ra (gracefully) and starts another with this environment. */
async function restartRa(env: Record<string, string> = {}): Promise<ChildProcess> {
  if (current && current.exitCode === null && current.signalCode === null) {
    const exited = new Promise((r) => current!.once('exit', r));
    current.kill('SIGTERM');
    await exited;
  }
  current = await f.spawn(env);
  return current;
}

beforeAll(async () => {
  f = await startRaFixture({ child: true });
  signerDb = new pg.Pool({ connectionString: f.signer.databaseUrl, options: '-c search_path=ca_signer', max: 2 });
  await restartRa();
}, 120_000);
afterAll(async () => {
  await signerDb?.end();
  await f?.stop();
});

const POINTS = ['issuance.before-signer', 'issuance.after-signature', 'issuance.before-commit'] as const;

async function applicationFor(): Promise<string> {
  const subscriberId = await register(f, person());
  const number = cardNumber();
  const res = await f.call('registrar-a', 'POST', '/v1/applications', { subscriberId, cardNumber: number, kind: 'NEW', signingCsr: f.csr(`${number}-s`), encryptionCsr: f.csr(`${number}-k`) });
  expect(res.status).toBe(201);
  return res.body.id as string;
}

async function killedDuringApproval(applicationId: string, point: string, key: string): Promise<void> {
  const child = await restartRa({ PKI_FAULT_INJECTION: '1', PKI_RA_CRASH_AT: point });
  const exited = new Promise<string | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  await expect(f.call('registrar-a', 'POST', `/v1/applications/${applicationId}/approval`, undefined, key)).rejects.toThrow();
  expect(await exited).toBe('SIGKILL');
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function signedForRa(): Promise<Array<{ idempotency_key: string; serial_hex: string }>> {
  return (await signerDb.query(`SELECT idempotency_key, serial_hex FROM issuances WHERE caller = 'spiffe://pki.internal/ra' AND state = 'ISSUED'`)).rows;
}

describe('SIGKILL at each step of an issuance', () => {
  const applications: Array<{ id: string; point: string; recovery: string }> = [];

  it.each(POINTS.flatMap((point) => [[point, 'the counter retries with the same idempotency key'], [point, 'nobody retries: the reconciler finishes it']] as const))(
    'killed at %s; %s',
    async (point, recovery) => {
      const id = await applicationFor();
      applications.push({ id, point, recovery });
      const key = `approve-${id}`;
      await killedDuringApproval(id, point, key);
      await restartRa();
      {
        if (recovery.startsWith('the counter')) {
          const retried = await f.call('registrar-a', 'POST', `/v1/applications/${id}/approval`, undefined, key);
          expect(retried.status).toBe(201);
          expect((retried.body.card as { certificates: unknown[] }).certificates).toHaveLength(2);
        } else {
          await waitFor('the reconciler to finish the application', async () => ((await f.call('registrar-a', 'GET', `/v1/applications/${id}`)).body.state === 'ISSUED' ? true : undefined));
        }
        const { rows } = await f.db.query(`SELECT serial_hex, status FROM certificates WHERE application_id = $1`, [id]);
        expect(rows.map((r) => r.status)).toEqual(['VALID', 'VALID']);
      }
    },
    120_000,
  );

  it('a certificate signed for an application ra no longer has is recorded as revoked, with its events', async () => {
    // What a crash between ca-signer's signature and a lost registry write (a restored backup, say)
    // leaves: a certificate signed for ra that ra never recorded.
    const client = createGrpcClient(caSignerV1.CaSignerService, { ...f.config.caSigner, tls: f.config.tls });
    const orphan = await client.issueCertificate({
      idempotencyKey: `ra/${randomUUID()}/SIGN`,
      profile: 'citizen-signature',
      publicKeySpki: generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' }),
      subject: [{ type: 'C', value: 'TW' }, { type: 'CN', value: '無名氏' }, { type: 'serialNumber', value: '1999999999999999' }],
    });
    client.close();
    {
      const row = await waitFor('the reconciler to record the orphan', async () => (await f.db.query(`SELECT status, reason FROM certificates WHERE serial_hex = $1`, [orphan.serialHex])).rows[0]);
      expect(row).toEqual({ status: 'REVOKED', reason: 'cessationOfOperation' });
      const events = (await f.statusEvents()).filter((e) => e.serialHex === orphan.serialHex);
      expect(events).toHaveLength(1);
      expect(events[0]!.revocationTime).toBeDefined();
      const audit = (await f.auditEvents()).filter((e) => e.action === 'certificate.reconcile.revoke' && e.objects.some((o) => o.id === orphan.serialHex));
      expect(audit).toHaveLength(1);
    }
  }, 120_000);

  it('afterwards: every certificate ca-signer signed for ra is in the registry, none signed twice, each with its events', async () => {
    const signed = await signedForRa();
    const { rows: recorded } = await f.db.query(`SELECT serial_hex, status, application_id FROM certificates`);
    const bySerial = new Map(recorded.map((r) => [r.serial_hex, r]));
    for (const s of signed) expect({ serial: s.serial_hex, recorded: bySerial.has(s.serial_hex) }).toEqual({ serial: s.serial_hex, recorded: true });
    // One issuance per (application, slot): the idempotency keys made every retry return the first certificate.
    const keys = signed.map((s) => s.idempotency_key);
    expect(new Set(keys).size).toBe(keys.length);
    for (const { id } of applications) {
      expect(keys.filter((k) => k.startsWith(`ra/${id}/`)).sort()).toEqual([`ra/${id}/KEYX`, `ra/${id}/SIGN`]);
    }
    const statusEvents = await f.statusEvents();
    const audit = await f.auditEvents();
    for (const s of signed) {
      expect(statusEvents.some((e) => e.serialHex === s.serial_hex)).toBe(true);
      expect(audit.some((e) => e.objects.some((o) => o.type === 'certificate' && o.id === s.serial_hex))).toBe(true);
    }
    for (const { id } of applications) {
      expect(audit.filter((e) => e.action === 'application.issue' && e.objects.some((o) => o.id === id))).toHaveLength(1);
    }
  });
});
