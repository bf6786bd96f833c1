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
  const { rows } = await tx.query<{ seq: string }>({
    name: 'pki_outbox_append_event',
    text: `WITH head AS (
       INSERT INTO outbox_head (producer, last_seq) VALUES ($1, 1)
       ON CONFLICT (producer) DO UPDATE SET last_seq = outbox_head.last_seq + 1
       RETURNING last_seq
     )
     INSERT INTO outbox (producer, seq, topic, key, payload, headers)
     SELECT $1, head.last_seq, $2, $3, $4, $5 FROM head
     RETURNING seq, pg_notify('pki_outbox.' || current_schema(), producer)`,
    values: [event.producer, event.topic, event.key, Buffer.from(event.payload.buffer, event.payload.byteOffset, event.payload.byteLength), event.headers ?? {}],
  });
  return Number(rows[0]!.seq);
}

/**
 * Appends several events in one statement (one round trip), each producer's numbered in array
 * order; the same guarantees as {@link appendEvent}. For an action that records several events at
 * once (a batch of revocations, an import, a transaction's status and audit events appended
 * together at its end), where per-event round trips would dominate. Returns the sequence numbers
 * in array order. Being one statement, it may also run outside a transaction (on the pool), as its
 * own (a batch of events committed together: BatchCommit's single-statement mode).
 *
 * Events of several producers may share a call: their head rows are locked in producer-name
 * order, so two transactions appending to the same producers cannot deadlock on each other here.
 */
export async function appendEvents(tx: Pick<Tx, 'query'>, events: readonly NewEvent[]): Promise<number[]> {
  if (events.length === 0) return [];
  // Named: prepared once per connection (the statement is the same on every call).
  const { rows } = await tx.query<{ producer: string; last_seq: string }>({ name: 'pki_outbox_append_events', text: APPEND_EVENTS_SQL, values: eventColumns(events) });
  // Each producer's events took the numbers up to its new head, in array order.
  const counts = new Map<string, number>();
  for (const e of events) counts.set(e.producer, (counts.get(e.producer) ?? 0) + 1);
  const next = new Map<string, number>();
  for (const r of rows) next.set(r.producer, Number(r.last_seq) - counts.get(r.producer)! + 1);
  return events.map((e) => {
    const seq = next.get(e.producer)!;
    next.set(e.producer, seq + 1);
    return seq;
  });
}

/**
 * The events as the five arrays an append statement takes (producers, topics, keys, payloads,
 * headers as JSON), validated: the parameters of {@link appendEventsFrom}'s source, in this order.
 */
export function eventColumns(events: readonly NewEvent[]): [string[], string[], string[], Buffer[], string[]] {
  for (const event of events) validate(event);
  return [
    events.map((e) => e.producer),
    events.map((e) => e.topic),
    events.map((e) => e.key),
    events.map((e) => Buffer.from(e.payload.buffer, e.payload.byteOffset, e.payload.byteLength)),
    events.map((e) => JSON.stringify(e.headers ?? {})),
  ];
}

/**
 * The common table expressions that append the rows of `source` to the outbox, for a statement that
 * writes something else and its events at once: a single statement is its own transaction, so such
 * a write needs no BEGIN and COMMIT round trips. `source` names a relation of the statement with the
 * columns (producer, topic, key, payload, headers, ord): `ord` orders each producer's events. The
 * statement must read `outbox_notified` (for instance `(SELECT count(*) FROM outbox_notified)`):
 * a CTE that is not data-modifying runs only if read, and it wakes the relay. Same guarantees as
 * {@link appendEvents}; `outbox_head_rows` holds each producer's new head.
 */
export function appendEventsFrom(source: string): string {
  // Per producer: the head advances by its count of events (one row each, so no row is updated
  // twice by the statement), and event number `rank` of `count` takes last_seq - count + rank.
  return `outbox_e AS (
       SELECT s.producer, s.topic, s.key, s.payload, s.headers,
              row_number() OVER (PARTITION BY s.producer ORDER BY s.ord) AS rank, count(*) OVER (PARTITION BY s.producer) AS count
         FROM ${source} s
     ), outbox_head_rows AS (
       INSERT INTO outbox_head (producer, last_seq)
       SELECT producer, count(*) FROM outbox_e GROUP BY producer ORDER BY producer
       ON CONFLICT (producer) DO UPDATE SET last_seq = outbox_head.last_seq + EXCLUDED.last_seq
       RETURNING producer, last_seq
     ), outbox_appended AS (
       INSERT INTO outbox (producer, seq, topic, key, payload, headers)
       SELECT e.producer, h.last_seq - e.count + e.rank, e.topic, e.key, e.payload, e.headers
         FROM outbox_e e JOIN outbox_head_rows h USING (producer)
     ), outbox_notified AS (
       SELECT producer, last_seq, pg_notify('pki_outbox.' || current_schema(), producer) FROM outbox_head_rows
     )`;
}

/**
 * The events passed as {@link eventColumns}' five parameters, numbered from `$first`, as a query
 * whose rows are a `source` for {@link appendEventsFrom} (`ord` is the array order).
 */
export function eventRows(first: number): string {
  return `SELECT * FROM unnest($${first}::text[], $${first + 1}::text[], $${first + 2}::text[], $${first + 3}::bytea[], $${first + 4}::jsonb[])
              WITH ORDINALITY AS s(producer, topic, key, payload, headers, ord)`;
}

// (A data-modifying WITH runs to completion whether or not the query reads it.)
const APPEND_EVENTS_SQL = `WITH outbox_source AS (
       ${eventRows(1)}
     ), ${appendEventsFrom('outbox_source')}
     SELECT producer, last_seq FROM outbox_notified`;

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
