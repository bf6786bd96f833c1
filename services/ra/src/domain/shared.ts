import { PkiError, type Clock, type Logger } from '@pki/kit';
import type { Registry, RegistryTx } from '../ports/registry';
import type { CertificateSigner, FaultPoints } from '../ports/certificate-signer';
import type { PersonalDataVault } from '../ports/personal-data-vault';
import type { CodeHasher } from '../ports/code-hasher';
import type { Principal } from './access';
import type { AuditActor, CertificateRecord, StatusChange } from './model';
import type { CertificateStatus, ExtensionPolicy, StatusReason } from './lifecycle';
import type { SubscriberCodePolicy } from './subscriber-code';
import type { IssuerDirectory } from './issuer-directory';
import type { ApprovalOperation } from './model';

export interface DualControlPolicy {
  /** Operations that wait for a second officer's approval. */
  operations: ReadonlySet<ApprovalOperation>;
  /** How long a request waits before it expires. */
  requestTtlMinutes: number;
}

export interface RaPolicy {
  extension: ExtensionPolicy;
  subscriberCode: SubscriberCodePolicy;
  dualControl: DualControlPolicy;
  /** The most a bulk revocation may name. */
  maxBulkCards: number;
  /** How long one ca-signer call may take. */
  signerDeadlineMs: number;
}

export interface RaDeps {
  registry: Registry;
  signer: CertificateSigner;
  issuers: IssuerDirectory;
  vault: PersonalDataVault;
  hasher: CodeHasher;
  clock: Clock;
  logger: Logger;
  faults: FaultPoints;
  policy: RaPolicy;
  /** This service's identity, the actor of what it does on its own (reconciliation, expiry). */
  serviceIdentity: string;
}

/**
 * One mutating request: who asks, and the idempotency key and request fingerprint that make a
 * retry safe. The fingerprint is a keyed hash of the request (bodies carry subscriber codes and
 * national IDs, which must not be stored even as plain hashes).
 */
export interface Command {
  principal: Principal;
  idempotencyKey: string;
  fingerprint: Buffer;
}

/** Idempotency keys are scoped to their caller: two counters may pick the same key. */
export function idempotencyScope(principal: Principal, subject?: string): string {
  switch (principal.kind) {
    case 'officer':
      return `officer:${principal.id}`;
    case 'household-system':
      return `household:${principal.id}`;
    case 'agency-system':
      return `agency:${principal.id}`;
    case 'citizen':
      return `citizen:${subject ?? ''}`;
    case 'public':
      return 'public';
  }
}

/**
 * Runs a single-transaction command once per idempotency key: a replay with the same request gets
 * the stored result, one with another request is refused, and a command that fails changes
 * nothing (its claim rolls back with it). Any store whose transactions are registry transactions
 * (the agency store's are) serves as `registry`.
 */
export async function runOnce<T, Tx extends RegistryTx = RegistryTx>(
  deps: { registry: { transaction<R>(work: (tx: Tx) => Promise<R>): Promise<R> } },
  command: Command,
  operation: string,
  work: (tx: Tx) => Promise<T>,
  scopeSubject?: string,
): Promise<T> {
  const scope = idempotencyScope(command.principal, scopeSubject);
  return deps.registry.transaction(async (tx) => {
    const claim = await tx.claimIdempotency(scope, command.idempotencyKey, operation, command.fingerprint);
    if (claim.kind === 'conflict') throw idempotencyConflict(operation, command.idempotencyKey, claim.operation);
    if (claim.kind === 'done') return claim.result as T;
    const result = await work(tx);
    await tx.completeIdempotency(scope, command.idempotencyKey, result);
    return result;
  });
}

export function idempotencyConflict(operation: string, key: string, previous: string): PkiError {
  return new PkiError('CONFLICT', `${operation}: idempotency key '${key}' was already used for a different request${previous !== operation ? ` (${previous})` : ''}`);
}

export function actorOf(principal: Principal, personRef?: string): AuditActor {
  switch (principal.kind) {
    case 'officer':
      return { type: 'officer', id: principal.id, office: principal.office, role: principal.role };
    case 'household-system':
      return { type: 'household-system', id: principal.id };
    case 'agency-system':
      return { type: 'agency-system', id: principal.id };
    case 'citizen':
      return { type: 'citizen', personRef: personRef ?? 'unknown' };
    case 'public':
      throw new PkiError('INTERNAL', 'the public makes no audited changes');
  }
}

export function actorId(principal: Principal): string {
  return principal.kind === 'officer' || principal.kind === 'household-system' || principal.kind === 'agency-system' ? principal.id : principal.kind;
}

/** Whether a certificate can still change status: not revoked, not expired. */
export function isLive(certificate: CertificateRecord, now: Date): boolean {
  return certificate.status !== 'REVOKED' && certificate.notAfter.getTime() > now.getTime();
}

/**
 * Moves certificates to a new status in the caller's transaction, each with its history row and
 * its status event (serial, generation, status, reason, revocation time, invalidity date).
 */
export async function changeCertificateStatus(
  tx: RegistryTx,
  certificates: readonly CertificateRecord[],
  change: { status: CertificateStatus; reason?: StatusReason; invalidityDate?: Date; at: Date; by: string },
): Promise<StatusChange[]> {
  const changes: StatusChange[] = [];
  for (const c of certificates) {
    const revocationTime = change.status === 'VALID' ? undefined : change.at;
    // RFC 5280 §5.3.2: an invalidity date only says something when it precedes the revocation.
    const invalidityDate = change.status === 'REVOKED' && change.invalidityDate && change.invalidityDate < change.at ? change.invalidityDate : undefined;
    await tx.updateCertificateStatus(c.serialHex, { status: change.status, reason: change.reason, revocationTime, invalidityDate, at: change.at, by: change.by });
    const event: StatusChange = {
      serialHex: c.serialHex,
      issuerKeyId: c.issuerKeyId,
      profile: c.profile,
      status: change.status,
      previousStatus: c.status,
      reason: change.reason,
      revocationTime,
      invalidityDate,
      changedAt: change.at,
      notBefore: c.notBefore,
      notAfter: c.notAfter,
    };
    await tx.recordStatusChange(event);
    changes.push(event);
  }
  return changes;
}
