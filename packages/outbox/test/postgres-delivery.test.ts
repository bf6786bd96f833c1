import { PkiError } from '@pki/kit';
import type { Pool } from '@pki/db';
import { createEventTransport, OutboxRelay, type EventPublisher, type EventTransport, type OutboxEvent } from '../src';
import { expectExactlyCommitted, producerDatabase, quietLogger, ReceivedLog, WriteLog, writeTransactions } from './delivery-scenario';

const STATUS = { producer: 'ra.status', topic: 'certificate-status' };
const AUDIT = { producer: 'ra.audit', topic: 'audit-events' };

describe('outbox through the PostgreSQL bus', () => {
  let pool: Pool;
  let url: string;
  let transport: EventTransport;

  beforeAll(async () => {
    ({ pool, url } = await producerDatabase('outbox_pg_bus'));
    transport = await createEventTransport({ type: 'postgres', url, pollIntervalMs: 200 }, { logger: quietLogger });
  });
  afterAll(async () => {
    await transport.close();
    await pool.end();
  });

  it('delivers exactly the committed events of concurrent writers, in order per producer', async () => {
    const received = new ReceivedLog();
    await transport.subscriber.subscribe({ topic: STATUS.topic, group: 'ocsp', handler: received.handler });
    await transport.subscriber.subscribe({ topic: AUDIT.topic, group: 'ocsp', handler: received.handler });
    const relay = new OutboxRelay({ pool, publisher: transport.publisher, producers: [STATUS.producer, AUDIT.producer], batchSize: 25, pollIntervalMs: 200, logger: quietLogger });
    relay.start();
    const written = new WriteLog();
    try {
      await Promise.all([0, 1, 2, 3].map((writer) => writeTransactions(pool, written, { writer, transactions: 30, producers: [STATUS, AUDIT] })));
      await received.waitForApplied(written.committed.length);
      expect(relay.counters()).toMatchObject({ failures: 0, activeProducers: [STATUS.producer, AUDIT.producer] });
    } finally {
      await relay.stop();
    }
    expect(written.rolledBack.length).toBeGreaterThan(0);
    expectExactlyCommitted(written, received, [STATUS.producer, AUDIT.producer]);
    expect((await pool.query('SELECT count(*)::int AS n FROM outbox WHERE published_at IS NULL')).rows[0].n).toBe(0);
  });

  it('gives a new consumer group the whole history and redelivers what a handler rejected', async () => {
    const received = new ReceivedLog();
    let rejections = 0;
    await transport.subscriber.subscribe({
      topic: STATUS.topic,
      group: 'crl',
      handler: async (event) => {
        // The third event fails twice (a dependency is down), then succeeds.
        if (event.seq === 3 && rejections < 2) {
          rejections++;
          throw new PkiError('UNAVAILABLE', 'mark crl partition dirty: database down');
        }
        await received.handler(event);
      },
    });
    const expected = (await pool.query("SELECT count(*)::int AS n FROM outbox WHERE producer = 'ra.status'")).rows[0].n;
    await received.waitForApplied(expected);
    const seqs = received.applied.get(STATUS.producer)!.map((e) => e.seq);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
    expect(rejections).toBe(2);
  });
});

describe('outbox relay', () => {
  let pool: Pool;

  beforeAll(async () => {
    ({ pool } = await producerDatabase('outbox_relay'));
  });
  afterAll(async () => pool.end());

  /** A publisher that is down for its first `outages` calls, like a broker being restarted. */
  class FlakyPublisher implements EventPublisher {
    readonly batches: OutboxEvent[][] = [];
    calls = 0;
    constructor(private outages: number) {}
    async publish(events: readonly OutboxEvent[]): Promise<void> {
      this.calls++;
      if (this.outages > 0) {
        this.outages--;
        throw new PkiError('UNAVAILABLE', 'outbox kafka publish: broker down');
      }
      this.batches.push([...events]);
    }
    async close(): Promise<void> {}
  }

  it('retries a failed batch from its first event, without loss or reordering, and counts the failures', async () => {
    const written = new WriteLog();
    await writeTransactions(pool, written, { writer: 0, transactions: 10, producers: [{ producer: 'card-mgmt.status', topic: 'card-status' }], rollbackEvery: 4 });
    const publisher = new FlakyPublisher(2);
    const relay = new OutboxRelay({ pool, publisher, producers: ['card-mgmt.status'], batchSize: 4, pollIntervalMs: 100, retry: { initialDelayMs: 20 }, logger: quietLogger });
    relay.start();
    try {
      await waitFor(() => relay.counters().published === written.committed.length);
    } finally {
      await relay.stop();
    }
    const delivered = publisher.batches.flat().map((e) => e.seq);
    expect(delivered).toEqual(written.committedOf('card-mgmt.status').map((e) => e.seq));
    expect(relay.counters()).toMatchObject({ failures: 2, lag: { 'card-mgmt.status': 0 } });
  });

  it('lets one instance deliver a producer while another stands by, and hands over on stop', async () => {
    const producer = 'ca-signer.audit';
    const producers = [{ producer, topic: 'audit-events' }];
    const first = new FlakyPublisher(0);
    const second = new FlakyPublisher(0);
    const active = new OutboxRelay({ pool, publisher: first, producers: [producer], pollIntervalMs: 50, logger: quietLogger });
    active.start();
    await waitFor(() => active.counters().activeProducers.length === 1);
    const standby = new OutboxRelay({ pool, publisher: second, producers: [producer], pollIntervalMs: 50, logger: quietLogger });
    standby.start();
    const written = new WriteLog();
    try {
      await writeTransactions(pool, written, { writer: 1, transactions: 6, producers, rollbackEvery: 100 });
      await waitFor(() => first.batches.flat().length === written.committed.length);
      expect(standby.counters().activeProducers).toEqual([]);

      await active.stop();
      await writeTransactions(pool, written, { writer: 2, transactions: 6, producers, rollbackEvery: 100 });
      await waitFor(() => first.batches.flat().length + second.batches.flat().length === written.committed.length);
    } finally {
      await active.stop();
      await standby.stop();
    }
    expect(second.batches.length).toBeGreaterThan(0);
    const delivered = [...first.batches.flat(), ...second.batches.flat()].map((e) => e.seq);
    expect(delivered).toEqual(written.committedOf(producer).map((e) => e.seq));
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
