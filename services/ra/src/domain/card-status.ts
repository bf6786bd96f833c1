import { PkiError } from '@pki/kit';
import type { RegistryTx } from '../ports/registry';
import { assertOfficeScope, authorize, type Principal } from './access';
import { assertCardTransition, cardStatusAfter, revocationReasonOf, type RevocationReason, type StatusReason } from './lifecycle';
import type { AuditActor, CardRecord, HouseholdEventKind, SubscriberRecord, SubscriberStatus } from './model';
import { parseNationalId } from './national-id';
import { afterWrongCode, assertNotLocked } from './subscriber-code';
import { actorOf, changeCertificateStatus, idempotencyConflict, idempotencyScope, isLive, runOnce, type Command, type RaDeps } from './shared';
import { CARD_NUMBER } from './issuance';
import { cardView, type CardView } from './views';
import type { Approvals } from './approvals';

export interface RevokeCardInput {
  /** An RFC 5280 reason name or a programme status value (lifecycle.ts). */
  reason: string;
  /** When the key is known or suspected to have been compromised (RFC 5280 §5.3.2). */
  invalidityDate?: string;
  comment?: string;
}

export type RevocationOutcome = { state: 'REVOKED'; card: CardView } | { state: 'PENDING_APPROVAL'; approvalRequestId: string };

export interface HouseholdEventInput {
  eventId: string;
  kind: HouseholdEventKind;
  nationalId: string;
  occurredAt: string;
}

export interface HouseholdEventResult {
  eventId: string;
  outcome: 'CERTIFICATES_REVOKED' | 'NO_LIVE_CERTIFICATES' | 'UNKNOWN_PERSON';
  revokedCertificates: number;
}

export const HOUSEHOLD_EVENT_KINDS: readonly HouseholdEventKind[] = ['ID_CHANGE', 'NAME_CHANGE', 'DEATH', 'DECLARED_DEATH', 'NATIONALITY_LOSS'];

/** domain.md: automatic revocation "on change of ID number or name, death, declaration of death, loss of nationality". */
const HOUSEHOLD_EFFECT: Readonly<Record<HouseholdEventKind, { reason: RevocationReason; subscriber: SubscriberStatus }>> = {
  ID_CHANGE: { reason: 'affiliationChanged', subscriber: 'ID_CHANGED' },
  NAME_CHANGE: { reason: 'affiliationChanged', subscriber: 'NAME_CHANGED' },
  DEATH: { reason: 'cessationOfOperation', subscriber: 'DECEASED' },
  DECLARED_DEATH: { reason: 'cessationOfOperation', subscriber: 'DECEASED' },
  NATIONALITY_LOSS: { reason: 'cessationOfOperation', subscriber: 'NATIONALITY_LOST' },
};

type CardOperation = 'activate' | 'suspend' | 'resume' | 'revoke';

/**
 * Card status: activation on receipt, suspension (certificateHold) and resumption, revocation,
 * by an officer, by the citizen with the subscriber code, or by the household-registration
 * system. Both certificates of a card always move together, in one transaction with their status
 * events and the audit event.
 */
export class CardStatusService {
  readonly #deps: RaDeps;
  #approvals!: Approvals;

  constructor(deps: RaDeps) {
    this.#deps = deps;
  }

  useApprovals(approvals: Approvals): void {
    this.#approvals = approvals;
  }

  async byOfficer(command: Command, cardNumber: string, operation: 'activate' | 'suspend' | 'resume', comment?: string): Promise<CardView> {
    const name = `${operation} card`;
    authorize(command.principal, `card.${operation}`, name);
    checkCardNumber(cardNumber, name);
    return runOnce(this.#deps, command, name, async (tx) => {
      const card = await this.#card(tx, cardNumber, name);
      return this.apply(tx, card, operation, { actor: actorOf(command.principal), by: actorIdOf(command.principal), ...(comment ? { comment } : {}) });
    });
  }

  /** Revocation by an officer: at once, or as a request for a second officer when dual control says so. */
  async revoke(command: Command, cardNumber: string, input: RevokeCardInput): Promise<RevocationOutcome> {
    const operation = 'revoke card';
    authorize(command.principal, 'card.revoke', operation);
    checkCardNumber(cardNumber, operation);
    const reason = revocationReasonOf(input.reason, operation);
    const invalidityDate = parseInvalidityDate(input.invalidityDate, this.#deps.clock.now(), operation);
    return runOnce(this.#deps, command, operation, async (tx) => {
      const card = await this.#card(tx, cardNumber, operation);
      assertCardTransition(cardNumber, card.status, 'revoke');
      if (this.#deps.policy.dualControl.operations.has('card.revoke')) {
        const approvalRequestId = await this.#approvals.file(tx, command.principal, { operation: 'card.revoke', cardNumber, reason, ...(input.invalidityDate ? { invalidityDate: input.invalidityDate } : {}), ...(input.comment ? { comment: input.comment } : {}) }, this.#deps.clock.now());
        return { state: 'PENDING_APPROVAL' as const, approvalRequestId };
      }
      const view = await this.apply(tx, card, 'revoke', { actor: actorOf(command.principal), by: actorIdOf(command.principal), reason, ...(invalidityDate ? { invalidityDate } : {}) });
      return { state: 'REVOKED' as const, card: view };
    });
  }

  /** Bulk revocation: always a request that a second officer approves (dual control). */
  async requestBulkRevocation(command: Command, cardNumbers: string[], reasonInput: string, comment?: string): Promise<{ approvalRequestId: string; cards: number }> {
    const operation = 'bulk revoke cards';
    authorize(command.principal, 'cards.bulk-revoke', operation);
    const reason = revocationReasonOf(reasonInput, operation);
    if (!Array.isArray(cardNumbers) || cardNumbers.length === 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: cardNumbers is empty`);
    if (cardNumbers.length > this.#deps.policy.maxBulkCards) throw new PkiError('INVALID_ARGUMENT', `${operation}: at most ${this.#deps.policy.maxBulkCards} cards per request`);
    if (new Set(cardNumbers).size !== cardNumbers.length) throw new PkiError('INVALID_ARGUMENT', `${operation}: a card number appears twice`);
    for (const c of cardNumbers) checkCardNumber(c, operation);
    return runOnce(this.#deps, command, operation, async (tx) => {
      for (const number of cardNumbers) {
        const card = await tx.getCard(number);
        if (!card) throw new PkiError('NOT_FOUND', `${operation}: no card ${number}`);
        assertOfficeScope(command.principal, card.office, operation, `card ${number}`);
      }
      const approvalRequestId = await this.#approvals.file(tx, command.principal, { operation: 'cards.bulk-revoke', cardNumbers, reason, ...(comment ? { comment } : {}) }, this.#deps.clock.now());
      return { approvalRequestId, cards: cardNumbers.length };
    });
  }

  /**
   * Self-service (domain.md): the citizen suspends, resumes or confirms receipt of a card with the
   * card number and their subscriber code. A wrong code, or a card number that does not exist,
   * gets the same answer after the same work; repeated wrong codes lock self-service for a while.
   */
  async bySelfService(command: Command, operation: 'activate' | 'suspend' | 'resume', cardNumber: string, code: unknown): Promise<CardView> {
    const name = `self-service ${operation}`;
    authorize(command.principal, 'self-service', name);
    const subscriber = await this.verifySubscriberCode(cardNumber, code, name, operation);
    const citizen = { ...command, principal: { kind: 'citizen' as const } };
    return runOnce(
      this.#deps,
      citizen,
      name,
      async (tx) => {
        const current = (await tx.getSubscriber(subscriber.id, { forUpdate: true }))!;
        if (current.codeAttempts.failures > 0) await tx.updateSubscriberCodeAttempts(subscriber.id, { ...current.codeAttempts, failures: 0 });
        const locked = await tx.getCard(cardNumber, { forUpdate: true });
        return this.apply(tx, locked!, operation, { actor: { type: 'citizen', personRef: subscriber.personRef }, by: `citizen:${subscriber.personRef}` });
      },
      cardNumber,
    );
  }

  /**
   * Checks the subscriber code of the holder of `cardNumber`: self-service here, and card-mgmt's
   * PIN unlock and mobile binding through gRPC. A wrong code, or a card number that does not
   * exist, gets the same answer after the same work; each wrong code counts towards the lock
   * (audited), and a right one clears the count.
   */
  async verifySubscriberCode(cardNumber: string, code: unknown, name: string, purpose: string): Promise<SubscriberRecord> {
    const { registry, hasher, clock, policy } = this.#deps;
    const wrong = () => new PkiError('UNAUTHENTICATED', `${name}: the card number or the subscriber code is wrong`);
    if (typeof code !== 'string' || code.length === 0 || code.length > 256) throw new PkiError('INVALID_ARGUMENT', `${name}: subscriberCode is required`);
    const card = CARD_NUMBER.test(cardNumber) ? await registry.reads.getCard(cardNumber) : undefined;
    const subscriber = card ? await registry.reads.getSubscriber(card.subscriberId) : undefined;
    if (!card || !subscriber) {
      await hasher.dummyVerify(code);
      throw wrong();
    }
    assertNotLocked(subscriber.codeAttempts, clock.now(), name);
    if (!(await hasher.verify(code, subscriber.subscriberCodeHash))) {
      const locked = await registry.transaction(async (tx) => {
        // Re-read under lock: concurrent wrong guesses must each count.
        const current = (await tx.getSubscriber(subscriber.id, { forUpdate: true }))!;
        const next = afterWrongCode(current.codeAttempts, clock.now(), policy.subscriberCode);
        await tx.updateSubscriberCodeAttempts(subscriber.id, next);
        const actor: AuditActor = { type: 'citizen', personRef: subscriber.personRef };
        await tx.audit({ action: 'self-service.authenticate', outcome: 'FAILURE', actor, objects: [{ type: 'card', id: cardNumber }], reason: 'wrong subscriber code', attributes: { operation: purpose } });
        if (next.locked) {
          await tx.audit({
            action: 'self-service.lock',
            outcome: 'SUCCESS',
            actor: { type: 'service', id: this.#deps.serviceIdentity },
            objects: [{ type: 'subscriber', id: subscriber.personRef }, { type: 'card', id: cardNumber }],
            reason: `${policy.subscriberCode.maxFailures} wrong subscriber codes`,
            attributes: { lockedUntil: next.locked.toISOString(), lockNumber: String(next.lockouts) },
          });
        }
        return next.locked;
      });
      if (locked) assertNotLocked({ failures: 0, lockouts: 0, lockedUntil: locked }, clock.now(), name);
      throw wrong();
    }
    if (hasher.needsRehash(subscriber.subscriberCodeHash)) {
      // A hash carried over from the old CA centre (or weaker than today's): the code is known
      // right now, so it is re-hashed with the current scheme and the old hash is gone for good.
      const upgraded = await hasher.hash(code);
      await registry.transaction(async (tx) => {
        if (await tx.replaceSubscriberCodeHash(subscriber.id, subscriber.subscriberCodeHash, upgraded)) {
          const scheme = subscriber.subscriberCodeHash.split('$')[0]!;
          await tx.audit({ action: 'subscriber-code.upgrade', outcome: 'SUCCESS', actor: { type: 'service', id: this.#deps.serviceIdentity }, objects: [{ type: 'subscriber', id: subscriber.personRef }], attributes: { from: scheme, to: upgraded.split('$')[0]! } });
        }
      });
    }
    return subscriber;
  }

  /** A right code, checked for another service (card-mgmt): clears the failure count, audited. */
  async confirmSubscriberCode(cardNumber: string, code: unknown, purpose: string, caller: string): Promise<{ subscriberId: string }> {
    const name = `verify subscriber code (${purpose})`;
    const subscriber = await this.verifySubscriberCode(cardNumber, code, name, purpose);
    await this.#deps.registry.transaction(async (tx) => {
      const current = (await tx.getSubscriber(subscriber.id, { forUpdate: true }))!;
      if (current.codeAttempts.failures > 0) await tx.updateSubscriberCodeAttempts(subscriber.id, { ...current.codeAttempts, failures: 0 });
      await tx.audit({ action: 'self-service.authenticate', outcome: 'SUCCESS', actor: { type: 'citizen', personRef: subscriber.personRef }, objects: [{ type: 'card', id: cardNumber }], attributes: { operation: purpose, for: caller } });
    });
    return { subscriberId: subscriber.id };
  }

  /**
   * A household-registration event (ID change, name change, death, declaration of death, loss of
   * nationality) revokes the person's certificates. Each event id is processed once, however often
   * the sender retries it; an event about an unknown person is recorded and answered, not dropped.
   */
  async householdEvent(command: Command, input: HouseholdEventInput): Promise<HouseholdEventResult> {
    const operation = 'household event';
    authorize(command.principal, 'household-event.submit', operation);
    if (typeof input.eventId !== 'string' || !/^[A-Za-z0-9._:-]{1,64}$/.test(input.eventId)) throw new PkiError('INVALID_ARGUMENT', `${operation}: eventId must be 1-64 letters, digits, . _ : -`);
    if (!HOUSEHOLD_EVENT_KINDS.includes(input.kind)) throw new PkiError('INVALID_ARGUMENT', `${operation}: kind must be one of ${HOUSEHOLD_EVENT_KINDS.join(', ')}`);
    const nationalId = parseNationalId(input.nationalId, operation);
    const now = this.#deps.clock.now();
    const occurredAt = new Date(input.occurredAt);
    if (typeof input.occurredAt !== 'string' || Number.isNaN(occurredAt.getTime())) throw new PkiError('INVALID_ARGUMENT', `${operation}: occurredAt must be an RFC 3339 date-time`);
    if (occurredAt.getTime() > now.getTime() + 5 * 60_000) throw new PkiError('INVALID_ARGUMENT', `${operation}: occurredAt is in the future`);
    const { vault } = this.#deps;
    const personRef = vault.personReference(nationalId.value);
    const sender = command.principal.kind === 'household-system' ? command.principal.id : 'unknown';
    const scope = idempotencyScope(command.principal);
    return this.#deps.registry.transaction(async (tx) => {
      const claim = await tx.claimIdempotency(scope, command.idempotencyKey, operation, command.fingerprint);
      if (claim.kind === 'conflict') throw idempotencyConflict(operation, command.idempotencyKey, claim.operation);
      if (claim.kind === 'done') return claim.result as HouseholdEventResult;
      // The event id is the sender's own: a retry under a new idempotency key is still the same event.
      const seen = await tx.getHouseholdEvent(input.eventId, { forUpdate: true });
      if (seen) {
        if (!seen.fingerprint.equals(command.fingerprint)) throw new PkiError('CONFLICT', `${operation}: event ${input.eventId} was already received with different content`);
        await tx.completeIdempotency(scope, command.idempotencyKey, seen.result);
        return seen.result as HouseholdEventResult;
      }
      const subscriber = await tx.findSubscriberByLookup(vault.lookupHashes(nationalId.value), { forUpdate: true });
      const effect = HOUSEHOLD_EFFECT[input.kind];
      let result: HouseholdEventResult;
      const actor = actorOf(command.principal);
      if (!subscriber) {
        result = { eventId: input.eventId, outcome: 'UNKNOWN_PERSON', revokedCertificates: 0 };
        await tx.audit({ action: 'household-event.receive', outcome: 'SUCCESS', actor, objects: [{ type: 'household-event', id: input.eventId }, { type: 'subscriber', id: personRef }], reason: 'no subscriber with this national ID', attributes: { kind: input.kind } });
      } else {
        let revoked = 0;
        // Death and the like make the certificates invalid from the event, not from its processing.
        const invalidityDate = input.kind === 'ID_CHANGE' || input.kind === 'NAME_CHANGE' ? undefined : occurredAt;
        for (const card of await tx.cardsOfSubscriber(subscriber.id, { forUpdate: true })) {
          if (card.status === 'REVOKED') continue;
          const live = (await tx.certificatesOfCard(card.cardNumber, { forUpdate: true })).filter((c) => isLive(c, now));
          await changeCertificateStatus(tx, live, { status: 'REVOKED', reason: effect.reason, ...(invalidityDate ? { invalidityDate } : {}), at: now, by: `household:${sender}` });
          await tx.updateCard(card.cardNumber, { status: 'REVOKED' });
          revoked += live.length;
          await tx.audit({
            action: 'card.revoke',
            outcome: 'SUCCESS',
            actor,
            objects: [{ type: 'card', id: card.cardNumber }, ...live.map((c) => ({ type: 'certificate', id: c.serialHex })), { type: 'household-event', id: input.eventId }],
            reason: effect.reason,
          });
        }
        for (const application of await tx.openApplications(subscriber.id)) {
          await tx.updateApplication(application.id, { state: 'REJECTED', reason: `household event ${input.kind}` });
        }
        await tx.updateSubscriberStatus(subscriber.id, effect.subscriber);
        result = { eventId: input.eventId, outcome: revoked > 0 ? 'CERTIFICATES_REVOKED' : 'NO_LIVE_CERTIFICATES', revokedCertificates: revoked };
        await tx.audit({
          action: 'household-event.apply',
          outcome: 'SUCCESS',
          actor,
          objects: [{ type: 'household-event', id: input.eventId }, { type: 'subscriber', id: subscriber.personRef }],
          attributes: { kind: input.kind, revokedCertificates: String(revoked), subscriberStatus: effect.subscriber },
        });
      }
      await tx.insertHouseholdEvent({ eventId: input.eventId, sender, kind: input.kind, fingerprint: command.fingerprint, personRef, occurredAt, result });
      await tx.completeIdempotency(scope, command.idempotencyKey, result);
      return result;
    });
  }

  /** Applies one operation to a locked card and its live certificates; used by every path above and by approvals. */
  async apply(
    tx: RegistryTx,
    card: CardRecord,
    operation: CardOperation,
    context: { actor: AuditActor; by: string; reason?: RevocationReason; invalidityDate?: Date; comment?: string; approvalId?: string },
  ): Promise<CardView> {
    const now = this.#deps.clock.now();
    assertCardTransition(card.cardNumber, card.status, operation);
    const certificates = await tx.certificatesOfCard(card.cardNumber, { forUpdate: true });
    const live = certificates.filter((c) => isLive(c, now));
    let moved = live;
    let reason: StatusReason | undefined;
    if (operation === 'suspend') {
      moved = live.filter((c) => c.status === 'VALID');
      reason = 'certificateHold';
    } else if (operation === 'resume') {
      moved = live.filter((c) => c.status === 'SUSPENDED');
      reason = 'removeFromCRL';
    } else if (operation === 'revoke') {
      reason = context.reason ?? 'unspecified';
    }
    if (operation !== 'activate' && operation !== 'revoke' && moved.length === 0) {
      throw new PkiError('FAILED_PRECONDITION', `${operation} card: card ${card.cardNumber} has no certificate that is not expired`);
    }
    if (operation !== 'activate') {
      const status = operation === 'suspend' ? 'SUSPENDED' : operation === 'resume' ? 'VALID' : 'REVOKED';
      await changeCertificateStatus(tx, moved, { status, ...(reason ? { reason } : {}), ...(context.invalidityDate ? { invalidityDate: context.invalidityDate } : {}), at: now, by: context.by });
    }
    const status = cardStatusAfter(operation, card.status, card.activatedAt !== undefined);
    await tx.updateCard(card.cardNumber, { status, ...(operation === 'activate' ? { activatedAt: now } : {}) });
    await tx.audit({
      action: `card.${operation}`,
      outcome: 'SUCCESS',
      actor: context.actor,
      objects: [{ type: 'card', id: card.cardNumber }, ...moved.map((c) => ({ type: 'certificate', id: c.serialHex })), ...(context.approvalId ? [{ type: 'approval', id: context.approvalId }] : [])],
      ...(reason ? { reason } : {}),
      attributes: { cardStatus: status, ...(context.comment ? { comment: context.comment.slice(0, 200) } : {}) },
    });
    const after = await tx.certificatesOfCard(card.cardNumber);
    return cardView({ ...card, status, ...(operation === 'activate' ? { activatedAt: now } : {}) }, after);
  }

  async #card(tx: RegistryTx, cardNumber: string, operation: string): Promise<CardRecord> {
    const card = await tx.getCard(cardNumber, { forUpdate: true });
    if (!card) throw new PkiError('NOT_FOUND', `${operation}: no card ${cardNumber}`);
    return card;
  }
}

function checkCardNumber(cardNumber: string, operation: string): void {
  if (!CARD_NUMBER.test(cardNumber)) throw new PkiError('INVALID_ARGUMENT', `${operation}: card number must be 8-20 upper-case letters and digits`);
}

function actorIdOf(principal: Principal): string {
  return principal.kind === 'officer' || principal.kind === 'household-system' ? principal.id : principal.kind;
}

function parseInvalidityDate(input: string | undefined, now: Date, operation: string): Date | undefined {
  if (input === undefined) return undefined;
  const date = new Date(input);
  if (typeof input !== 'string' || Number.isNaN(date.getTime())) throw new PkiError('INVALID_ARGUMENT', `${operation}: invalidityDate must be an RFC 3339 date-time`);
  if (date.getTime() > now.getTime()) throw new PkiError('INVALID_ARGUMENT', `${operation}: invalidityDate is in the future`);
  return date;
}

export { parseInvalidityDate };
