import { createPublicKey, randomBytes, randomUUID, verify } from 'node:crypto';
import { PkiError, type Clock, type Logger } from '@pki/kit';
import { fromPem, parseCsr, toPem } from '@pki/x509';
import type { CardStore } from '../ports/card-store';
import type { IssuedCardCertificates, RegistrationAuthority } from '../ports/registration-authority';
import { assertOfficeScope, authorize, type Officer } from './access';
import { deriveAdminSecret, deriveTransportSecret, parseTransportKey, wrapSecret, type WrappedSecret } from './admin-secret';
import { stateAfter } from './card-states';
import { actorOf, cardView, checkCardNumber, idempotencyConflict, moveCard, runOnce, type CardView, type Command } from './card-stock';
import type { CardRecord, PersonalisationRecord } from './model';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TOKEN_SERIAL = /^[0-9A-Za-z]{1,32}$/;

export interface CounterDeps {
  store: CardStore;
  ra: RegistrationAuthority;
  clock: Clock;
  logger: Logger;
  /** Key of the per-card administrative secrets (decision 0024). */
  adminSecretKey: Buffer;
  /** Key of the transport secrets the supplier initialised the chips with. */
  transportKey: Buffer;
}

export interface StartPersonalisationInput {
  cardNumber: unknown;
  subscriberId: unknown;
  kind?: unknown;
  replacesCard?: unknown;
  transportKey: unknown;
}

export interface StartedPersonalisation {
  personalisationId: string;
  cardNumber: string;
  /** What the chip's attestation key signs with each new key (base64), see {@link attestationMessage}. */
  challenge: string;
  /**
   * JSON {transportSecret, adminSecret}, wrapped to the workstation's one-time key: the chip's
   * transport SO PIN, to be replaced by its administrative secret.
   */
  cardSecrets: WrappedSecret;
}

export interface CompletePersonalisationInput {
  signingCsr: unknown;
  encryptionCsr: unknown;
  /** Base64 signatures (SHA-256) by the chip's attestation key over {@link attestationMessage} of each key. */
  signingAttestation: unknown;
  encryptionAttestation: unknown;
  /** The token serial the workstation read from the chip. */
  tokenSerial: unknown;
}

export interface PersonalisedCard {
  personalisationId: string;
  card: CardView;
  applicationId: string;
  subjectSerialNumber: string;
  certificates: Array<{ keySlot: 'SIGN' | 'KEYX'; serialHex: string; certificate: string; chain: string[]; notAfter: string }>;
  replacedCard?: CardView;
}

/**
 * What the chip's attestation key signs for a key pair it generated (decision 0024): this
 * personalisation's challenge, the card, the key slot and the new key's SubjectPublicKeyInfo.
 */
export function attestationMessage(challenge: Buffer, cardNumber: string, slot: 'SIGN' | 'KEYX', spki: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`card-mgmt key attestation\0${cardNumber}\0${slot}\0`), challenge, spki]);
}

/** Refusals from ra that are final: the card is released and the personalisation fails. */
const FINAL = new Set(['INVALID_ARGUMENT', 'FAILED_PRECONDITION', 'ALREADY_EXISTS', 'CONFLICT', 'NOT_FOUND', 'PERMISSION_DENIED', 'UNAUTHENTICATED']);

/**
 * The counter: personalisation of a blank card (a new card or a replacement), hand-over,
 * activation, loss and PIN unlock. The certificates are ra's: card-mgmt asks ra to issue and
 * change them for the officer at the counter, and keeps the physical card's state in step.
 */
export class Counter {
  readonly #deps: CounterDeps;

  constructor(deps: CounterDeps) {
    this.#deps = deps;
  }

  /**
   * Reserves a blank card of the officer's office for one subscriber and releases its
   * administrative secret to the workstation, which initialises the chip with it.
   */
  async startPersonalisation(command: Command, input: StartPersonalisationInput): Promise<StartedPersonalisation> {
    const operation = 'start personalisation';
    authorize(command.officer, 'card.personalise', operation);
    const cardNumber = checkCardNumber(input.cardNumber, operation);
    if (typeof input.subscriberId !== 'string' || !UUID.test(input.subscriberId)) throw new PkiError('INVALID_ARGUMENT', `${operation}: subscriberId must be ra's subscriber id (a UUID)`);
    const kind = input.kind ?? 'NEW';
    if (kind !== 'NEW' && kind !== 'REPLACEMENT') throw new PkiError('INVALID_ARGUMENT', `${operation}: kind must be NEW or REPLACEMENT`);
    if (kind === 'REPLACEMENT' && input.replacesCard === undefined) throw new PkiError('INVALID_ARGUMENT', `${operation}: a REPLACEMENT names the card it replaces (replacesCard)`);
    if (kind === 'NEW' && input.replacesCard !== undefined) throw new PkiError('INVALID_ARGUMENT', `${operation}: a NEW card replaces no card; use kind REPLACEMENT`);
    const replacesCard = input.replacesCard === undefined ? undefined : checkCardNumber(input.replacesCard, `${operation}: replacesCard`);
    if (replacesCard === cardNumber) throw new PkiError('INVALID_ARGUMENT', `${operation}: a card cannot replace itself`);
    const transportKey = parseTransportKey(input.transportKey, operation);
    const subscriberId = input.subscriberId;
    const { store, clock } = this.#deps;
    const started = await runOnce(store, command, operation, async (tx) => {
      const card = await tx.getCard(cardNumber, { forUpdate: true });
      if (!card) throw new PkiError('NOT_FOUND', `${operation}: no card ${cardNumber} in the card register`);
      assertOfficeScope(command.officer, card.office, operation, cardNumber);
      if (replacesCard) {
        const old = await tx.getCard(replacesCard, { forUpdate: true });
        if (!old) throw new PkiError('NOT_FOUND', `${operation}: no card ${replacesCard} in the card register`);
        if (old.subscriberId !== subscriberId) throw new PkiError('INVALID_ARGUMENT', `${operation}: card ${replacesCard} is not a card of subscriber ${subscriberId}`);
        stateAfter(replacesCard, old.state, 'replace');
      }
      const now = clock.now();
      const id = randomUUID();
      const challenge = randomBytes(32);
      await moveCard(tx, card, 'reserve', { actor: actorOf(command.officer), at: now, objects: [{ type: 'personalisation', id }], attributes: { kind: kind as string } });
      await tx.insertPersonalisation({
        id,
        cardNumber,
        kind: kind as 'NEW' | 'REPLACEMENT',
        ...(replacesCard ? { replacesCard } : {}),
        subscriberId,
        office: card.office,
        officerId: command.officer.id,
        officerCertificateSha256: command.officer.certificateSha256,
        challenge,
        state: 'STARTED',
        createdAt: now,
        updatedAt: now,
      });
      await tx.audit({ action: 'card.admin-secret.release', outcome: 'SUCCESS', actor: actorOf(command.officer), objects: [{ type: 'card', id: cardNumber }, { type: 'personalisation', id }], attributes: { purpose: 'personalisation' } });
      return { personalisationId: id, cardNumber, challenge: challenge.toString('base64') };
    });
    // Wrapped outside the stored result: a replay gets the secrets wrapped afresh to the same key.
    const secrets = JSON.stringify({ transportSecret: deriveTransportSecret(this.#deps.transportKey, cardNumber), adminSecret: deriveAdminSecret(this.#deps.adminSecretKey, cardNumber) });
    return { personalisationId: started.personalisationId, cardNumber, challenge: started.challenge, cardSecrets: wrapSecret(secrets, transportKey, cardNumber) };
  }

  /**
   * The workstation hands over the CSRs of the two key pairs the card generated, each with its
   * signature over the challenge; ra issues both certificates. A REPLACEMENT supersedes the old
   * card's certificates in ra's same transaction, and here the old card becomes REPLACED in the
   * same transaction that makes the new one PERSONALISED. If ra refuses, nothing is revoked and
   * the blank card goes back to the office's stock.
   */
  async completePersonalisation(command: Command, personalisationId: string, input: CompletePersonalisationInput): Promise<PersonalisedCard> {
    const operation = 'complete personalisation';
    authorize(command.officer, 'card.personalise', operation);
    if (!UUID.test(personalisationId)) throw new PkiError('INVALID_ARGUMENT', `${operation}: the personalisation id must be a UUID`);
    if (typeof input.tokenSerial !== 'string' || !TOKEN_SERIAL.test(input.tokenSerial)) throw new PkiError('INVALID_ARGUMENT', `${operation}: tokenSerial must be 1-32 letters and digits`);
    const tokenSerial = input.tokenSerial;
    const { store, clock } = this.#deps;
    const scope = `officer:${command.officer.id}`;

    const begun = await store.transaction(async (tx) => {
      const claim = await tx.claimIdempotency(scope, command.idempotencyKey, operation, command.fingerprint);
      if (claim.kind === 'conflict') throw idempotencyConflict(operation, command.idempotencyKey, claim.operation);
      if (claim.kind === 'done') return { done: claim.result as PersonalisedCard };
      const p = await tx.getPersonalisation(personalisationId, { forUpdate: true });
      if (!p) throw new PkiError('NOT_FOUND', `${operation}: no personalisation ${personalisationId}`);
      assertOfficeScope(command.officer, p.office, operation, p.cardNumber);
      if (p.state === 'COMPLETED') return { done: p.result as PersonalisedCard };
      if (p.state === 'FAILED') throw new PkiError('FAILED_PRECONDITION', `${operation}: personalisation ${personalisationId} failed (${p.failure ?? 'refused'}); start a new one`);
      // Checked before anything changes: the keys must be the card's keys of this session.
      const card = (await tx.getCard(p.cardNumber))!;
      if (card.chipSerial !== tokenSerial) throw new PkiError('INVALID_ARGUMENT', `${operation}: the chip in the reader (${tokenSerial}) is not the chip of card ${p.cardNumber}`);
      const signingCsr = checkCardCsr(input.signingCsr, input.signingAttestation, p, card.attestationKey, 'SIGN', operation);
      const encryptionCsr = checkCardCsr(input.encryptionCsr, input.encryptionAttestation, p, card.attestationKey, 'KEYX', operation);
      if (p.state === 'STARTED') {
        await tx.updatePersonalisation(p.id, { state: 'ISSUING', updatedAt: clock.now(), request: { signingCsr, encryptionCsr, tokenSerial } });
        await tx.audit({ action: 'personalisation.issue', outcome: 'SUCCESS', actor: actorOf(command.officer), objects: [{ type: 'card', id: p.cardNumber }, { type: 'personalisation', id: p.id }], attributes: { phase: 'requested', kind: p.kind } });
      }
      return { personalisation: p, signingCsr, encryptionCsr };
    });
    if ('done' in begun) return begun.done!;
    return this.#issueAndRecord(command, begun.personalisation, { signingCsr: begun.signingCsr, encryptionCsr: begun.encryptionCsr, tokenSerial }, operation);
  }

  /**
   * Finishes a personalisation that ra was asked for but whose answer never came back (the
   * workstation gave up during an outage): the same request again, so ra finishes the same
   * issuance; the workstation then writes the certificates to the card.
   */
  async resumePersonalisation(command: Command, personalisationId: string): Promise<PersonalisedCard> {
    const operation = 'resume personalisation';
    authorize(command.officer, 'card.personalise', operation);
    if (!UUID.test(personalisationId)) throw new PkiError('INVALID_ARGUMENT', `${operation}: the personalisation id must be a UUID`);
    const p = await this.#deps.store.reads.getPersonalisation(personalisationId);
    if (!p) throw new PkiError('NOT_FOUND', `${operation}: no personalisation ${personalisationId}`);
    assertOfficeScope(command.officer, p.office, operation, p.cardNumber);
    if (p.state === 'COMPLETED') return p.result as PersonalisedCard;
    if (p.state !== 'ISSUING' || !p.request) throw new PkiError('FAILED_PRECONDITION', `${operation}: personalisation ${personalisationId} is ${p.state}; only one that reached ra can be resumed`);
    await this.#deps.store.transaction(async (tx) => {
      const claim = await tx.claimIdempotency(`officer:${command.officer.id}`, command.idempotencyKey, operation, command.fingerprint);
      if (claim.kind === 'conflict') throw idempotencyConflict(operation, command.idempotencyKey, claim.operation);
    });
    return this.#issueAndRecord(command, p, p.request, operation);
  }

  async #issueAndRecord(command: Command, p: PersonalisationRecord, request: { signingCsr: string; encryptionCsr: string; tokenSerial: string }, operation: string): Promise<PersonalisedCard> {
    const { store, clock, ra } = this.#deps;
    const scope = `officer:${command.officer.id}`;
    const tokenSerial = request.tokenSerial;

    let issued: IssuedCardCertificates;
    try {
      issued = await ra.issueCardCertificates({
        // The officer who started the personalisation acts throughout (ra checks their role and
        // office itself, and scopes its idempotency to them): a resumption by a colleague asks ra
        // for the same issuance, not a second one.
        officerCertificateSha256: p.officerCertificateSha256,
        // One ra issuance per personalisation, however often and under whatever key it is retried.
        idempotencyKey: `personalisation:${p.id}`,
        subscriberId: p.subscriberId,
        cardNumber: p.cardNumber,
        kind: p.kind,
        ...(p.replacesCard ? { replacesCard: p.replacesCard } : {}),
        signingCsr: request.signingCsr,
        encryptionCsr: request.encryptionCsr,
      });
    } catch (err) {
      const failure = PkiError.from(err, operation);
      if (FINAL.has(failure.code)) await this.#fail(command, p, failure, scope);
      // Otherwise (ra or ca-signer unavailable) the card stays reserved and the same request
      // retried later finishes it: ra's issuance is idempotent on the personalisation id.
      throw failure;
    }

    const sign = issued.certificates.find((c) => c.keySlot === 'SIGN');
    const keyx = issued.certificates.find((c) => c.keySlot === 'KEYX');
    if (!sign || !keyx) throw new PkiError('INTERNAL', `${operation}: ra returned ${issued.certificates.length} certificates without a SIGN and a KEYX one`);
    return store.transaction(async (tx) => {
      const current = await tx.getPersonalisation(p.id, { forUpdate: true });
      if (current?.state === 'COMPLETED') return current.result as PersonalisedCard;
      const now = clock.now();
      const actor = actorOf(command.officer);
      const card = (await tx.getCard(p.cardNumber, { forUpdate: true }))!;
      const personalised = await moveCard(tx, card, 'personalise', {
        actor,
        at: now,
        patch: { subscriberId: p.subscriberId, signingSerial: sign.serialHex, encryptionSerial: keyx.serialHex, signingCertificate: sign.certificateDer, tokenSerial, ...(p.replacesCard ? { replacesCard: p.replacesCard } : {}) },
        objects: [{ type: 'personalisation', id: p.id }, { type: 'application', id: issued.applicationId }, { type: 'certificate', id: sign.serialHex }, { type: 'certificate', id: keyx.serialHex }],
      });
      let replaced: CardRecord | undefined;
      if (p.replacesCard) {
        const old = (await tx.getCard(p.replacesCard, { forUpdate: true }))!;
        replaced = await moveCard(tx, old, 'replace', { actor, at: now, reason: 'superseded', patch: { replacedBy: p.cardNumber }, objects: [{ type: 'card', id: p.cardNumber }, ...[old.signingSerial, old.encryptionSerial].filter((s): s is string => !!s).map((s) => ({ type: 'certificate', id: s }))] });
      }
      const result: PersonalisedCard = {
        personalisationId: p.id,
        card: cardView(personalised),
        applicationId: issued.applicationId,
        subjectSerialNumber: issued.subjectSerialNumber,
        certificates: [sign, keyx].map((c) => ({
          keySlot: c.keySlot as 'SIGN' | 'KEYX',
          serialHex: c.serialHex,
          certificate: toPem(c.certificateDer, 'CERTIFICATE'),
          chain: c.chainDer.map((d) => toPem(d, 'CERTIFICATE')),
          notAfter: c.notAfter.toISOString(),
        })),
        ...(replaced ? { replacedCard: cardView(replaced) } : {}),
      };
      await tx.updatePersonalisation(p.id, { state: 'COMPLETED', result, updatedAt: now });
      await tx.completeIdempotency(scope, command.idempotencyKey, result);
      return result;
    });
  }

  /**
   * The officer abandons a personalisation before ra was asked (the citizen left, the chip failed):
   * the card goes back to the office's stock. Once ra has been asked it runs to its end.
   */
  async cancelPersonalisation(command: Command, personalisationId: string): Promise<CardView> {
    const operation = 'cancel personalisation';
    authorize(command.officer, 'card.personalise', operation);
    if (!UUID.test(personalisationId)) throw new PkiError('INVALID_ARGUMENT', `${operation}: the personalisation id must be a UUID`);
    return runOnce(this.#deps.store, command, operation, async (tx) => {
      const p = await tx.getPersonalisation(personalisationId, { forUpdate: true });
      if (!p) throw new PkiError('NOT_FOUND', `${operation}: no personalisation ${personalisationId}`);
      assertOfficeScope(command.officer, p.office, operation, p.cardNumber);
      if (p.state !== 'STARTED') throw new PkiError('FAILED_PRECONDITION', `${operation}: personalisation ${personalisationId} is ${p.state}; only one that has not reached ra can be cancelled`);
      const now = this.#deps.clock.now();
      const card = (await tx.getCard(p.cardNumber, { forUpdate: true }))!;
      const released = await moveCard(tx, card, 'release', { actor: actorOf(command.officer), at: now, reason: 'personalisation cancelled', objects: [{ type: 'personalisation', id: p.id }] });
      await tx.updatePersonalisation(p.id, { state: 'FAILED', failure: 'cancelled at the counter', updatedAt: now });
      return cardView(released);
    });
  }

  async #fail(command: Command, p: PersonalisationRecord, failure: PkiError, scope: string): Promise<void> {
    await this.#deps.store.transaction(async (tx) => {
      const current = await tx.getPersonalisation(p.id, { forUpdate: true });
      if (current?.state !== 'ISSUING') return;
      const card = (await tx.getCard(p.cardNumber, { forUpdate: true }))!;
      const now = this.#deps.clock.now();
      await moveCard(tx, card, 'release', { actor: actorOf(command.officer), at: now, reason: `ra refused: ${failure.code}`, objects: [{ type: 'personalisation', id: p.id }] });
      await tx.updatePersonalisation(p.id, { state: 'FAILED', failure: failure.message.slice(0, 300), updatedAt: now });
      await tx.audit({ action: 'personalisation.issue', outcome: 'FAILURE', actor: actorOf(command.officer), objects: [{ type: 'card', id: p.cardNumber }, { type: 'personalisation', id: p.id }], reason: failure.code });
      // The key may be used again for the retry the officer will make with corrected input.
      await tx.completeIdempotency(scope, command.idempotencyKey, null);
    });
  }

  /** The officer hands the personalised card to the citizen. */
  async handOver(command: Command, cardNumber: string): Promise<CardView> {
    const operation = 'hand over card';
    authorize(command.officer, 'card.hand-over', operation);
    checkCardNumber(cardNumber, operation);
    return runOnce(this.#deps.store, command, operation, async (tx) => {
      const card = await this.#card(tx, cardNumber, command.officer, operation);
      return cardView(await moveCard(tx, card, 'hand-over', { actor: actorOf(command.officer), at: this.#deps.clock.now() }));
    });
  }

  /**
   * The citizen confirms receipt (after changing the initial PIN at the workstation): ra activates
   * the card's certificates, then the card is ACTIVATED here.
   */
  async activate(command: Command, cardNumber: string): Promise<CardView> {
    return this.#withRa(command, cardNumber, 'activate card', 'card.activate', 'activate', 'activate');
  }

  /** A reported loss: ra suspends the card's certificates at once, then the card is LOST here. */
  async reportLost(command: Command, cardNumber: string): Promise<CardView> {
    return this.#withRa(command, cardNumber, 'report lost card', 'card.report-lost', 'report-lost', 'suspend');
  }

  /**
   * The citizen reports their card lost themselves (self-service, issue 12): the card number and
   * the subscriber code, checked by ra (wrong codes count towards its lock); ra suspends the
   * certificates at once, then the card is LOST here.
   */
  async reportLostBySelfService(command: { idempotencyKey: string; fingerprint: Buffer }, input: { cardNumber: unknown; subscriberCode: unknown }): Promise<{ cardNumber: string; state: string }> {
    const operation = 'self-service loss';
    const cardNumber = checkCardNumber(input.cardNumber, operation);
    if (typeof input.subscriberCode !== 'string' || input.subscriberCode.length === 0 || input.subscriberCode.length > 256) throw new PkiError('INVALID_ARGUMENT', `${operation}: subscriberCode is required`);
    const { store, ra, clock } = this.#deps;
    const scope = `citizen:${cardNumber}`;
    const wrong = new PkiError('UNAUTHENTICATED', `${operation}: the card number or the subscriber code is wrong`);
    const before = await store.reads.getCard(cardNumber);
    // A card that is not in a citizen's hands gets the same answer as a wrong code: nothing to probe.
    if (!before || !['ISSUED', 'ACTIVATED', 'SUSPENDED'].includes(before.state)) throw wrong;
    try {
      await ra.changeCardStatus({ subscriberCode: input.subscriberCode, idempotencyKey: `${cardNumber}:${command.idempotencyKey}`, cardNumber, operation: 'suspend' });
    } catch (err) {
      const failure = PkiError.from(err, operation);
      // Already suspended (by the citizen earlier, say): the loss is still recorded here.
      if (failure.code === 'UNAUTHENTICATED') throw wrong;
      if (!(failure.code === 'FAILED_PRECONDITION' && before.state === 'SUSPENDED')) throw failure;
    }
    return store.transaction(async (tx) => {
      const claim = await tx.claimIdempotency(scope, command.idempotencyKey, operation, command.fingerprint);
      if (claim.kind === 'conflict') throw idempotencyConflict(operation, command.idempotencyKey, claim.operation);
      if (claim.kind === 'done') return claim.result as { cardNumber: string; state: string };
      const card = (await tx.getCard(cardNumber, { forUpdate: true }))!;
      const lost = await moveCard(tx, card, 'report-lost', { actor: { type: 'citizen', id: `card:${cardNumber}` }, at: clock.now(), reason: 'reported lost by the citizen' });
      const result = { cardNumber, state: lost.state };
      await tx.completeIdempotency(scope, command.idempotencyKey, result);
      return result;
    });
  }

  /**
   * PIN unlock: the citizen proves their subscriber code with the card in the reader; a wrong code
   * counts towards ra's lock. The card's administrative secret is released, wrapped to the
   * workstation's one-time key, so that it resets the PIN on the chip.
   */
  async releaseForPinUnlock(command: Command, cardNumber: string, input: { subscriberCode: unknown; transportKey: unknown; tokenSerial: unknown }): Promise<{ cardNumber: string; adminSecret: WrappedSecret }> {
    const operation = 'pin unlock';
    authorize(command.officer, 'card.unlock', operation);
    checkCardNumber(cardNumber, operation);
    if (typeof input.subscriberCode !== 'string' || input.subscriberCode.length === 0 || input.subscriberCode.length > 256) throw new PkiError('INVALID_ARGUMENT', `${operation}: subscriberCode is required`);
    if (typeof input.tokenSerial !== 'string' || !TOKEN_SERIAL.test(input.tokenSerial)) throw new PkiError('INVALID_ARGUMENT', `${operation}: tokenSerial must be 1-32 letters and digits`);
    const transportKey = parseTransportKey(input.transportKey, operation);
    const { store, ra } = this.#deps;
    const card = await store.reads.getCard(cardNumber);
    if (!card) throw new PkiError('NOT_FOUND', `${operation}: no card ${cardNumber}`);
    assertOfficeScope(command.officer, card.office, operation, cardNumber);
    if (!['ISSUED', 'ACTIVATED', 'SUSPENDED'].includes(card.state)) throw new PkiError('FAILED_PRECONDITION', `${operation}: card ${cardNumber} is ${card.state}; only a card in the citizen's hands can be unlocked`);
    // The card in the reader must be this card: its chip reports the token serial recorded at personalisation.
    if (card.chipSerial !== input.tokenSerial) throw new PkiError('INVALID_ARGUMENT', `${operation}: the card in the reader is not card ${cardNumber}`);
    try {
      await ra.verifySubscriberCode({ cardNumber, subscriberCode: input.subscriberCode, purpose: 'pin-unlock' });
    } catch (err) {
      const failure = PkiError.from(err, operation);
      await store.transaction((tx) => tx.audit({ action: 'card.pin-unlock', outcome: 'FAILURE', actor: actorOf(command.officer), objects: [{ type: 'card', id: cardNumber }], reason: failure.code }));
      throw failure.code === 'UNAUTHENTICATED' ? new PkiError('UNAUTHENTICATED', `${operation}: the subscriber code is wrong`) : failure;
    }
    await runOnce(store, command, operation, async (tx) => {
      await tx.audit({ action: 'card.admin-secret.release', outcome: 'SUCCESS', actor: actorOf(command.officer), objects: [{ type: 'card', id: cardNumber }], attributes: { purpose: 'pin-unlock' } });
      await tx.audit({ action: 'card.pin-unlock', outcome: 'SUCCESS', actor: actorOf(command.officer), objects: [{ type: 'card', id: cardNumber }] });
      return { cardNumber };
    });
    return { cardNumber, adminSecret: wrapSecret(deriveAdminSecret(this.#deps.adminSecretKey, cardNumber), transportKey, cardNumber) };
  }

  async #withRa(command: Command, cardNumber: string, operation: string, permission: 'card.activate' | 'card.report-lost', action: 'activate' | 'report-lost', raOperation: 'activate' | 'suspend'): Promise<CardView> {
    authorize(command.officer, permission, operation);
    checkCardNumber(cardNumber, operation);
    const { store, ra, clock } = this.#deps;
    // Checked before ra is asked, so that an illegal move changes nothing anywhere.
    const before = await store.reads.getCard(cardNumber);
    if (!before) throw new PkiError('NOT_FOUND', `${operation}: no card ${cardNumber}`);
    assertOfficeScope(command.officer, before.office, operation, cardNumber);
    stateAfter(cardNumber, before.state, action);
    // ra first: a loss must stop the certificates even if this service then fails; the retry
    // (same idempotency key) finds ra's change done and finishes here.
    const changed = await ra.changeCardStatus({ officerCertificateSha256: command.officer.certificateSha256, idempotencyKey: `${command.officer.id}:${command.idempotencyKey}`, cardNumber, operation: raOperation });
    return runOnce(store, command, operation, async (tx) => {
      const card = await this.#card(tx, cardNumber, command.officer, operation);
      return cardView(await moveCard(tx, card, action, { actor: actorOf(command.officer), at: clock.now(), objects: changed.changedSerials.map((s) => ({ type: 'certificate', id: s })) }));
    });
  }

  async #card(tx: Parameters<Parameters<CardStore['transaction']>[0]>[0], cardNumber: string, officer: Officer, operation: string): Promise<CardRecord> {
    const card = await tx.getCard(cardNumber, { forUpdate: true });
    if (!card) throw new PkiError('NOT_FOUND', `${operation}: no card ${cardNumber}`);
    assertOfficeScope(officer, card.office, operation, cardNumber);
    return card;
  }
}

/**
 * A CSR of one of the card's keys: well-formed, self-signed (possession), RSA-2048, and attested
 * by the chip of this card for this personalisation: its attestation key (from the supplier's
 * manifest) signed the challenge with the CSR's key. A key made anywhere else, in software or on
 * another card, has no such signature.
 */
function checkCardCsr(csrInput: unknown, attestationInput: unknown, p: PersonalisationRecord, attestationKey: Buffer, slot: 'SIGN' | 'KEYX', operation: string): string {
  const field = slot === 'SIGN' ? 'signingCsr' : 'encryptionCsr';
  const attestationField = slot === 'SIGN' ? 'signingAttestation' : 'encryptionAttestation';
  if (typeof csrInput !== 'string' || csrInput.length === 0 || csrInput.length > 16384) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} must be a PKCS#10 request in PEM`);
  let parsed;
  try {
    parsed = parseCsr(fromPem(csrInput, 'CERTIFICATE REQUEST'));
  } catch (err) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} is not a PKCS#10 request in PEM`, { cause: err });
  }
  if (!parsed.signatureValid) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field}'s signature does not verify with its own key (no proof of possession)`);
  if (parsed.publicKey.type !== 'RSA' || parsed.publicKey.bits !== 2048) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} holds a ${parsed.publicKey.type} key; a card's keys are RSA-2048`);
  if (typeof attestationInput !== 'string' || !/^[A-Za-z0-9+/=]{40,700}$/.test(attestationInput)) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${attestationField} must be the chip's attestation signature (base64)`);
  const key = createPublicKey({ key: attestationKey, format: 'der', type: 'spki' });
  if (!verify('sha256', attestationMessage(p.challenge, p.cardNumber, slot, parsed.subjectPublicKeyInfo), key, Buffer.from(attestationInput, 'base64'))) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field}'s key is not a key of card ${p.cardNumber}: the card's chip did not attest it for this personalisation`);
  }
  return csrInput;
}
