import { createPool, migrate, withTransaction, type Migration } from '@pki/db';
import { PkiError, type Logger } from '@pki/kit';
import { Client, type Pool } from 'pg';
import type { EventPublisher, EventSubscriber, OutboxEvent, Subscription } from './events';

/**
 * The event bus of the embedded deployment (`make up`): the topics are one shared, append-only
 * table in the `bus` schema, consumer groups keep their position in another. Same guarantees as
 * the Kafka transport: at-least-once, in order per producer (here even per topic).
 */
export interface PostgresTransportConfig {
  type: 'postgres';
  url: string;
  maxConnections?: number;
  /** How often idle subscribers look for new events when no NOTIFY arrives. */
  pollIntervalMs?: number;
  batchSize?: number;
}

export const BUS_SCHEMA = 'bus';
const BUS_CHANNEL = 'pki_bus';

export const BUS_MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'event_log',
    source: '@pki/outbox BUS_MIGRATIONS 1',
    sql: `
CREATE TABLE events (
  log_offset  bigserial   PRIMARY KEY,
  topic       text        NOT NULL,
  producer    text        NOT NULL,
  seq         bigint      NOT NULL,
  key         text        NOT NULL,
  payload     bytea       NOT NULL,
  headers     jsonb       NOT NULL,
  created_at  timestamptz NOT NULL,
  appended_at timestamptz NOT NULL DEFAULT now(),
  -- A relay re-sending a batch after an unconfirmed commit adds nothing the second time.
  UNIQUE (topic, producer, seq)
);
CREATE INDEX events_by_topic ON events (topic, log_offset);

CREATE TABLE consumer_offsets (
  group_id         text        NOT NULL,
  topic            text        NOT NULL,
  -- The last log_offset the group has processed; 0 = nothing yet (a new group reads from the start).
  committed_offset bigint      NOT NULL DEFAULT 0,
  updated_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (group_id, topic)
);
`,
  },
];

/** Creates the bus schema and its tables when missing (idempotent, safe from several processes at once). */
export async function prepareBus(pool: Pool, logger?: Logger): Promise<void> {
  await migrate(pool, { schema: BUS_SCHEMA, migrations: BUS_MIGRATIONS, ...(logger ? { logger } : {}) });
}

export function createBusPool(config: PostgresTransportConfig): Pool {
  return createPool({ url: config.url, schema: BUS_SCHEMA, maxConnections: config.maxConnections ?? 5, applicationName: 'pki-event-bus' });
}

/**
 * Appends a batch to the bus in one transaction, confirmed by its commit.
 *
 * A bigserial alone would not make a safe log: offsets are drawn at insert but become visible at
 * commit, so a reader at offset 41 could miss 40 committing just after it. Appenders therefore
 * take a transaction lock per topic; within a topic, offsets become visible in order.
 */
export class PostgresBusPublisher implements EventPublisher {
  constructor(private readonly pool: Pool) {}

  async publish(events: readonly OutboxEvent[]): Promise<void> {
    if (events.length === 0) return;
    const topics = [...new Set(events.map((e) => e.topic))].sort(); // one lock order: no deadlock between appenders
    try {
      await withTransaction(this.pool, async (tx) => {
        // One statement for the topics' locks, taken in `topics` order.
        // Named statements: prepared once per connection.
        await tx.query({
          name: 'pki_bus_lock_topics',
          text: 'SELECT pg_advisory_xact_lock(hashtextextended(t.topic, 0)) FROM unnest($1::text[]) WITH ORDINALITY AS t(topic, ord) ORDER BY t.ord',
          values: [topics.map((t) => `pki.bus:${t}`)],
        });
        // The append and its wake-up calls (delivered at commit) in one round trip.
        await tx.query({
          name: 'pki_bus_append',
          text: `WITH appended AS (
             INSERT INTO events (topic, producer, seq, key, payload, headers, created_at)
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bytea[], $6::jsonb[], $7::timestamptz[])
             ON CONFLICT (topic, producer, seq) DO NOTHING)
           SELECT pg_notify('${BUS_CHANNEL}', t) FROM unnest($8::text[]) AS t`,
          values: [
            events.map((e) => e.topic),
            events.map((e) => e.producer),
            events.map((e) => e.seq),
            events.map((e) => e.key),
            events.map((e) => Buffer.from(e.payload.buffer, e.payload.byteOffset, e.payload.byteLength)),
            events.map((e) => JSON.stringify(e.headers)),
            events.map((e) => e.createdAt),
            topics,
          ],
        });
      });
    } catch (err) {
      if (err instanceof PkiError) throw err;
      throw new PkiError('UNAVAILABLE', `outbox bus publish: ${(err as Error).message}`, { cause: err });
    }
  }

  async close(): Promise<void> {
    // The pool belongs to the transport.
  }
}

interface RunningSubscription extends Subscription {
  wake: () => void;
  loop: Promise<void>;
}

/**
 * Reads the bus by consumer group. Each batch runs in a transaction that locks the group's
 * position row (FOR UPDATE SKIP LOCKED): one member of a group consumes at a time, the others
 * stand by. The position advances past each event whose handler returned, and commits with the
 * batch; an event whose handler threw is offered again, after a pause, with the ones after it.
 */
export class PostgresBusSubscriber implements EventSubscriber {
  private readonly subscriptions: RunningSubscription[] = [];
  private listener?: Client;
  private closing = false;

  constructor(
    private readonly pool: Pool,
    private readonly connectionString: string,
    private readonly logger: Logger,
    private readonly options: { pollIntervalMs: number; batchSize: number },
  ) {}

  async subscribe(subscription: Subscription): Promise<void> {
    if (this.closing) throw new PkiError('FAILED_PRECONDITION', 'outbox bus subscribe: subscriber is closed');
    await this.pool.query('INSERT INTO consumer_offsets (group_id, topic) VALUES ($1, $2) ON CONFLICT DO NOTHING', [
      subscription.group,
      subscription.topic,
    ]);
    await this.ensureListener();
    const running: RunningSubscription = { ...subscription, wake: () => undefined, loop: Promise.resolve() };
    running.loop = this.consume(running);
    this.subscriptions.push(running);
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const s of this.subscriptions) s.wake();
    await Promise.all(this.subscriptions.map((s) => s.loop));
    const listener = this.listener;
    this.listener = undefined;
    await listener?.end().catch(() => undefined);
  }

  private async consume(subscription: RunningSubscription): Promise<void> {
    let failuresInRow = 0;
    while (!this.closing) {
      try {
        const outcome = await this.consumeBatch(subscription);
        if (outcome.failed) {
          failuresInRow++;
          await this.wait(subscription, Math.min(30_000, 200 * 2 ** Math.min(failuresInRow - 1, 10)), false);
        } else {
          failuresInRow = 0;
          if (outcome.count < this.options.batchSize) await this.wait(subscription, this.options.pollIntervalMs, true);
        }
      } catch (err) {
        failuresInRow++;
        this.logger.warn({ err, topic: subscription.topic, group: subscription.group }, 'outbox bus consume: batch failed; retrying');
        await this.wait(subscription, Math.min(30_000, 200 * 2 ** Math.min(failuresInRow - 1, 10)), false);
      }
      if (!this.listener && !this.closing) await this.ensureListener().catch(() => undefined);
    }
  }

  private async consumeBatch(subscription: RunningSubscription): Promise<{ count: number; failed: boolean }> {
    const { topic, group, handler } = subscription;
    return withTransaction(this.pool, async (tx) => {
      const position = await tx.query<{ committed_offset: string }>(
        'SELECT committed_offset FROM consumer_offsets WHERE group_id = $1 AND topic = $2 FOR UPDATE SKIP LOCKED',
        [group, topic],
      );
      if (position.rows.length === 0) return { count: 0, failed: false }; // another member of the group is consuming
      const { rows } = await tx.query<BusRow>(
        `SELECT log_offset, producer, seq, key, payload, headers, created_at FROM events
          WHERE topic = $1 AND log_offset > $2 ORDER BY log_offset LIMIT $3`,
        [topic, position.rows[0]!.committed_offset, this.options.batchSize],
      );
      let processed: string | undefined;
      let failed = false;
      for (const row of rows) {
        if (this.closing) break;
        try {
          await handler({
            producer: row.producer,
            seq: Number(row.seq),
            topic,
            key: row.key,
            payload: new Uint8Array(row.payload.buffer, row.payload.byteOffset, row.payload.byteLength),
            headers: row.headers,
            createdAt: row.created_at,
          });
        } catch (err) {
          failed = true;
          this.logger.warn({ err, topic, group, producer: row.producer, seq: row.seq }, 'outbox bus consume: handler failed; will redeliver');
          break;
        }
        processed = row.log_offset;
      }
      if (processed !== undefined) {
        await tx.query('UPDATE consumer_offsets SET committed_offset = $3, updated_at = now() WHERE group_id = $1 AND topic = $2', [group, topic, processed]);
      }
      return { count: rows.length, failed };
    });
  }

  /** Waits `ms`, or less when stopping or (if `wakeOnAppend`) when the topic gets new events. */
  private wait(subscription: RunningSubscription, ms: number, wakeOnAppend: boolean): Promise<void> {
    if (this.closing) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        subscription.wake = () => undefined;
        resolve();
      }
      subscription.wake = wakeOnAppend ? done : () => (this.closing ? done() : undefined);
    });
  }

  private async ensureListener(): Promise<void> {
    if (this.listener || this.closing) return;
    const listener = new Client({ connectionString: this.connectionString });
    this.listener = listener;
    listener.on('error', (err) => {
      // Polling carries on; the listener is reopened on the next loop.
      this.logger.warn({ err }, 'outbox bus consume: lost the notification connection');
      if (this.listener === listener) this.listener = undefined;
      void listener.end().catch(() => undefined);
    });
    listener.on('notification', (message) => {
      for (const s of this.subscriptions) if (s.topic === message.payload) s.wake();
    });
    try {
      await listener.connect();
      await listener.query(`LISTEN ${BUS_CHANNEL}`);
    } catch (err) {
      if (this.listener === listener) this.listener = undefined;
      await listener.end().catch(() => undefined);
      throw err;
    }
  }
}

interface BusRow {
  log_offset: string;
  producer: string;
  seq: string;
  key: string;
  payload: Buffer;
  headers: Record<string, string>;
  created_at: Date;
}
