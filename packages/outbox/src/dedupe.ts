import type { Tx } from '@pki/db';
import type { EventHandler, OutboxEvent } from './events';

/**
 * Remembers, per producer, the highest sequence number applied, and tells duplicates apart.
 * Transports deliver at least once and in order per producer, so "seq <= last applied" is exactly
 * the set of redeliveries. In memory: for consumers whose effect is itself in memory (caches) or
 * idempotent; a consumer that writes to its database uses {@link acceptEventOnce} instead.
 *
 * It does not insist on seq = last + 1: a consumer of one topic may legitimately see only part of
 * a producer's sequence when the producer writes to several topics. Consumers that need the whole
 * chain (audit) give each such producer a single topic and check continuity themselves.
 */
export class ProducerSequenceTracker {
  private readonly last = new Map<string, number>();

  constructor(applied: Iterable<readonly [producer: string, lastSeq: number]> = []) {
    for (const [producer, seq] of applied) this.last.set(producer, seq);
  }

  /** Records the event and returns true when it is new; false for a redelivery. */
  accept(event: Pick<OutboxEvent, 'producer' | 'seq'>): boolean {
    const previous = this.last.get(event.producer) ?? 0;
    if (event.seq <= previous) return false;
    this.last.set(event.producer, event.seq);
    return true;
  }

  lastApplied(producer: string): number | undefined {
    return this.last.get(producer);
  }
}

/**
 * Wraps a handler so that redeliveries are skipped. The sequence is recorded only after the
 * handler succeeds, so a failed event is retried rather than lost.
 */
export function skipRedeliveries(handler: EventHandler, tracker = new ProducerSequenceTracker()): EventHandler {
  return async (event) => {
    if ((tracker.lastApplied(event.producer) ?? 0) >= event.seq) return;
    await handler(event);
    tracker.accept(event);
  };
}

/**
 * Durable dedupe inside the consumer's own transaction (table from `inboxMigration`): returns true
 * and records the event when it is new for `consumer`, false when it was applied before. Because the
 * record commits or rolls back with the effect, the effect happens exactly once.
 */
export async function acceptEventOnce(tx: Tx, consumer: string, event: Pick<OutboxEvent, 'producer' | 'seq'>): Promise<boolean> {
  const { rowCount } = await tx.query(
    `INSERT INTO inbox_position (consumer, producer, last_seq) VALUES ($1, $2, $3)
     ON CONFLICT (consumer, producer) DO UPDATE SET last_seq = EXCLUDED.last_seq, updated_at = now()
       WHERE inbox_position.last_seq < EXCLUDED.last_seq`,
    [consumer, event.producer, event.seq],
  );
  return rowCount === 1;
}
