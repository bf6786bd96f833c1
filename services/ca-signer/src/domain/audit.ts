import { create, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { PkiError, type Clock } from '@pki/kit';
import type { Tx } from '@pki/db';
import { appendEvent } from '@pki/outbox';
import { eventsV1, Topics } from '@pki/proto';

export const AuditOutcome = eventsV1.AuditOutcome;

export interface AuditChannel {
  /** Outbox producer of this signer's audit events. */
  producer: string;
  clock: Clock;
}

/**
 * Writes one audit event into the caller's transaction (architecture.md: audit is its own typed
 * channel, not a log level). Committed with the state change it describes, or not at all; the
 * caller does not sign when its intent could not be written.
 */
export async function appendAuditEvent(
  tx: Tx,
  channel: AuditChannel,
  event: { action: string; outcome: eventsV1.AuditOutcome; actor: string; attributes: Record<string, string> },
): Promise<void> {
  const message = create(eventsV1.AuditEventSchema, { ...event, occurredAt: timestampFromDate(channel.clock.now()) });
  await appendEvent(tx, { producer: channel.producer, topic: Topics.audit, key: channel.producer, payload: toBinary(eventsV1.AuditEventSchema, message) });
}

/**
 * Fails fast, before a serial is reserved or an intent written, when the HSM is known to be down
 * (the circuit breaker's health is a cached answer, no HSM call): a request that cannot be signed
 * should cost nothing and leave no intent behind.
 */
export async function assertHsmAvailable(keyManager: { healthCheck(): Promise<{ healthy: boolean; detail: string }> }, operation: string): Promise<void> {
  const health = await keyManager.healthCheck();
  if (!health.healthy) throw new PkiError('UNAVAILABLE', `${operation}: HSM unavailable (${health.detail})`);
}
