import { PkiError } from '@pki/kit';

// The audit channel is shared by every service (packages/audit-events); ca-signer's events name
// their caller's mTLS identity as a SERVICE actor, and ceremonies their custodians.
export { appendAuditEvent, appendAuditEvents, auditOutboxEvent, serviceActor, AuditOutcome, AuditActorType, type AuditChannel, type NewAuditEvent } from '@pki/audit-events';

/**
 * Fails fast, before a serial is reserved or an intent written, when the HSM is known to be down
 * (the circuit breaker's health is a cached answer, no HSM call): a request that cannot be signed
 * should cost nothing and leave no intent behind.
 */
export async function assertHsmAvailable(keyManager: { healthCheck(): Promise<{ healthy: boolean; detail: string }> }, operation: string): Promise<void> {
  const health = await keyManager.healthCheck();
  if (!health.healthy) throw new PkiError('UNAVAILABLE', `${operation}: HSM unavailable (${health.detail})`);
}
