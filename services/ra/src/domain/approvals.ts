import { randomUUID } from 'node:crypto';
import { PkiError } from '@pki/kit';
import type { RegistryTx } from '../ports/registry';
import { assertOfficeScope, authorize, officeFilter, type Principal } from './access';
import { revocationReasonOf } from './lifecycle';
import type { ApprovalPayload, ApprovalRecord, ApprovalState } from './model';
import { actorOf, idempotencyConflict, idempotencyScope, type Command, type RaDeps } from './shared';
import { approvalView, type ApprovalView, type CardView } from './views';
import type { CardStatusService } from './card-status';
import type { Issuance, IssuanceView } from './issuance';
import type { Page, PageRequest } from '../ports/registry';
import { parseInvalidityDate } from './card-status';

export interface ApprovalDecision {
  approval: ApprovalView;
  /** card.revoke: the revoked card. */
  card?: CardView;
  /** cards.bulk-revoke: how many cards were revoked, and which were already revoked. */
  revokedCards?: number;
  alreadyRevoked?: string[];
  /** application.issue: the issued card. */
  issuance?: IssuanceView;
}

/**
 * Dual control: operations the policy names (officer-initiated revocation, re-issuance after key
 * compromise, bulk operations) are filed as requests and carried out only when a second officer,
 * never the requester, approves them before they expire. Every request, approval, rejection and
 * expiry is audited.
 */
export class Approvals {
  readonly #deps: RaDeps;
  readonly #cards: CardStatusService;
  readonly #issuance: Issuance;

  constructor(deps: RaDeps, cards: CardStatusService, issuance: Issuance) {
    this.#deps = deps;
    this.#cards = cards;
    this.#issuance = issuance;
  }

  /** Files a request in the caller's transaction; returns its id. */
  async file(tx: RegistryTx, principal: Principal, payload: ApprovalPayload, now: Date): Promise<string> {
    if (principal.kind !== 'officer') throw new PkiError('PERMISSION_DENIED', `request approval: only officers file requests`);
    const id = randomUUID();
    const approval: ApprovalRecord = {
      id,
      operation: payload.operation,
      payload,
      state: 'PENDING',
      office: principal.office,
      requestedBy: principal.id,
      createdAt: now,
      expiresAt: new Date(now.getTime() + this.#deps.policy.dualControl.requestTtlMinutes * 60_000),
    };
    await tx.insertApproval(approval);
    await tx.audit({
      action: 'approval.request',
      outcome: 'SUCCESS',
      actor: actorOf(principal),
      objects: [{ type: 'approval', id }, ...targetObjects(payload)],
      attributes: { operation: payload.operation, expiresAt: approval.expiresAt.toISOString(), ...('reason' in payload ? { reason: payload.reason } : {}) },
    });
    return id;
  }

  async decide(command: Command, approvalId: string, decision: 'approve' | 'reject', comment?: string): Promise<ApprovalDecision> {
    const operation = `${decision} request`;
    authorize(command.principal, 'approval.decide', operation);
    if (decision !== 'approve' && decision !== 'reject') throw new PkiError('INVALID_ARGUMENT', `${operation}: decision must be approve or reject`);
    const principal = command.principal;
    if (principal.kind !== 'officer') throw new PkiError('PERMISSION_DENIED', `${operation}: only officers decide`);
    const scope = idempotencyScope(principal);
    const now = this.#deps.clock.now();
    const decided = await this.#deps.registry.transaction(async (tx) => {
      const claim = await tx.claimIdempotency(scope, command.idempotencyKey, operation, command.fingerprint);
      if (claim.kind === 'conflict') throw idempotencyConflict(operation, command.idempotencyKey, claim.operation);
      if (claim.kind === 'done') return { kind: 'done' as const, result: await this.#replay(tx, claim.result) };
      const approval = await tx.getApproval(approvalId, { forUpdate: true });
      if (!approval) throw new PkiError('NOT_FOUND', `${operation}: no approval request ${approvalId}`);
      assertOfficeScope(principal, approval.office, operation, `approval request ${approvalId}`);
      if (approval.state === 'APPROVED' && claim.kind === 'in-progress' && approval.operation === 'application.issue') {
        return { kind: 'issue' as const, approval }; // this very command approved it and crashed before issuing
      }
      if (approval.state !== 'PENDING') throw new PkiError('FAILED_PRECONDITION', `${operation}: approval request ${approvalId} is ${approval.state}; only a PENDING request can be decided`);
      if (approval.expiresAt <= now) throw await this.#refused(approval, principal, new PkiError('FAILED_PRECONDITION', `${operation}: approval request ${approvalId} expired at ${approval.expiresAt.toISOString()}; file a new request`));
      if (approval.requestedBy === principal.id) {
        throw await this.#refused(approval, principal, new PkiError('PERMISSION_DENIED', `${operation}: officer ${principal.id} filed approval request ${approvalId} and cannot decide it; a second officer must (dual control)`));
      }
      const audited = { actor: actorOf(principal), objects: [{ type: 'approval', id: approvalId }, ...targetObjects(approval.payload)], attributes: { operation: approval.operation, requestedBy: approval.requestedBy } };
      if (decision === 'reject') {
        await tx.updateApproval(approvalId, { state: 'REJECTED', decidedBy: principal.id, decidedAt: now, ...(comment ? { comment } : {}) });
        if (approval.payload.operation === 'application.issue') await tx.updateApplication(approval.payload.applicationId, { state: 'REJECTED', reason: 'approval request rejected', decidedBy: principal.id });
        await tx.audit({ action: 'approval.reject', outcome: 'SUCCESS', ...audited });
        const result: ApprovalDecision = { approval: approvalView({ ...approval, state: 'REJECTED', decidedBy: principal.id, decidedAt: now, ...(comment ? { comment } : {}) }, now) };
        await tx.completeIdempotency(scope, command.idempotencyKey, result);
        return { kind: 'done' as const, result };
      }
      await tx.audit({ action: 'approval.approve', outcome: 'SUCCESS', ...audited });
      const result = await this.#execute(tx, approval, principal, now, comment);
      if ('resumeIssuance' in result) return { kind: 'issue' as const, approval: result.resumeIssuance };
      await tx.completeIdempotency(scope, command.idempotencyKey, result);
      return { kind: 'done' as const, result };
    });
    if (decided.kind === 'done') return decided.result;
    // Re-issuance: the approval committed; issuing talks to ca-signer outside the transaction.
    const approval = decided.approval;
    const payload = approval.payload as Extract<ApprovalPayload, { operation: 'application.issue' }>;
    const application = await this.#deps.registry.reads.getApplication(payload.applicationId);
    if (!application) throw new PkiError('INTERNAL', `${operation}: application ${payload.applicationId} disappeared`);
    const issuance = await this.#issuance.issue(application);
    return this.#deps.registry.transaction(async (tx) => {
      const current = (await tx.getApproval(approvalId, { forUpdate: true }))!;
      if (current.state === 'APPROVED') await tx.updateApproval(approvalId, { state: 'EXECUTED' });
      const view = approvalView({ ...current, state: 'EXECUTED' }, now);
      // As for an ordinary approval (decision 0037): the record names the application, and a replay
      // renders its card from the registry; the certificates carry the subject's name, which must
      // not sit in clear in the key's record.
      await tx.completeIdempotency(scope, command.idempotencyKey, { approval: view, issuedApplication: application.id } satisfies IssuedDecision);
      return { approval: view, issuance };
    });
  }

  /** The answer to a replayed decision: as stored, or for a re-issuance, with the card rendered from the registry. */
  async #replay(tx: RegistryTx, stored: unknown): Promise<ApprovalDecision> {
    if (typeof stored !== 'object' || stored === null || !('issuedApplication' in stored)) return stored as ApprovalDecision; // other decisions, and records written before references
    const { approval, issuedApplication } = stored as IssuedDecision;
    return { approval, issuance: await this.#issuance.presentApplication(tx, issuedApplication) };
  }

  /**
   * A refused decision changes nothing, but it is audited: an officer approving their own request,
   * or a request past its time, is what an auditor of dual control looks for. Written in a
   * transaction of its own, since the caller's rolls back.
   */
  async #refused(approval: ApprovalRecord, principal: Principal, error: PkiError): Promise<PkiError> {
    await this.#deps.registry.transaction((tx) =>
      tx.audit({
        action: 'approval.decide',
        outcome: 'FAILURE',
        actor: actorOf(principal),
        objects: [{ type: 'approval', id: approval.id }, ...targetObjects(approval.payload)],
        reason: error.message,
        attributes: { operation: approval.operation, requestedBy: approval.requestedBy },
      }),
    );
    return error;
  }

  async #execute(tx: RegistryTx, approval: ApprovalRecord, approver: Extract<Principal, { kind: 'officer' }>, now: Date, comment?: string): Promise<ApprovalDecision | { resumeIssuance: ApprovalRecord }> {
    const payload = approval.payload;
    const decided = { decidedBy: approver.id, decidedAt: now, ...(comment ? { comment } : {}) };
    const context = { actor: actorOf(approver), by: approver.id, approvalId: approval.id };
    switch (payload.operation) {
      case 'card.revoke': {
        const card = await tx.getCard(payload.cardNumber, { forUpdate: true });
        if (!card) throw new PkiError('NOT_FOUND', `approve request: card ${payload.cardNumber} no longer exists`);
        const invalidityDate = parseInvalidityDate(payload.invalidityDate, now, 'approve request');
        const view = await this.#cards.apply(tx, card, 'revoke', { ...context, reason: revocationReasonOf(payload.reason, 'approve request'), ...(invalidityDate ? { invalidityDate } : {}) });
        await tx.updateApproval(approval.id, { state: 'EXECUTED', ...decided });
        return { approval: approvalView({ ...approval, state: 'EXECUTED', ...decided }, now), card: view };
      }
      case 'cards.bulk-revoke': {
        const reason = revocationReasonOf(payload.reason, 'approve request');
        const alreadyRevoked: string[] = [];
        let revokedCards = 0;
        for (const number of payload.cardNumbers) {
          const card = await tx.getCard(number, { forUpdate: true });
          if (!card || card.status === 'REVOKED') {
            alreadyRevoked.push(number);
            continue;
          }
          await this.#cards.apply(tx, card, 'revoke', { ...context, reason });
          revokedCards++;
        }
        await tx.updateApproval(approval.id, { state: 'EXECUTED', ...decided });
        return { approval: approvalView({ ...approval, state: 'EXECUTED', ...decided }, now), revokedCards, alreadyRevoked };
      }
      case 'application.issue': {
        const application = await tx.getApplication(payload.applicationId, { forUpdate: true });
        if (application?.state !== 'PENDING_APPROVAL') throw new PkiError('FAILED_PRECONDITION', `approve request: application ${payload.applicationId} is ${application?.state ?? 'missing'}`);
        await tx.updateApplication(application.id, { state: 'ISSUING', decidedBy: approver.id });
        await tx.updateApproval(approval.id, { state: 'APPROVED', ...decided });
        return { resumeIssuance: { ...approval, state: 'APPROVED', ...decided } };
      }
    }
  }

  async get(principal: Principal, id: string): Promise<ApprovalView> {
    const operation = 'get approval request';
    authorize(principal, 'approval.read', operation);
    const approval = await this.#deps.registry.reads.getApproval(id);
    if (!approval) throw new PkiError('NOT_FOUND', `${operation}: no approval request ${id}`);
    assertOfficeScope(principal, approval.office, operation, `approval request ${id}`);
    return approvalView(approval, this.#deps.clock.now());
  }

  async list(principal: Principal, state: ApprovalState | undefined, page: PageRequest): Promise<Page<ApprovalView>> {
    authorize(principal, 'approval.read', 'list approval requests');
    const office = officeFilter(principal);
    const result = await this.#deps.registry.reads.listApprovals({ ...(office ? { office } : {}), ...(state ? { state } : {}) }, page);
    const now = this.#deps.clock.now();
    return { items: result.items.map((a) => approvalView(a, now)), ...(result.nextPageToken ? { nextPageToken: result.nextPageToken } : {}) };
  }

  /** Marks expired requests EXPIRED (and their re-issue applications REJECTED), each audited. */
  async expireOverdue(limit = 500): Promise<number> {
    const now = this.#deps.clock.now();
    return this.#deps.registry.transaction(async (tx) => {
      const overdue = await tx.pendingApprovalsExpiredBy(now, limit);
      for (const approval of overdue) {
        await tx.updateApproval(approval.id, { state: 'EXPIRED' });
        if (approval.payload.operation === 'application.issue') await tx.updateApplication(approval.payload.applicationId, { state: 'REJECTED', reason: 'approval request expired' });
        await tx.audit({
          action: 'approval.expire',
          outcome: 'SUCCESS',
          actor: { type: 'service', id: this.#deps.serviceIdentity },
          objects: [{ type: 'approval', id: approval.id }, ...targetObjects(approval.payload)],
          attributes: { operation: approval.operation, requestedBy: approval.requestedBy, expiresAt: approval.expiresAt.toISOString() },
        });
      }
      return overdue.length;
    });
  }
}

/** The idempotency record of an approved re-issuance: the decision, and the application whose card the registry holds. */
interface IssuedDecision {
  approval: ApprovalView;
  issuedApplication: string;
}

function targetObjects(payload: ApprovalPayload): Array<{ type: string; id: string }> {
  switch (payload.operation) {
    case 'card.revoke':
      return [{ type: 'card', id: payload.cardNumber }];
    case 'cards.bulk-revoke':
      return payload.cardNumbers.map((id) => ({ type: 'card', id }));
    case 'application.issue':
      return [{ type: 'application', id: payload.applicationId }];
  }
}
