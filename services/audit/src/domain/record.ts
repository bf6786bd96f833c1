import { createHash } from 'node:crypto';
import { fromBinary } from '@bufbuild/protobuf';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { hashLeaf } from '@pki/merkle';
import { eventsV1 } from '@pki/proto';

/**
 * The leaves of the audit log. Each leaf is one line of JSON (UTF-8, no newline inside), written
 * once by the audit service when it records an event and never re-encoded: the database keeps the
 * bytes, exports carry them verbatim, and the leaf hash is SHA-256(0x00 || those bytes) (RFC 9162
 * §2.1.1). An auditor reads the same text the tree commits to, and a verifier hashes lines
 * without parsing them back into anything.
 *
 * Key order is fixed (JSON.stringify keeps insertion order; attribute keys are sorted), so the
 * same event always yields the same line.
 */

export const OUTCOMES: Record<number, string> = {
  [eventsV1.AuditOutcome.INTENT]: 'INTENT',
  [eventsV1.AuditOutcome.SUCCESS]: 'SUCCESS',
  [eventsV1.AuditOutcome.FAILURE]: 'FAILURE',
};
export const ACTOR_TYPES: Record<number, string> = {
  [eventsV1.AuditActorType.SERVICE]: 'SERVICE',
  [eventsV1.AuditActorType.OFFICER]: 'OFFICER',
  [eventsV1.AuditActorType.CITIZEN]: 'CITIZEN',
  [eventsV1.AuditActorType.HOUSEHOLD_SYSTEM]: 'HOUSEHOLD_SYSTEM',
  [eventsV1.AuditActorType.AGENCY_SYSTEM]: 'AGENCY_SYSTEM',
  [eventsV1.AuditActorType.CUSTODIAN]: 'CUSTODIAN',
};

/** An event leaf: one audited action as its producer stated it, with its place in the producer's sequence. */
export interface EventLeaf {
  type: 'event';
  index: number;
  producer: string;
  seq: number;
  eventId: string;
  occurredAt: string;
  action: string;
  outcome: string;
  actor: { type: string; id: string; office: string; role: string };
  objects: Array<{ type: string; id: string }>;
  reason: string;
  attributes: Record<string, string>;
  /** When the producer's transaction appended it to its outbox. */
  committedAt: string;
  /** SHA-256 of the producer's protobuf bytes: ties the leaf to the producer's outbox row. */
  payloadSha256: string;
}

/**
 * Why the log recorded a break instead of (or before) an event:
 * - sequence-gap: events expectedSeq..receivedSeq-1 of the producer never arrived; the event
 *   receivedSeq follows as the next leaf of that producer.
 * - sequence-conflict: a redelivery of an already recorded sequence number with other content.
 * - sequence-out-of-order: an older sequence number than the producer's head that was not recorded.
 * - undecodable-event: the payload is not an AuditEvent (its sequence number counts as used).
 * - unattributable-message: a message without producer and sequence headers.
 */
export type BreakKind = 'sequence-gap' | 'sequence-conflict' | 'sequence-out-of-order' | 'undecodable-event' | 'unattributable-message';

export interface BreakLeaf {
  type: 'break';
  index: number;
  kind: BreakKind;
  producer: string;
  /** The sequence number the producer's next event should have had. */
  expectedSeq: number;
  /** The sequence number that arrived (0 when the message carried none). */
  receivedSeq: number;
  payloadSha256: string;
  detectedAt: string;
  detail: string;
}

export type Leaf = EventLeaf | BreakLeaf;

export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * The event leaf for a decoded AuditEvent, or undefined when the payload is not a complete one
 * (no event id, action, outcome or actor): such a payload becomes an undecodable-event break.
 */
export function eventLeaf(index: number, producer: string, seq: number, payload: Uint8Array, committedAt: Date): EventLeaf | undefined {
  let event: eventsV1.AuditEvent;
  try {
    event = fromBinary(eventsV1.AuditEventSchema, payload);
  } catch {
    return undefined;
  }
  const outcome = OUTCOMES[event.outcome];
  const actorType = event.actor ? ACTOR_TYPES[event.actor.type] : undefined;
  if (!event.eventId || !event.action || !outcome || !actorType || !event.actor?.id || !event.occurredAt) return undefined;
  const attributes: Record<string, string> = {};
  for (const key of Object.keys(event.attributes).sort()) attributes[key] = event.attributes[key]!;
  return {
    type: 'event',
    index,
    producer,
    seq,
    eventId: event.eventId,
    occurredAt: timestampDate(event.occurredAt).toISOString(),
    action: event.action,
    outcome,
    actor: { type: actorType, id: event.actor.id, office: event.actor.office, role: event.actor.role },
    objects: event.objects.map((o) => ({ type: o.type, id: o.id })),
    reason: event.reason,
    attributes,
    committedAt: committedAt.toISOString(),
    payloadSha256: sha256Hex(payload),
  };
}

/** The exact bytes of a leaf (one JSON line without its newline). */
export function encodeLeaf(leaf: Leaf): Buffer {
  return Buffer.from(JSON.stringify(leaf), 'utf8');
}

export function leafHashOf(bytes: Uint8Array): Buffer {
  return hashLeaf(bytes);
}
