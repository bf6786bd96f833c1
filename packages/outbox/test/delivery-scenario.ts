import { createPool, migrate, withTransaction, type Pool } from '@pki/db';
import { createLogger, type Logger } from '@pki/kit';
import { createTestDatabase } from '@pki/testing';
import { appendEvent, outboxMigration, ProducerSequenceTracker, type OutboxEvent } from '../src';

/**
 * Shared by the delivery tests of both transports: writers that commit some transactions and roll
 * back others, and a consumer that records what arrives.
 */
export const quietLogger: Logger = createLogger({ service: 'outbox-test', level: process.env.PKI_TEST_LOG_LEVEL === 'debug' ? 'debug' : 'silent' });

export async function producerDatabase(prefix: string): Promise<{ url: string; pool: Pool }> {
  const url = await createTestDatabase(prefix);
  const pool = createPool({ url, schema: 'ra', maxConnections: 12 });
  await migrate(pool, { schema: 'ra', migrations: [outboxMigration(1)] });
  return { url, pool };
}

export interface CommittedEvent {
  producer: string;
  seq: number;
  topic: string;
  body: string;
}

/** What a writer meant to publish, by outcome of its transaction. */
export class WriteLog {
  readonly committed: CommittedEvent[] = [];
  readonly rolledBack: string[] = [];

  committedOf(producer: string): CommittedEvent[] {
    return this.committed.filter((e) => e.producer === producer).sort((a, b) => a.seq - b.seq);
  }
}

/**
 * Runs `transactions` transactions on `writer`'s connection: each appends 1-3 events for one of
 * the producers (alternating) and then commits, except every third, which rolls back after its
 * appends, as a business check failing late in the transaction would.
 */
export async function writeTransactions(
  pool: Pool,
  log: WriteLog,
  options: { writer: number; transactions: number; producers: { producer: string; topic: string }[]; rollbackEvery?: number },
): Promise<void> {
  const rollbackEvery = options.rollbackEvery ?? 3;
  for (let t = 0; t < options.transactions; t++) {
    const { producer, topic } = options.producers[(options.writer + t) % options.producers.length]!;
    const count = 1 + ((options.writer + t) % 3);
    const rollback = t % rollbackEvery === rollbackEvery - 1;
    const appended: CommittedEvent[] = [];
    try {
      await withTransaction(pool, async (tx) => {
        for (let i = 0; i < count; i++) {
          const body = `writer ${options.writer} transaction ${t} event ${i}`;
          const seq = await appendEvent(tx, { producer, topic, key: `serial-${options.writer}-${t}`, payload: Buffer.from(body), headers: { 'content-type': 'text/plain' } });
          appended.push({ producer, seq, topic, body });
        }
        if (rollback) throw new Error('business rule failed after the events were appended');
      });
      log.committed.push(...appended);
    } catch (err) {
      if (!rollback) throw err;
      log.rolledBack.push(...appended.map((e) => e.body));
    }
  }
}

/** Records every delivery, and the deduplicated stream per producer (what an exactly-once consumer applies). */
export class ReceivedLog {
  readonly deliveries: OutboxEvent[] = [];
  readonly applied = new Map<string, OutboxEvent[]>();
  private readonly tracker = new ProducerSequenceTracker();

  readonly handler = async (event: OutboxEvent): Promise<void> => {
    this.deliveries.push(event);
    if (!this.tracker.accept(event)) return;
    const list = this.applied.get(event.producer) ?? [];
    list.push(event);
    this.applied.set(event.producer, list);
  };

  appliedCount(): number {
    let n = 0;
    for (const list of this.applied.values()) n += list.length;
    return n;
  }

  /** Resolves once `count` distinct events were applied; fails after `timeoutMs` saying how many arrived. */
  async waitForApplied(count: number, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.appliedCount() < count) {
      if (Date.now() > deadline) throw new Error(`expected ${count} events, ${this.appliedCount()} applied after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** The consumer's applied stream equals the committed events, seq 1..n per producer, nothing rolled back. */
export function expectExactlyCommitted(written: WriteLog, received: ReceivedLog, producers: string[]): void {
  for (const producer of producers) {
    const committed = written.committedOf(producer);
    const applied = received.applied.get(producer) ?? [];
    expect(committed.map((e) => e.seq)).toEqual(committed.map((_, i) => i + 1)); // gapless at the source
    expect(applied.map((e) => e.seq)).toEqual(committed.map((e) => e.seq));
    expect(applied.map((e) => Buffer.from(e.payload).toString())).toEqual(committed.map((e) => e.body));
    expect(applied.every((e, i) => e.topic === committed[i]!.topic && e.headers['content-type'] === 'text/plain')).toBe(true);
  }
  const rolledBack = new Set(written.rolledBack);
  expect(received.deliveries.filter((e) => rolledBack.has(Buffer.from(e.payload).toString()))).toEqual([]);
  // Every delivery, duplicates included, is an event that was committed.
  const committedBodies = new Set(written.committed.map((e) => e.body));
  expect(received.deliveries.every((e) => committedBodies.has(Buffer.from(e.payload).toString()))).toBe(true);
}
