import { createHash, randomInt } from 'node:crypto';
import { PkiError } from '@pki/kit';
import { fromPem, parseCsr } from '@pki/x509';
import type { RegistryTx } from '../ports/registry';
import type { CitizenProfile, SignedCertificate } from '../ports/certificate-signer';
import { assertOfficeScope, authorize, type Principal } from './access';
import { assertCardTransition, extendedNotAfter, type RevocationReason } from './lifecycle';
import type { ApplicationKind, ApplicationRecord, AuditRecord, CardRecord, CertificateRecord, KeySlot, StatusChange, SubscriberRecord } from './model';
import { actorOf, changeCertificateStatus, idempotencyConflict, idempotencyScope, isLive, type Command, type RaDeps } from './shared';
import { applicationView, cardView, type ApplicationView, type CardView } from './views';
import type { Approvals } from './approvals';

export interface CreateApplicationInput {
  subscriberId: string;
  cardNumber: string;
  kind: 'NEW' | 'REPLACEMENT' | 'REISSUE';
  /** REPLACEMENT and REISSUE: the card the new one supersedes. */
  replacesCard?: string;
  /** PKCS#10 requests (PEM) made with the card's two key pairs: the proof of possession. */
  signingCsr: string;
  encryptionCsr: string;
}

export interface IssuanceView {
  application: ApplicationView;
  card: CardView;
}

/** The result of asking for something that waits for a second officer. */
export interface PendingApprovalView {
  application: ApplicationView;
  approvalRequestId: string;
}

export const CARD_NUMBER = /^[A-Z0-9]{8,20}$/;

const SLOTS: ReadonlyArray<{ slot: KeySlot; profile: CitizenProfile }> = [
  { slot: 'SIGN', profile: 'citizen-signature' },
  { slot: 'KEYX', profile: 'citizen-encryption' },
];

/**
 * Applications and issuance: a card's two key pairs (SIGN and KEYX) become the card's two
 * certificates, built by ra from its own record (the CSRs count only for their keys and their
 * proof of possession) and signed by ca-signer.
 *
 * Crash consistency: the application is ISSUING before ca-signer is called, each certificate is
 * requested under the idempotency key `ra/<application>/<slot>`, and the certificates, the card,
 * their status events and audit events are recorded in one transaction afterwards. A crash
 * anywhere in between leaves an ISSUING application that a retry (the same idempotency key) or the
 * reconciler finishes with the same certificates; ca-signer never signs a second pair.
 */
export class Issuance {
  readonly #deps: RaDeps;
  #approvals!: Approvals;

  constructor(deps: RaDeps) {
    this.#deps = deps;
  }

  /** Wired after construction: approvals execute issuance, and issuance files approval requests. */
  useApprovals(approvals: Approvals): void {
    this.#approvals = approvals;
  }

  async createApplication(command: Command, input: CreateApplicationInput): Promise<ApplicationView> {
    const operation = 'create application';
    const officer = officerOf(command.principal, 'application.create', operation);
    if (!['NEW', 'REPLACEMENT', 'REISSUE'].includes(input.kind)) throw new PkiError('INVALID_ARGUMENT', `${operation}: kind must be NEW, REPLACEMENT or REISSUE`);
    if (!CARD_NUMBER.test(input.cardNumber)) throw new PkiError('INVALID_ARGUMENT', `${operation}: cardNumber must be 8-20 upper-case letters and digits`);
    if (input.kind !== 'NEW' && !input.replacesCard) throw new PkiError('INVALID_ARGUMENT', `${operation}: a ${input.kind} application names the card it replaces (replacesCard)`);
    if (input.kind === 'NEW' && input.replacesCard) throw new PkiError('INVALID_ARGUMENT', `${operation}: a NEW application replaces no card; use kind REPLACEMENT or REISSUE`);
    const signingSpki = cardKey(input.signingCsr, 'signingCsr', operation);
    const encryptionSpki = cardKey(input.encryptionCsr, 'encryptionCsr', operation);
    if (signingSpki.equals(encryptionSpki)) throw new PkiError('INVALID_ARGUMENT', `${operation}: the signing and encryption keys are the same key; a card has two key pairs`);

    const now = this.#deps.clock.now();
    const id = deterministicId(idempotencyScope(command.principal), command.idempotencyKey);
    const dualControl = input.kind === 'REISSUE' && this.#deps.policy.dualControl.operations.has('application.issue');
    return this.#deps.registry.transaction(async (tx) => {
      const scope = idempotencyScope(command.principal);
      const claim = await tx.claimIdempotency(scope, command.idempotencyKey, operation, command.fingerprint);
      if (claim.kind === 'conflict') throw idempotencyConflict(operation, command.idempotencyKey, claim.operation);
      if (claim.kind === 'done') return claim.result as ApplicationView;
      const subscriber = await tx.getSubscriber(input.subscriberId, { forUpdate: true });
      if (!subscriber) throw new PkiError('NOT_FOUND', `${operation}: no subscriber ${input.subscriberId}`);
      if (subscriber.status !== 'ACTIVE') throw new PkiError('FAILED_PRECONDITION', `${operation}: subscriber ${subscriber.id} is ${subscriber.status}; no certificate can be issued to them`);
      const open = await tx.openApplications(subscriber.id);
      if (open.length > 0) {
        throw new PkiError('CONFLICT', `${operation}: duplicate application: subscriber ${subscriber.id} already has application ${open[0]!.id} in state ${open[0]!.state}`);
      }
      const cards = await tx.cardsOfSubscriber(subscriber.id);
      const liveCards = cards.filter((c) => c.status !== 'REVOKED');
      if (input.kind === 'NEW' && liveCards.length > 0) {
        throw new PkiError('CONFLICT', `${operation}: duplicate application: subscriber ${subscriber.id} already holds card ${liveCards[0]!.cardNumber} (${liveCards[0]!.status}); apply for a REPLACEMENT instead`);
      }
      if (input.replacesCard) {
        const old = cards.find((c) => c.cardNumber === input.replacesCard);
        if (!old) throw new PkiError('INVALID_ARGUMENT', `${operation}: card ${input.replacesCard} is not a card of subscriber ${subscriber.id}`);
        if (old.status === 'REVOKED') throw new PkiError('FAILED_PRECONDITION', `${operation}: card ${old.cardNumber} is already REVOKED; apply for a NEW card`);
      }
      if (await tx.cardNumberTaken(input.cardNumber)) throw new PkiError('ALREADY_EXISTS', `${operation}: card ${input.cardNumber} is already issued or applied for`);
      if (await tx.keysInUse([signingSpki, encryptionSpki])) throw new PkiError('CONFLICT', `${operation}: a public key of these requests is already certified or applied for`);
      let subjectSerial = randomSubjectSerial();
      while (await tx.subjectSerialTaken(subjectSerial)) subjectSerial = randomSubjectSerial();

      const application: ApplicationRecord = {
        id,
        kind: input.kind,
        state: dualControl ? 'PENDING_APPROVAL' : 'SUBMITTED',
        subscriberId: subscriber.id,
        cardNumber: input.cardNumber,
        ...(input.replacesCard ? { replacesCard: input.replacesCard } : {}),
        subjectSerial,
        office: officer.office,
        createdBy: officer.id,
        signingSpki,
        encryptionSpki,
        createdAt: now,
        updatedAt: now,
      };
      await tx.insertApplication(application);
      await tx.audit({
        action: 'application.create',
        outcome: 'SUCCESS',
        actor: actorOf(command.principal),
        objects: [{ type: 'application', id }, { type: 'subscriber', id: subscriber.personRef }, { type: 'card', id: input.cardNumber }],
        attributes: { kind: input.kind, ...(input.replacesCard ? { replacesCard: input.replacesCard } : {}) },
      });
      let approvalRequestId: string | undefined;
      if (dualControl) approvalRequestId = await this.#approvals.file(tx, command.principal, { operation: 'application.issue', applicationId: id }, now);
      const view = applicationView(application, approvalRequestId);
      await tx.completeIdempotency(scope, command.idempotencyKey, view);
      return view;
    });
  }

  /** An officer approves an application: ca-signer issues the card's two certificates. */
  async approve(command: Command, applicationId: string): Promise<IssuanceView> {
    const operation = 'approve application';
    officerOf(command.principal, 'application.approve', operation);
    const scope = idempotencyScope(command.principal);
    const idempotency = { scope, key: command.idempotencyKey };
    const atOnce = await this.#approveAtOnce(command, applicationId, operation, scope);
    if (atOnce) return this.issue(atOnce.application, { idempotency, subscriber: atOnce.subscriber });
    const started = await this.#deps.registry.transaction(async (tx) => {
      // The application's row is locked before the key's, the order in which the recording (and
      // the one-statement approval) lock them: a retry that claimed the key first and then waited
      // for the application would deadlock with the first run's recording.
      await tx.getApplication(applicationId, { forUpdate: true });
      const claim = await tx.claimIdempotency(scope, command.idempotencyKey, operation, command.fingerprint);
      if (claim.kind === 'conflict') throw idempotencyConflict(operation, command.idempotencyKey, claim.operation);
      if (claim.kind === 'done') return { kind: 'done' as const, result: await this.#replay(tx, claim.result) };
      // A SUBMITTED application becomes ISSUING in one statement, read with its subscriber for the
      // issuance (a refusal below rolls it back with the rest).
      const approved = await tx.transitionApplicationWithSubscriber(applicationId, 'SUBMITTED', { state: 'ISSUING', decidedBy: actorIdOf(command.principal) });
      if (approved) {
        assertOfficeScope(command.principal, approved.application.office, operation, `application ${applicationId}`);
        await tx.audit({ action: 'application.approve', outcome: 'SUCCESS', actor: actorOf(command.principal), objects: [{ type: 'application', id: applicationId }, { type: 'card', id: approved.application.cardNumber }] });
        return { kind: 'issue' as const, ...approved };
      }
      const application = await tx.getApplication(applicationId, { forUpdate: true });
      if (!application) throw new PkiError('NOT_FOUND', `${operation}: no application ${applicationId}`);
      assertOfficeScope(command.principal, application.office, operation, `application ${applicationId}`);
      if (application.state === 'PENDING_APPROVAL') {
        throw new PkiError('FAILED_PRECONDITION', `${operation}: application ${applicationId} is a ${application.kind} and waits for a second officer's approval (dual control)`);
      }
      if (application.state === 'SUBMITTED') {
        await tx.updateApplication(applicationId, { state: 'ISSUING', decidedBy: actorIdOf(command.principal) });
        await tx.audit({ action: 'application.approve', outcome: 'SUCCESS', actor: actorOf(command.principal), objects: [{ type: 'application', id: applicationId }, { type: 'card', id: application.cardNumber }] });
      } else if (application.state !== 'ISSUING' && application.state !== 'ISSUED') {
        throw new PkiError('FAILED_PRECONDITION', `${operation}: application ${applicationId} is ${application.state}; only a SUBMITTED application can be approved`);
      }
      return { kind: 'issue' as const, application: { ...application, state: application.state === 'SUBMITTED' ? ('ISSUING' as const) : application.state }, subscriber: undefined };
    });
    if (started.kind === 'done') return started.result;
    return this.issue(started.application, { idempotency, ...(started.subscriber ? { subscriber: started.subscriber } : {}) });
  }

  /**
   * The common approval in two round trips (decision 0040): the application and its subscriber
   * read, the checks made here, then the move to ISSUING, the idempotency claim and the audit
   * event in one statement. Undefined when that does not apply (not SUBMITTED, the key already
   * held, a concurrent change): nothing was written, and the transactional way decides and says
   * why. Refusals found on the read (another office) are thrown as the transactional way would.
   */
  async #approveAtOnce(command: Command, applicationId: string, operation: string, scope: string): Promise<{ application: ApplicationRecord; subscriber: SubscriberRecord } | undefined> {
    const { registry, clock } = this.#deps;
    const found = await registry.reads.getApplicationWithSubscriber(applicationId);
    if (found?.application.state !== 'SUBMITTED') return undefined;
    const { application, subscriber } = found;
    assertOfficeScope(command.principal, application.office, operation, `application ${applicationId}`);
    const decidedBy = actorIdOf(command.principal);
    const at = clock.now();
    const moved = await registry.approveAtOnce({
      applicationId,
      ...(decidedBy ? { decidedBy } : {}),
      at,
      idempotency: { scope, key: command.idempotencyKey, operation, fingerprint: command.fingerprint },
      audits: [{ action: 'application.approve', outcome: 'SUCCESS', actor: actorOf(command.principal), objects: [{ type: 'application', id: applicationId }, { type: 'card', id: application.cardNumber }] }],
    });
    if (!moved) return undefined;
    return { application: { ...application, state: 'ISSUING', ...(decidedBy ? { decidedBy } : {}), updatedAt: at }, subscriber };
  }

  async reject(command: Command, applicationId: string, reason: string): Promise<ApplicationView> {
    const operation = 'reject application';
    officerOf(command.principal, 'application.reject', operation);
    if (typeof reason !== 'string' || reason.trim() === '' || reason.length > 200) throw new PkiError('INVALID_ARGUMENT', `${operation}: reason must be 1-200 characters`);
    const scope = idempotencyScope(command.principal);
    return this.#deps.registry.transaction(async (tx) => {
      const claim = await tx.claimIdempotency(scope, command.idempotencyKey, operation, command.fingerprint);
      if (claim.kind === 'conflict') throw idempotencyConflict(operation, command.idempotencyKey, claim.operation);
      if (claim.kind === 'done') return claim.result as ApplicationView;
      const application = await tx.getApplication(applicationId, { forUpdate: true });
      if (!application) throw new PkiError('NOT_FOUND', `${operation}: no application ${applicationId}`);
      assertOfficeScope(command.principal, application.office, operation, `application ${applicationId}`);
      if (application.state !== 'SUBMITTED' && application.state !== 'PENDING_APPROVAL') {
        throw new PkiError('FAILED_PRECONDITION', `${operation}: application ${applicationId} is ${application.state}; only a SUBMITTED or PENDING_APPROVAL application can be rejected`);
      }
      await tx.updateApplication(applicationId, { state: 'REJECTED', reason: reason.trim(), decidedBy: actorIdOf(command.principal) });
      await tx.audit({ action: 'application.reject', outcome: 'SUCCESS', actor: actorOf(command.principal), objects: [{ type: 'application', id: applicationId }], reason: 'rejected by officer' });
      const view = applicationView({ ...application, state: 'REJECTED', reason: reason.trim(), updatedAt: this.#deps.clock.now() });
      await tx.completeIdempotency(scope, command.idempotencyKey, view);
      return view;
    });
  }

  /**
   * Extension (domain.md): once per card, by three years, inside the window, with the card's own
   * keys. The card's previous certificates are superseded by the extended pair.
   */
  async extend(command: Command, cardNumber: string): Promise<IssuanceView> {
    const operation = 'extend card';
    const officer = officerOf(command.principal, 'card.extend', operation);
    const scope = idempotencyScope(command.principal);
    const id = deterministicId(scope, command.idempotencyKey);
    const now = this.#deps.clock.now();
    const started = await this.#deps.registry.transaction(async (tx) => {
      const claim = await tx.claimIdempotency(scope, command.idempotencyKey, operation, command.fingerprint);
      if (claim.kind === 'conflict') throw idempotencyConflict(operation, command.idempotencyKey, claim.operation);
      if (claim.kind === 'done') return { kind: 'done' as const, result: await this.#replay(tx, claim.result) };
      if (claim.kind === 'in-progress') {
        const resumed = await tx.getApplication(id);
        if (resumed) return { kind: 'issue' as const, application: resumed, subscriber: undefined };
      }
      const card = await tx.getCard(cardNumber, { forUpdate: true });
      if (!card) throw new PkiError('NOT_FOUND', `${operation}: no card ${cardNumber}`);
      assertCardTransition(cardNumber, card.status, 'extend');
      const notAfter = extendedNotAfter({ cardNumber, extended: card.extended, originalNotAfter: card.originalNotAfter, keysCreatedAt: card.keysCreatedAt }, now, this.#deps.policy.extension);
      const open = await tx.openApplications(card.subscriberId);
      if (open.length > 0) throw new PkiError('CONFLICT', `${operation}: subscriber ${card.subscriberId} already has application ${open[0]!.id} in state ${open[0]!.state}`);
      const subscriber = await tx.getSubscriber(card.subscriberId);
      if (subscriber?.status !== 'ACTIVE') throw new PkiError('FAILED_PRECONDITION', `${operation}: subscriber ${card.subscriberId} is ${subscriber?.status ?? 'missing'}`);
      const application: ApplicationRecord = {
        id,
        kind: 'EXTENSION',
        state: 'ISSUING',
        subscriberId: card.subscriberId,
        cardNumber,
        subjectSerial: card.subjectSerial,
        office: officer.office,
        createdBy: officer.id,
        decidedBy: officer.id,
        signingSpki: card.signingSpki,
        encryptionSpki: card.encryptionSpki,
        notAfter,
        createdAt: now,
        updatedAt: now,
      };
      await tx.insertApplication(application);
      await tx.audit({
        action: 'card.extend.request',
        outcome: 'SUCCESS',
        actor: actorOf(command.principal),
        objects: [{ type: 'card', id: cardNumber }, { type: 'application', id }],
        attributes: { notAfter: notAfter.toISOString() },
      });
      return { kind: 'issue' as const, application, subscriber };
    });
    if (started.kind === 'done') return started.result;
    return this.issue(started.application, { idempotency: { scope, key: command.idempotencyKey }, ...(started.subscriber ? { subscriber: started.subscriber } : {}) });
  }

  /**
   * Issues the certificates of an ISSUING application and records them. Safe to run again, by a
   * retry or by the reconciler after a crash: ca-signer returns the same certificates for the
   * same keys, and the recording is skipped when a concurrent run got there first.
   * `idempotency`: the caller's key, completed with the recording; `subscriber`: the application's,
   * when the caller has read it already.
   */
  async issue(application: ApplicationRecord, options: { idempotency?: { scope: string; key: string }; subscriber?: SubscriberRecord } = {}): Promise<IssuanceView> {
    const operation = 'issue certificates';
    const { registry, signer, clock, faults, vault, policy } = this.#deps;
    const { idempotency } = options;
    const subscriber = options.subscriber ?? (await registry.reads.getSubscriber(application.subscriberId));
    if (!subscriber) throw new PkiError('INTERNAL', `${operation}: application ${application.id} names a missing subscriber`);
    const subjectSerial = application.subjectSerial;
    const open = (field: 'nationalId' | 'name' | 'email', ciphertext: Buffer) => vault.open(field, subscriber.id, { keyId: subscriber.sealed.keyId, ciphertext });
    const name = open('name', subscriber.sealed.name);
    const lastFour = open('nationalId', subscriber.sealed.nationalId).slice(-4);
    const email = subscriber.sealed.email ? open('email', subscriber.sealed.email) : undefined;

    faults.reach('issuance.before-signer');
    const deadline = new Date(Date.now() + policy.signerDeadlineMs);
    let signed: SignedCertificate[];
    try {
      signed = await signer.issueMany(
        SLOTS.map(({ slot, profile }) => ({
          idempotencyKey: `ra/${application.id}/${slot}`,
          profile,
          publicKeySpki: slot === 'SIGN' ? application.signingSpki : application.encryptionSpki,
          // ra builds the subject from its own record (domain.md); nothing comes from the CSR.
          subject: [{ type: 'C', value: 'TW' }, { type: 'CN', value: name }, { type: 'serialNumber', value: subjectSerial }],
          nationalIdLastFour: lastFour,
          ...(email ? { email } : {}),
          ...(application.notAfter ? { notAfter: application.notAfter } : {}),
        })),
        deadline,
      );
    } catch (err) {
      const failure = PkiError.from(err, operation);
      // A dependency that is down leaves the application ISSUING for a retry or the reconciler;
      // a refusal (a key the profile rejects, say) is final and recorded.
      if (failure.code !== 'UNAVAILABLE' && failure.code !== 'DEADLINE_EXCEEDED' && failure.code !== 'INTERNAL') {
        await registry.transaction(async (tx) => {
          const current = await tx.getApplication(application.id, { forUpdate: true });
          if (current?.state !== 'ISSUING') return;
          await tx.updateApplication(application.id, { state: 'FAILED', reason: `ca-signer refused: ${failure.code}` });
          await tx.audit({
            action: 'application.issue',
            outcome: 'FAILURE',
            actor: { type: 'service', id: this.#deps.serviceIdentity },
            objects: [{ type: 'application', id: application.id }],
            reason: `${failure.code}: ${failure.message}`,
          });
        });
      }
      throw failure;
    }
    faults.reach('issuance.after-signature');

    const now = clock.now();
    const certificates: CertificateRecord[] = signed.map((s, i) => ({
      serialHex: s.serialHex,
      issuerKeyId: s.issuerKeyId,
      profile: SLOTS[i]!.profile,
      cardNumber: application.cardNumber,
      applicationId: application.id,
      keySlot: SLOTS[i]!.slot,
      status: 'VALID',
      notBefore: s.notBefore,
      notAfter: s.notAfter,
      certificateDer: s.certificateDer,
      createdAt: now,
      updatedAt: now,
    }));
    const newCard = application.kind === 'EXTENSION' ? undefined : cardOf(application, subscriber, signed, now);
    const issuedAudit = (recorded: ApplicationRecord): AuditRecord => ({
      action: 'application.issue',
      outcome: 'SUCCESS',
      actor: { type: 'service', id: this.#deps.serviceIdentity },
      objects: [
        { type: 'application', id: recorded.id },
        { type: 'card', id: recorded.cardNumber },
        { type: 'subscriber', id: subscriber.personRef },
        ...certificates.map((c) => ({ type: 'certificate', id: c.serialHex })),
      ],
      attributes: { kind: recorded.kind, issuerKeyId: certificates[0]!.issuerKeyId, notAfter: certificates[0]!.notAfter.toISOString() },
    });
    const statusChanges: StatusChange[] = certificates.map((c) => ({
      serialHex: c.serialHex, issuerKeyId: c.issuerKeyId, profile: c.profile, status: 'VALID', changedAt: now, notBefore: c.notBefore, notAfter: c.notAfter,
    }));
    const stored = idempotency ? { ...idempotency, result: { issuedApplication: application.id } satisfies IssuedReference } : undefined;
    if (newCard && !application.replacesCard) {
      // A new card that supersedes none, the common case: one statement (decision 0040). If the
      // application is not ISSUING any more, nothing was written and the transaction below finds
      // out what a concurrent run recorded.
      faults.reach('issuance.before-commit');
      const recorded = await registry.recordIssuanceAtOnce({
        applicationId: application.id,
        card: newCard,
        certificates,
        ...(stored ? { idempotency: stored } : {}),
        statusChanges,
        audits: [issuedAudit(application)],
      });
      if (recorded) {
        const view: IssuanceView = { application: applicationView(recorded), card: cardView(newCard, certificates, await this.#chains(certificates, signed[0]!.issuerKeyId)) };
        this.#deps.logger.info({ application: application.id, kind: application.kind, serials: signed.map((s) => s.serialHex) }, 'certificates issued');
        return view;
      }
    }
    const view = await registry.transaction(async (tx) => {
      // ISSUING -> ISSUED first, then the card, its certificates and the idempotency record: the
      // row lock orders this run against a concurrent one (a retry, the reconciler), and the
      // loser, which changed nothing, finds the application ISSUED and presents what was recorded.
      // The stored result names the application and a replay renders it from the registry: the
      // certificates carry the subject's name, so they stay sealed rather than copied in clear
      // into the key's record.
      const current = await tx.recordIssuance({
        applicationId: application.id,
        ...(newCard ? { card: newCard } : {}),
        // An extension's card is changed below (#extendCard): locked before the certificates' inserts reference it.
        ...(application.kind === 'EXTENSION' ? { lockCard: application.cardNumber } : {}),
        certificates,
        ...(stored ? { idempotency: stored } : {}),
      });
      if (!current) {
        const found = await tx.getApplication(application.id, { forUpdate: true });
        if (!found) throw new PkiError('INTERNAL', `${operation}: application ${application.id} disappeared`);
        if (found.state === 'ISSUED') return this.#presentIssued(tx, found); // a concurrent run recorded it
        throw new PkiError('FAILED_PRECONDITION', `${operation}: application ${application.id} is ${found.state}`);
      }
      const card = newCard ?? (await this.#extendCard(tx, current));
      // What the new pair supersedes: the replaced card, or the extended card's previous pair.
      const supersededCard = current.kind === 'EXTENSION' ? current.cardNumber : current.replacesCard;
      if (supersededCard) {
        const reason: RevocationReason = current.kind === 'REISSUE' ? 'keyCompromise' : 'superseded';
        const fresh = new Set(certificates.map((c) => c.serialHex)); // an extended card holds its new pair already
        const old = (await tx.certificatesOfCard(supersededCard, { forUpdate: true })).filter((c) => isLive(c, now) && !fresh.has(c.serialHex));
        await changeCertificateStatus(tx, old, { status: 'REVOKED', reason, at: now, by: this.#deps.serviceIdentity });
        if (current.kind !== 'EXTENSION') await tx.updateCard(supersededCard, { status: 'REVOKED' });
        if (old.length > 0) {
          await tx.audit({
            action: 'card.supersede',
            outcome: 'SUCCESS',
            actor: { type: 'service', id: this.#deps.serviceIdentity },
            objects: [{ type: 'card', id: supersededCard }, ...old.map((c) => ({ type: 'certificate', id: c.serialHex }))],
            reason,
            attributes: { byApplication: current.id },
          });
        }
      }
      for (const change of statusChanges) await tx.recordStatusChange(change);
      await tx.audit(issuedAudit(current));
      // A new card holds just these two; an extended one also its earlier pair.
      const all = current.kind === 'EXTENSION' ? await tx.certificatesOfCard(card.cardNumber) : certificates;
      const result: IssuanceView = {
        application: applicationView(current), // as recorded (state ISSUED), so that a replay renders the same
        card: cardView(card, all, await this.#chains(all, signed[0]!.issuerKeyId)),
      };
      faults.reach('issuance.before-commit');
      return result;
    });
    this.#deps.logger.info({ application: application.id, kind: application.kind, serials: signed.map((s) => s.serialHex) }, 'certificates issued');
    return view;
  }

  /** An extension's card: the same card, marked extended (its new pair is recorded with the application). */
  async #extendCard(tx: RegistryTx, application: ApplicationRecord): Promise<CardRecord> {
    const card = await tx.getCard(application.cardNumber, { forUpdate: true });
    if (!card) throw new PkiError('INTERNAL', `issue certificates: card ${application.cardNumber} disappeared`);
    await tx.updateCard(card.cardNumber, { extended: true });
    return { ...card, extended: true };
  }

  /**
   * The answer to a replayed approval or extension: the application, its card and certificates as
   * the registry holds them (the same as the first answer unless their status has moved on since).
   */
  async #replay(tx: RegistryTx, stored: unknown): Promise<IssuanceView> {
    if (typeof stored !== 'object' || stored === null || !('issuedApplication' in stored)) return stored as IssuanceView; // a record written before references
    return this.presentApplication(tx, (stored as IssuedReference).issuedApplication);
  }

  /**
   * An issued application as a replay answers it: what an idempotency record that names the
   * application (rather than holding its certificates, which carry the subject's name) stands for.
   */
  async presentApplication(tx: RegistryTx, applicationId: string): Promise<IssuanceView> {
    const application = await tx.getApplication(applicationId);
    if (!application) throw new PkiError('INTERNAL', `replay: application ${applicationId} of a completed idempotency key is missing`);
    return this.#presentIssued(tx, application);
  }

  async #presentIssued(tx: RegistryTx, application: ApplicationRecord): Promise<IssuanceView> {
    const card = await tx.getCard(application.cardNumber);
    const all = await tx.certificatesOfCard(application.cardNumber);
    return { application: applicationView(application), card: cardView(card!, all, await this.#chains(all)) };
  }

  async #chains(certificates: readonly CertificateRecord[], justIssuedBy?: string): Promise<Map<string, string[]>> {
    const chains = new Map<string, string[]>();
    for (const keyId of new Set(certificates.map((c) => c.issuerKeyId))) chains.set(keyId, await this.#deps.issuers.chainOf(keyId, { justIssued: keyId === justIssuedBy }));
    return chains;
  }
}

/** A new card for the pair just signed (its keys' creation and original expiry are the pair's). */
function cardOf(application: ApplicationRecord, subscriber: SubscriberRecord, signed: SignedCertificate[], now: Date): CardRecord {
  return {
    cardNumber: application.cardNumber,
    subscriberId: subscriber.id,
    subjectSerial: application.subjectSerial,
    status: 'ISSUED',
    office: application.office,
    extended: false,
    signingSpki: application.signingSpki,
    encryptionSpki: application.encryptionSpki,
    keysCreatedAt: signed[0]!.notBefore,
    originalNotAfter: signed[0]!.notAfter,
    createdAt: now,
  };
}

/** The idempotency record of an issuance: the application, whose card and certificates the registry holds. */
interface IssuedReference {
  issuedApplication: string;
}

function officerOf(principal: Principal, permission: 'application.create' | 'application.approve' | 'application.reject' | 'card.extend', operation: string): Extract<Principal, { kind: 'officer' }> {
  authorize(principal, permission, operation);
  if (principal.kind !== 'officer') throw new PkiError('PERMISSION_DENIED', `${operation}: only officers`);
  return principal;
}

function actorIdOf(principal: Principal): string {
  return principal.kind === 'officer' ? principal.id : principal.kind;
}

/** The key of the card a CSR was made with, once its self-signature proves possession. */
function cardKey(csr: unknown, field: string, operation: string): Buffer {
  if (typeof csr !== 'string' || csr.length === 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} must be a PKCS#10 request in PEM`);
  let parsed;
  try {
    parsed = parseCsr(fromPem(csr, 'CERTIFICATE REQUEST'));
  } catch (err) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} is not a PKCS#10 request in PEM (${(err as Error).message})`, { cause: err });
  }
  if (!parsed.signatureValid) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field}'s signature does not verify with its own key (no proof of possession)`);
  // Cards generate RSA-2048 pairs (domain.md); ca-signer's profiles say the same, but a wrong key
  // is better refused at the counter than after an approval.
  if (parsed.publicKey.type !== 'RSA' || parsed.publicKey.bits !== 2048) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} holds a ${parsed.publicKey.type === 'RSA' ? `RSA-${parsed.publicKey.bits}` : `${parsed.publicKey.type}`} key; a card's keys are RSA-2048`);
  }
  return parsed.subjectPublicKeyInfo;
}

/** A UUID derived from (caller, idempotency key): a retried request finds the record its first try made. */
export function deterministicId(scope: string, key: string): string {
  const h = createHash('sha256').update(`ra/${scope}/${key}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x80; // version 8 (RFC 9562 §5.8: custom)
  h[8] = (h[8]! & 0x3f) | 0x80;
  const hex = h.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/**
 * The 16-digit serialNumber a new card's subject carries (domain.md: assigned by the CA, not the
 * national ID): random, so that it says nothing about the person or the order of issue; the first
 * digit is never 0 so that it reads as 16 digits anywhere. Uniqueness is checked by the caller.
 */
export function randomSubjectSerial(): string {
  return String(randomInt(1, 10)) + Array.from({ length: 15 }, () => randomInt(0, 10)).join('');
}

export type { ApplicationKind };
