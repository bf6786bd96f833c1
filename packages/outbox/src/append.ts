import type { Tx } from '@pki/db';
import { PkiError } from '@pki/kit';
import { RESERVED_HEADER_PREFIX } from './events';

export interface NewEvent {
  producer: string;
  topic: string;
  key: string;
  payload: Uint8Array;
  headers?: Record<string, string>;
}

const PRODUCER_NAME = /^[a-z0-9][a-z0-9._-]{0,99}$/;
// Kafka's legal topic characters (and length), so a topic valid here is valid on every transport.
const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;

/** The LISTEN/NOTIFY channel on which appends in `schema` wake that schema's relay. */
export function outboxChannel(schema: string): string {
  return `pki_outbox.${schema}`;
}

/**
 * Appends an event to the outbox inside the caller's transaction and returns its sequence number.
 * The event exists if and only if the transaction commits.
 *
 * The producer's `outbox_head` row is locked from here until the transaction ends, so:
 * - a rolled-back transaction gives its number back: sequences have no gaps;
 * - the next writer of the same producer waits for this one: sequence order is commit order,
 *   which the relay, the consumers' dedupe and the audit hash chain rely on.
 * Hence append LATE in the transaction, after the work that may fail or take time: the lock
 * serialises all writers of one producer for as long as it is held.
 *
 * The NOTIFY is delivered at commit (and dropped on rollback) and wakes the relay early.
 */
export async function appendEvent(tx: Tx, event: NewEvent): Promise<number> {
  validate(event);
  const { rows } = await tx.query<{ seq: string }>(
    `WITH head AS (
       INSERT INTO outbox_head (producer, last_seq) VALUES ($1, 1)
       ON CONFLICT (producer) DO UPDATE SET last_seq = outbox_head.last_seq + 1
       RETURNING last_seq
     )
     INSERT INTO outbox (producer, seq, topic, key, payload, headers)
     SELECT $1, head.last_seq, $2, $3, $4, $5 FROM head
     RETURNING seq, pg_notify('pki_outbox.' || current_schema(), producer)`,
    [event.producer, event.topic, event.key, Buffer.from(event.payload.buffer, event.payload.byteOffset, event.payload.byteLength), event.headers ?? {}],
  );
  return Number(rows[0]!.seq);
}

function validate(event: NewEvent): void {
  const fail = (reason: string) => new PkiError('INVALID_ARGUMENT', `append event: ${reason}`);
  if (!PRODUCER_NAME.test(event.producer)) throw fail(`producer ${JSON.stringify(event.producer)} must match ${PRODUCER_NAME}`);
  if (!TOPIC_NAME.test(event.topic)) throw fail(`topic ${JSON.stringify(event.topic)} must match ${TOPIC_NAME}`);
  if (typeof event.key !== 'string') throw fail('key must be a string');
  if (!(event.payload instanceof Uint8Array)) throw fail('payload must be a Uint8Array');
  for (const [name, value] of Object.entries(event.headers ?? {})) {
    if (name.startsWith(RESERVED_HEADER_PREFIX)) throw fail(`header ${name} uses the reserved prefix ${RESERVED_HEADER_PREFIX}`);
    if (typeof value !== 'string') throw fail(`header ${name} must be a string`);
  }
}
