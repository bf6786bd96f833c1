import { PkiError, type Logger } from '@pki/kit';
import type { Pool, PoolClient } from 'pg';
import { outboxChannel } from './append';
import type { EventPublisher, OutboxEvent } from './events';

export interface OutboxRelayOptions {
  /** The producing service's pool (search_path = its schema, where the outbox tables live). */
  pool: Pool;
  publisher: EventPublisher;
  /** The producers this service writes; each is delivered by exactly one relay instance at a time. */
  producers: string[];
  /** Most events handed to the publisher at once. */
  batchSize?: number;
  /** Poll when no NOTIFY arrives (NOTIFY is an optimisation; polling is the guarantee). */
  pollIntervalMs?: number;
  /**
   * How long the relay lets appends gather after a NOTIFY wakes it, before it reads a batch (like
   * Kafka's linger.ms). Under load every committing transaction notifies; without a pause each
   * would be delivered alone, at several round trips on the producer's database and the
   * transport's. Default 20 ms; 0 delivers at once.
   */
  lingerMs?: number;
  /** Backoff after a failed delivery: doubles from `initialDelayMs` up to `maxDelayMs`. */
  retry?: { initialDelayMs?: number; maxDelayMs?: number };
  logger: Logger;
}

export interface OutboxRelayCounters {
  /** Events handed over and confirmed since start. */
  published: number;
  /** Failed delivery attempts since start (each is retried). */
  failures: number;
  /** Per producer this instance delivers: committed events not yet confirmed (at the last look). */
  lag: Record<string, number>;
  /** The producers whose delivery lock this instance holds; the others are on standby. */
  activeProducers: string[];
}

interface Lane {
  producer: string;
  active: boolean;
  lag: number;
  /** Resolves the current idle wait early (NOTIFY or stop). */
  wake: () => void;
  loop?: Promise<void>;
}

/**
 * Delivers committed outbox events to a publisher, in sequence order per producer.
 *
 * - One relay instance per producer at a time: a session-level advisory lock per (schema, producer)
 *   on a dedicated connection. Other replicas stand by and take over when that connection ends
 *   (crash, stop, network loss), starting at the first unconfirmed event.
 * - An event is marked published only after the publisher confirms it. A failure (broker down)
 *   leaves the batch unpublished; it is offered again, from its first event, after a backoff.
 *   Hence at-least-once: a batch that reached the broker before the failure was noticed is sent
 *   again, and consumers skip it by (producer, seq). Order is never broken: a batch starts at the
 *   first unconfirmed event, so every event it carries has all its predecessors delivered.
 * - Appends NOTIFY at commit, which wakes the relay at once; polling covers lost notifications.
 *
 * The relay holds one pool connection for its lifetime (locks and LISTEN) and borrows another per
 * batch. It does not close the publisher, which belongs to the caller.
 */
export class OutboxRelay {
  private readonly pool: Pool;
  private readonly publisher: EventPublisher;
  private readonly logger: Logger;
  private readonly batchSize: number;
  private readonly pollIntervalMs: number;
  private readonly lingerMs: number;
  private readonly initialDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly lanes: Lane[];
  private control?: Promise<ControlConnection>;
  private stopping = false;
  private started = false;
  private published = 0;
  private failures = 0;

  constructor(options: OutboxRelayOptions) {
    if (options.producers.length === 0) throw new PkiError('INVALID_ARGUMENT', 'outbox relay: no producers to deliver');
    if (new Set(options.producers).size !== options.producers.length) {
      throw new PkiError('INVALID_ARGUMENT', 'outbox relay: a producer is listed twice');
    }
    this.pool = options.pool;
    this.publisher = options.publisher;
    this.logger = options.logger;
    this.batchSize = options.batchSize ?? 200;
    this.pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.lingerMs = options.lingerMs ?? 20;
    this.initialDelayMs = options.retry?.initialDelayMs ?? 250;
    this.maxDelayMs = options.retry?.maxDelayMs ?? 30_000;
    this.lanes = options.producers.map((producer) => ({ producer, active: false, lag: 0, wake: () => undefined }));
  }

  /** Starts delivering (or standing by); returns at once. */
  start(): void {
    if (this.started) throw new PkiError('FAILED_PRECONDITION', 'outbox relay: already started');
    this.started = true;
    for (const lane of this.lanes) lane.loop = this.run(lane);
  }

  /**
   * Stops after the batch in flight is confirmed (or has failed), then releases the delivery locks
   * so a standby replica takes over at once.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const lane of this.lanes) lane.wake();
    await Promise.all(this.lanes.map((lane) => lane.loop));
    const control = await this.control?.catch(() => undefined);
    this.control = undefined;
    if (control) await control.close();
  }

  counters(): OutboxRelayCounters {
    const active = this.lanes.filter((l) => l.active);
    return {
      published: this.published,
      failures: this.failures,
      lag: Object.fromEntries(active.map((l) => [l.producer, l.lag])),
      activeProducers: active.map((l) => l.producer),
    };
  }

  private async run(lane: Lane): Promise<void> {
    let failuresInRow = 0;
    while (!this.stopping) {
      try {
        if (!lane.active) {
          lane.active = await this.acquire(lane);
          if (!lane.active) {
            await this.idle(lane, this.pollIntervalMs);
            continue;
          }
          this.logger.info({ producer: lane.producer }, 'outbox relay: delivering producer (delivery lock acquired)');
        }
        const delivered = await this.deliverBatch(lane);
        failuresInRow = 0;
        // A full batch means more may be waiting: go again without pausing.
        if (delivered < this.batchSize) await this.idle(lane, this.pollIntervalMs);
      } catch (err) {
        this.failures++;
        failuresInRow++;
        const delay = Math.min(this.maxDelayMs, this.initialDelayMs * 2 ** Math.min(failuresInRow - 1, 16));
        this.logger.warn(
          { producer: lane.producer, err, retryInMs: delay, failuresInRow },
          `outbox relay: delivery of ${lane.producer} failed; retrying`,
        );
        // Not woken by NOTIFY: a broker outage must not turn every append into a retry.
        await this.pause(delay);
      }
    }
  }

  /** Reads the first unconfirmed events of the producer, publishes them, marks them published. */
  private async deliverBatch(lane: Lane): Promise<number> {
    // Planned per call, not prepared: a generic plan made while the outbox is small may walk the
    // primary key through every published event, and would be kept as the outbox grows.
    const { rows } = await this.pool.query<OutboxRow>({
      text: `SELECT seq, topic, key, payload, headers, created_at,
              (SELECT last_seq FROM outbox_head WHERE producer = $1) AS head_seq
         FROM outbox
        WHERE producer = $1 AND published_at IS NULL
        ORDER BY seq
        LIMIT $2`,
      values: [lane.producer, this.batchSize],
    });
    if (rows.length === 0) {
      lane.lag = 0;
      return 0;
    }
    // The lock may have gone with the control connection while we read; another instance
    // delivers now. Sending anyway would only cause duplicates, so step back.
    if (!lane.active) return 0;
    const events: OutboxEvent[] = rows.map((row) => ({
      producer: lane.producer,
      seq: Number(row.seq),
      topic: row.topic,
      key: row.key,
      payload: new Uint8Array(row.payload.buffer, row.payload.byteOffset, row.payload.byteLength),
      headers: row.headers,
      createdAt: row.created_at,
    }));
    await this.publisher.publish(events);
    const first = events[0]!.seq;
    const last = events[events.length - 1]!.seq;
    // Prepared (named): the primary key is its only possible plan.
    await this.pool.query({ name: 'pki_outbox_relay_mark', text: 'UPDATE outbox SET published_at = now() WHERE producer = $1 AND seq BETWEEN $2 AND $3', values: [lane.producer, first, last] });
    this.published += events.length;
    lane.lag = Math.max(0, Number(rows[0]!.head_seq ?? last) - last);
    return events.length;
  }

  private async acquire(lane: Lane): Promise<boolean> {
    const control = await this.controlConnection();
    const { rows } = await control.client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS locked', [
      `pki.outbox.relay:${control.schema}:${lane.producer}`,
    ]);
    return rows[0]?.locked === true;
  }

  /** The connection that holds the delivery locks and listens for appends; reopened after a loss. */
  private controlConnection(): Promise<ControlConnection> {
    if (!this.control) {
      const opening = ControlConnection.open(this.pool, (producer) => this.lanes.find((l) => l.producer === producer)?.wake(), () => {
        // Session locks die with the session: every lane must re-acquire before delivering again.
        if (this.control === opening) this.control = undefined;
        for (const lane of this.lanes) lane.active = false;
        this.logger.warn('outbox relay: lost the lock connection; re-acquiring delivery locks');
      });
      this.control = opening;
      opening.catch(() => {
        if (this.control === opening) this.control = undefined;
      });
    }
    return this.control;
  }

  /**
   * Waits up to `ms`, or until an append to this producer (NOTIFY) and then `lingerMs` more, so
   * that the appends committing meanwhile travel in the same batch; a stop ends the wait at once.
   */
  private idle(lane: Lane, ms: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    const linger = this.lingerMs;
    return new Promise((resolve) => {
      let timer = setTimeout(done, ms);
      let lingering = false;
      const stopping = () => this.stopping;
      function done() {
        clearTimeout(timer);
        lane.wake = () => undefined;
        resolve();
      }
      lane.wake = () => {
        if (linger <= 0 || stopping()) return done();
        if (lingering) return;
        lingering = true;
        clearTimeout(timer);
        timer = setTimeout(done, linger);
      };
    });
  }

  /** Waits `ms` unless stopping. */
  private async pause(ms: number): Promise<void> {
    const until = Date.now() + ms;
    while (!this.stopping && Date.now() < until) await new Promise((r) => setTimeout(r, Math.min(100, until - Date.now())));
  }
}

interface OutboxRow {
  seq: string;
  topic: string;
  key: string;
  payload: Buffer;
  headers: Record<string, string>;
  created_at: Date;
  head_seq: string | null;
}

class ControlConnection {
  private constructor(
    readonly client: PoolClient,
    readonly schema: string,
    private readonly onError: (err: Error) => void,
  ) {}

  static async open(pool: Pool, onAppend: (producer: string) => void, onLost: () => void): Promise<ControlConnection> {
    const client = await pool.connect();
    let connection: ControlConnection | undefined;
    const onError = (err: Error) => {
      client.release(err);
      connection?.detach();
      onLost();
    };
    client.on('error', onError);
    try {
      const { rows } = await client.query<{ schema: string | null }>('SELECT current_schema() AS schema');
      const schema = rows[0]?.schema;
      if (!schema) throw new PkiError('FAILED_PRECONDITION', 'outbox relay: the pool has no schema on its search_path');
      client.on('notification', (message) => {
        if (message.channel === outboxChannel(schema) && message.payload) onAppend(message.payload);
      });
      await client.query(`LISTEN "${outboxChannel(schema)}"`);
      connection = new ControlConnection(client, schema, onError);
      return connection;
    } catch (err) {
      client.off('error', onError);
      client.release(err instanceof Error ? err : new Error(String(err)));
      throw err;
    }
  }

  private detach(): void {
    this.client.off('error', this.onError);
    this.client.removeAllListeners('notification');
  }

  /** Releases the locks and the LISTEN by ending the session: the connection is not reused. */
  async close(): Promise<void> {
    // Unlock explicitly so a standby sees the locks free at once, not when the backend has exited.
    await this.client.query('SELECT pg_advisory_unlock_all()').catch(() => undefined);
    this.detach();
    this.client.release(true);
  }
}
