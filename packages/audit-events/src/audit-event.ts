import { randomUUID } from 'node:crypto';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { PkiError, type Clock } from '@pki/kit';
import type { Tx } from '@pki/db';
import { appendEvent, appendEvents, type NewEvent } from '@pki/outbox';
import { eventsV1, Topics } from '@pki/proto';

export const AuditOutcome = eventsV1.AuditOutcome;
export const AuditActorType = eventsV1.AuditActorType;

/** Where a service writes its audit events: its outbox producer, and the clock that stamps them. */
export interface AuditChannel {
  producer: string;
  clock: Clock;
}

export interface AuditActor {
  type: eventsV1.AuditActorType;
  id: string;
  office?: string;
  role?: string;
}

export interface AuditObject {
  type: string;
  id: string;
}

/** One audited action as a producer states it (proto/pki/events/v1/events.proto, AuditEvent). */
export interface NewAuditEvent {
  action: string;
  outcome: eventsV1.AuditOutcome;
  actor: AuditActor;
  objects?: readonly AuditObject[];
  reason?: string;
  attributes?: Record<string, string>;
  /** Defaults to a fresh UUID. */
  eventId?: string;
}

/** The actor for a call from another service (its SPIFFE identity) or the service's own jobs. */
export function serviceActor(identity: string): AuditActor {
  return { type: AuditActorType.SERVICE, id: identity };
}

const ACTION = /^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)+$/;

/**
 * Writes one audit event into the caller's transaction (architecture.md: audit is its own typed
 * channel, not a log level). It is committed with the state change it describes, or not at all;
 * a caller that could not write its intent does not act. Returns the event id.
 */
export async function appendAuditEvent(tx: Tx, channel: AuditChannel, event: NewAuditEvent): Promise<string> {
  const { eventId, payload } = encodeAuditEvent(channel, event);
  await appendEvent(tx, { producer: channel.producer, topic: Topics.audit, key: channel.producer, payload });
  return eventId;
}

/**
 * Writes several audit events of one action into the caller's transaction in one statement, in
 * order (a bulk operation: a batch of revocations, an import). Same rules as
 * {@link appendAuditEvent}; returns the event ids.
 */
export async function appendAuditEvents(tx: Tx, channel: AuditChannel, events: readonly NewAuditEvent[]): Promise<string[]> {
  const encoded = events.map((e) => encodeAuditEvent(channel, e));
  await appendEvents(tx, encoded.map((e) => ({ producer: channel.producer, topic: Topics.audit, key: channel.producer, payload: e.payload })));
  return encoded.map((e) => e.eventId);
}

/**
 * One audit event as the outbox event that carries it, for a caller that appends it together with
 * other events of its transaction in one statement (`appendEvents`). Same rules as
 * {@link appendAuditEvent}; the caller appends it in the transaction of the action it records.
 */
export function auditOutboxEvent(channel: AuditChannel, event: NewAuditEvent): { eventId: string; event: NewEvent } {
  const { eventId, payload } = encodeAuditEvent(channel, event);
  return { eventId, event: { producer: channel.producer, topic: Topics.audit, key: channel.producer, payload } };
}

function encodeAuditEvent(channel: AuditChannel, event: NewAuditEvent): { eventId: string; payload: Uint8Array } {
  if (!ACTION.test(event.action)) throw new PkiError('INTERNAL', `append audit event: action '${event.action}' is not '<object>.<verb>[.<phase>]'`);
  if (event.outcome === AuditOutcome.UNSPECIFIED) throw new PkiError('INTERNAL', `append audit event ${event.action}: no outcome`);
  if (event.actor.type === AuditActorType.UNSPECIFIED || event.actor.id === '') {
    throw new PkiError('INTERNAL', `append audit event ${event.action}: no actor`);
  }
  const eventId = event.eventId ?? randomUUID();
  const message = create(eventsV1.AuditEventSchema, {
    eventId,
    action: event.action,
    outcome: event.outcome,
    actor: { type: event.actor.type, id: event.actor.id, office: event.actor.office ?? '', role: event.actor.role ?? '' },
    objects: (event.objects ?? []).map((o) => ({ type: o.type, id: o.id })),
    reason: event.reason ?? '',
    attributes: event.attributes ?? {},
    occurredAt: timestampFromDate(channel.clock.now()),
  });
  return { eventId, payload: toBinary(eventsV1.AuditEventSchema, message) };
}

export function decodeAuditEvent(payload: Uint8Array): eventsV1.AuditEvent {
  return fromBinary(eventsV1.AuditEventSchema, payload);
}
