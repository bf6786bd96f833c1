import { join } from 'node:path';
import type { Pool } from '@pki/db';
import { startKafka, type TestKafka } from '@pki/testing';
import { createEventTransport, OutboxRelay, type EventTransport } from '../src';
import { expectExactlyCommitted, producerDatabase, quietLogger, ReceivedLog, WriteLog, writeTransactions } from './delivery-scenario';

// Topic names unique to this run: the broker is shared by every test file.
const run = `${process.pid}-${Date.now().toString(36)}`;

describe('outbox through Kafka', () => {
  let pool: Pool;
  let transport: EventTransport;

  beforeAll(async () => {
    ({ pool } = await producerDatabase('outbox_kafka'));
    const brokers = process.env.PKI_TEST_KAFKA_BROKERS?.split(',') ?? [];
    expect(brokers.length).toBeGreaterThan(0);
    transport = await createEventTransport({ type: 'kafka', brokers, clientId: 'outbox-test' }, { logger: quietLogger });
  });
  afterAll(async () => {
    await transport.close();
    await pool.end();
  });

  it('delivers exactly the committed events of concurrent writers and two producers, in order per producer', async () => {
    const status = { producer: 'ra.status', topic: `certificate-status-${run}` };
    const audit = { producer: 'ra.audit', topic: `audit-events-${run}` };
    await transport.ensureTopics([status.topic, audit.topic]);
    const received = new ReceivedLog();
    await transport.subscriber.subscribe({ topic: status.topic, group: `ocsp-${run}`, handler: received.handler });
    await transport.subscriber.subscribe({ topic: audit.topic, group: `audit-${run}`, handler: received.handler });

    const relay = new OutboxRelay({ pool, publisher: transport.publisher, producers: [status.producer, audit.producer], batchSize: 25, pollIntervalMs: 200, logger: quietLogger });
    relay.start();
    const written = new WriteLog();
    try {
      await Promise.all([0, 1, 2, 3].map((writer) => writeTransactions(pool, written, { writer, transactions: 30, producers: [status, audit] })));
      await received.waitForApplied(written.committed.length);
    } finally {
      await relay.stop();
    }
    expect(written.rolledBack.length).toBeGreaterThan(0);
    expectExactlyCommitted(written, received, [status.producer, audit.producer]);
    expect(relay.counters().failures).toBe(0);
  });
});

describe('outbox through a Kafka broker that restarts', () => {
  let kafka: TestKafka;
  let pool: Pool;
  let transport: EventTransport;

  beforeAll(async () => {
    // Its own broker: restarting the shared one would disturb the other test files.
    kafka = await startKafka({ dir: join(__dirname, '../../../var/test') });
    ({ pool } = await producerDatabase('outbox_kafka_restart'));
    transport = await createEventTransport({ type: 'kafka', brokers: kafka.brokers, clientId: 'outbox-restart-test', sessionTimeoutMs: 6000 }, { logger: quietLogger });
  });
  afterAll(async () => {
    await transport?.close();
    await pool?.end();
    await kafka?.stop();
  });

  it('delivers every committed event after the restart, in order, while writers keep committing', async () => {
    const status = { producer: 'ra.status', topic: 'certificate-status' };
    await transport.ensureTopics([status.topic]);
    const received = new ReceivedLog();
    await transport.subscriber.subscribe({ topic: status.topic, group: 'ocsp', handler: received.handler });
    const relay = new OutboxRelay({
      pool,
      publisher: transport.publisher,
      producers: [status.producer],
      batchSize: 20,
      pollIntervalMs: 100,
      retry: { initialDelayMs: 200, maxDelayMs: 1000 },
      logger: quietLogger,
    });
    relay.start();
    const written = new WriteLog();
    let writing = true;
    let round = 0;
    const writer = (async () => {
      while (writing) {
        await writeTransactions(pool, written, { writer: round++, transactions: 3, producers: [status] });
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    try {
      await received.waitForApplied(10);
      await kafka.restart();
      // Keep writing until the relay has delivered through the new broker process.
      const deliveredBefore = relay.counters().published;
      const resumeBy = Date.now() + 60_000;
      while (relay.counters().published <= deliveredBefore + 10) {
        if (Date.now() > resumeBy) throw new Error('the relay did not resume delivery within 60 s of the broker restart');
        await new Promise((r) => setTimeout(r, 50));
      }
      writing = false;
      await writer;
      await received.waitForApplied(written.committed.length, 60_000);
    } finally {
      writing = false;
      await writer;
      await relay.stop();
    }
    expectExactlyCommitted(written, received, [status.producer]);
  }, 120_000);
});
