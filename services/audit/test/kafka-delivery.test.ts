import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createServiceIdentities, createTestDatabase, startKafka, type TestKafka } from '@pki/testing';
import { parseConfig } from '@pki/kit';
import { startAudit, type RunningAudit } from '../src/app';
import { auditConfigSchema } from '../src/config';
import { createEventTransport, createOfficerCa, quietLogger, TestProducer, waitFor } from './audit-fixture';
import type { EventTransport } from '@pki/outbox';

/**
 * The must-show of the audit log's delivery, against a real Kafka broker (its own, since it is
 * restarted): every event the producers committed is recorded exactly once and in order, counted
 * against the producers' outboxes, across a broker outage and across an audit service killed with
 * SIGKILL while it was consuming a backlog.
 */
let dir: string;
let kafka: TestKafka;
let databaseUrl: string;
let owner: pg.Pool;
let transport: EventTransport;
let producers: TestProducer[];
let rawConfig: Record<string, unknown>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'audit-kafka-'));
  kafka = await startKafka({ dir: join(__dirname, '../../../var/test') });
  databaseUrl = await createTestDatabase('audit_kafka');
  owner = new pg.Pool({ connectionString: databaseUrl, options: '-c search_path=audit' });
  const ids = await createServiceIdentities(join(dir, 'ids'), ['audit', 'ca-signer'] as const);
  const officers = createOfficerCa(join(dir, 'officers'));
  transport = await createEventTransport({ type: 'kafka', brokers: kafka.brokers, clientId: 'audit-test-producers', sessionTimeoutMs: 6000 }, { logger: quietLogger });
  producers = [await TestProducer.create(databaseUrl, 'producer_ra', 'ra.audit', transport), await TestProducer.create(databaseUrl, 'producer_cs', 'ca-signer', transport)];
  for (const p of producers) p.relay.start();
  rawConfig = {
    log: { level: 'warn' },
    ops: { host: '127.0.0.1', port: 0 },
    database: { url: databaseUrl, schema: 'audit' },
    http: { host: '127.0.0.1', port: 0, certFile: ids.audit.certFile, keyFile: ids.audit.keyFile, clientCaFiles: [officers.caFile] },
    tls: { caFile: ids.audit.caFile, certFile: ids.audit.certFile, keyFile: ids.audit.keyFile },
    // No checkpoint is due during these tests: ca-signer is never called.
    caSigner: { address: '127.0.0.1:9', serverIdentity: ids['ca-signer'].identity },
    auditLog: { origin: 'pki.test/audit-kafka', maxBatch: 500 },
    checkpoints: { intervalMs: 3_600_000, trustAnchorFiles: [officers.caFile] },
    events: { transport: { type: 'kafka', brokers: kafka.brokers, clientId: 'audit' }, sessionTimeoutMs: 6000 },
  };
});
afterAll(async () => {
  for (const p of producers ?? []) await p.stop();
  await transport?.close();
  await owner?.end();
  await kafka?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const treeSize = async () => Number((await owner.query('SELECT tree_size FROM log_state')).rows[0].tree_size);
const committed = async () => (await Promise.all(producers.map((p) => p.outbox()))).reduce((n, o) => n + o.length, 0);

/** Every committed event exactly once, in sequence order, with the producer's exact payload; no breaks. */
async function expectExactlyTheOutboxes(): Promise<void> {
  const { rows } = await owner.query<{ kind: string; producer: string; seq: string; payload_sha256: string }>('SELECT kind, producer, seq, payload_sha256 FROM records ORDER BY leaf_index');
  expect(rows.filter((r) => r.kind !== 'event')).toEqual([]);
  for (const p of producers) {
    const outbox = await p.outbox();
    const recorded = rows.filter((r) => r.producer === p.producer);
    expect(recorded.length).toBe(outbox.length);
    expect(recorded.map((r) => Number(r.seq))).toEqual(outbox.map((o) => o.seq));
    expect(recorded.map((r) => r.payload_sha256)).toEqual(outbox.map((o) => createHash('sha256').update(o.payload).digest('hex')));
  }
  expect(rows.length).toBe(await committed());
}

describe('audit log over Kafka', () => {
  it('records every event exactly once, in order, while the broker is stopped and restarted under writing services', async () => {
    const audit: RunningAudit = await startAudit(parseConfig(auditConfigSchema, { ...rawConfig, log: { level: 'silent' } }), { logger: quietLogger });
    try {
      await Promise.all(producers.map((p) => p.write(200, 5)));
      await waitFor('the first 400 events', async () => (await treeSize()) >= 400);

      // Services keep committing (their outboxes fill) while the broker is down and restarting.
      let writing = true;
      let writtenDuringOutage = 0;
      const writers = producers.map(async (p) => {
        while (writing) {
          await p.write(10, 5);
          writtenDuringOutage += 10;
        }
      });
      await kafka.restart();
      writing = false;
      await Promise.all(writers);
      expect(writtenDuringOutage).toBeGreaterThan(0);
      await Promise.all(producers.map((p) => p.write(100, 5)));

      const total = await committed();
      await waitFor(`all ${total} committed events`, async () => (await treeSize()) >= total, 180_000);
      await expectExactlyTheOutboxes();
    } finally {
      await audit.runtime.stop();
    }
  });

  it('records every event exactly once, in order, when the audit service is killed with SIGKILL mid-batch', async () => {
    const main = join(__dirname, '../dist/main.js');
    if (!existsSync(main)) throw new Error(`${main} is missing: run 'make build' (make test builds first)`);
    const configFile = join(dir, 'audit.json');
    writeFileSync(configFile, JSON.stringify(rawConfig));
    const spawnAudit = (): ChildProcess => spawn(process.execPath, [main, configFile], { stdio: ['ignore', 'ignore', 'pipe'] });

    const before = await treeSize();
    // A backlog to consume in many batches: written while no audit service runs.
    await Promise.all(producers.map((p) => p.write(2000, 10)));
    const total = await committed();
    let child = spawnAudit();
    let exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    // Kill it while it is recording the backlog: some batches committed, more in flight.
    await waitFor('the audit service to be recording the backlog', async () => (await treeSize()) > before + 500, 120_000);
    child.kill('SIGKILL');
    await exited;
    const atKill = await treeSize();
    expect(atKill).toBeLessThan(total);

    child = spawnAudit();
    exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      await waitFor(`all ${total} committed events after the restart`, async () => (await treeSize()) >= total, 180_000);
      await expectExactlyTheOutboxes();
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });
});
