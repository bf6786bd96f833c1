import { PkiError, type Clock } from '@pki/kit';
import { describePublicKey } from '@pki/x509';
import type { CardStore, CardStoreTx } from '../ports/card-store';
import { assertOfficeScope, authorize, officeFilter, type Officer, type Permission } from './access';
import { stateAfter, type CardAction, type CardState } from './card-states';
import type { AuditActor, CardRecord, TransitionRecord } from './model';

export const CARD_NUMBER = /^[A-Z0-9]{8,20}$/;
export const CHIP_SERIAL = /^[0-9A-Za-z]{4,32}$/;
export const OFFICE_CODE = /^[A-Z0-9-]{2,32}$/;
const BATCH_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** The most cards one request may name (a batch from the supplier, an assignment, a transfer). */
export const MAX_CARDS_PER_REQUEST = 5000;

/** One mutating request: who asks, and what makes a retry safe (see runOnce). */
export interface Command {
  officer: Officer;
  idempotencyKey: string;
  /** Keyed hash of the request: a replay with another body is refused. */
  fingerprint: Buffer;
}

export interface CardView {
  cardNumber: string;
  chipSerial: string;
  batchId: string;
  state: CardState;
  office: string;
  subscriberId?: string;
  replacesCard?: string;
  replacedBy?: string;
  signingSerial?: string;
  encryptionSerial?: string;
  updatedAt: string;
}

export function cardView(c: CardRecord): CardView {
  return {
    cardNumber: c.cardNumber,
    chipSerial: c.chipSerial,
    batchId: c.batchId,
    state: c.state,
    office: c.office,
    ...(c.subscriberId ? { subscriberId: c.subscriberId } : {}),
    ...(c.replacesCard ? { replacesCard: c.replacesCard } : {}),
    ...(c.replacedBy ? { replacedBy: c.replacedBy } : {}),
    ...(c.signingSerial ? { signingSerial: c.signingSerial } : {}),
    ...(c.encryptionSerial ? { encryptionSerial: c.encryptionSerial } : {}),
    updatedAt: c.updatedAt.toISOString(),
  };
}

export function actorOf(officer: Officer): AuditActor {
  return { type: 'officer', id: officer.id, office: officer.office, role: officer.role };
}

export interface StockDeps {
  store: CardStore;
  clock: Clock;
  /** The card centre's office code: where delivered and returned cards are held. */
  cardCentre: string;
}

/**
 * Runs a one-transaction command once per idempotency key (scoped to the officer): a replay with
 * the same request gets the stored result, another request under the key is refused, and a
 * command that fails changes nothing (the claim rolls back with it).
 */
export async function runOnce<T>(store: CardStore, command: Command, operation: string, work: (tx: CardStoreTx) => Promise<T>): Promise<T> {
  const scope = `officer:${command.officer.id}`;
  return store.transaction(async (tx) => {
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

export function checkCardNumber(cardNumber: unknown, operation: string): string {
  if (typeof cardNumber !== 'string' || !CARD_NUMBER.test(cardNumber)) throw new PkiError('INVALID_ARGUMENT', `${operation}: card number must be 8-20 upper-case letters and digits`);
  return cardNumber;
}

/**
 * Moves one locked card through one transition: checks that the transition is legal and that the
 * card is in the officer's reach, writes the new state, the transition row and the audit event.
 */
export async function moveCard(
  tx: CardStoreTx,
  card: CardRecord,
  action: Exclude<CardAction, 'receive'>,
  context: { actor: AuditActor; at: Date; toOffice?: string; reason?: string; patch?: Partial<CardRecord>; objects?: Array<{ type: string; id: string }>; attributes?: Record<string, string> },
): Promise<CardRecord> {
  const to = stateAfter(card.cardNumber, card.state, action);
  const office = context.toOffice ?? card.office;
  const next: CardRecord = { ...card, ...context.patch, state: to, office, updatedAt: context.at };
  await tx.updateCard(card.cardNumber, { ...context.patch, state: to, office, updatedAt: context.at });
  const transition: TransitionRecord = { cardNumber: card.cardNumber, action, fromState: card.state, toState: to, fromOffice: card.office, toOffice: office, actor: context.actor, at: context.at, ...(context.reason ? { reason: context.reason } : {}) };
  await tx.recordTransition(transition);
  await tx.audit({
    action: `card.${action}`,
    outcome: 'SUCCESS',
    actor: context.actor,
    objects: [{ type: 'card', id: card.cardNumber }, ...(context.objects ?? [])],
    ...(context.reason ? { reason: context.reason } : {}),
    attributes: { from: card.state, to, ...(office !== card.office ? { fromOffice: card.office, toOffice: office } : { office }), ...context.attributes },
  });
  return next;
}

/**
 * Card stock: batches from the supplier, supply of the offices, transfers, returns, spoilage and
 * the card cut. Requests that name many cards are all-or-nothing: one card that may not move
 * refuses the whole request, naming it.
 */
export class CardStock {
  readonly #deps: StockDeps;

  constructor(deps: StockDeps) {
    this.#deps = deps;
  }

  async receiveBatch(command: Command, input: { batchId: unknown; supplier: unknown; cards: unknown }): Promise<{ batchId: string; received: number }> {
    const operation = 'receive batch';
    authorize(command.officer, 'stock.receive', operation);
    if (typeof input.batchId !== 'string' || !BATCH_ID.test(input.batchId)) throw new PkiError('INVALID_ARGUMENT', `${operation}: batchId must be 1-64 letters, digits, . _ -`);
    if (typeof input.supplier !== 'string' || input.supplier.trim() === '' || input.supplier.length > 100) throw new PkiError('INVALID_ARGUMENT', `${operation}: supplier must be 1-100 characters`);
    const cards = parseCardList(input.cards, operation);
    const numbers = new Set<string>();
    const chips = new Set<string>();
    for (const [i, c] of cards.entries()) {
      checkCardNumber(c.cardNumber, `${operation}: cards[${i}]`);
      if (typeof c.chipSerial !== 'string' || !CHIP_SERIAL.test(c.chipSerial)) throw new PkiError('INVALID_ARGUMENT', `${operation}: cards[${i}].chipSerial must be 4-32 letters and digits`);
      c.attestationKeyDer = parseAttestationKey(c.attestationKey, `${operation}: cards[${i}].attestationKey`);
      if (numbers.has(c.cardNumber)) throw new PkiError('INVALID_ARGUMENT', `${operation}: card number ${c.cardNumber} appears twice in the batch`, { details: { cardNumber: c.cardNumber } });
      if (chips.has(c.chipSerial)) throw new PkiError('INVALID_ARGUMENT', `${operation}: chip serial ${c.chipSerial} appears twice in the batch`);
      numbers.add(c.cardNumber);
      chips.add(c.chipSerial);
    }
    const { store, clock, cardCentre } = this.#deps;
    const batchId = input.batchId;
    const supplier = input.supplier.trim();
    return runOnce(store, command, operation, async (tx) => {
      if (await tx.batchExists(batchId)) throw new PkiError('ALREADY_EXISTS', `${operation}: batch ${batchId} was already received`);
      const existing = await tx.existingCards([...numbers], [...chips]);
      if (existing.cardNumbers.length > 0) {
        throw new PkiError('ALREADY_EXISTS', `${operation}: card number ${existing.cardNumbers[0]} is already in the card register${existing.cardNumbers.length > 1 ? ` (and ${existing.cardNumbers.length - 1} more)` : ''}; no card of the batch was received`, { details: { cardNumber: existing.cardNumbers[0]! } });
      }
      if (existing.chipSerials.length > 0) throw new PkiError('ALREADY_EXISTS', `${operation}: chip serial ${existing.chipSerials[0]} is already in the card register; no card of the batch was received`);
      const now = clock.now();
      await tx.insertBatch({ id: batchId, supplier, cardCount: cards.length, receivedAt: now, receivedBy: command.officer.id });
      const actor = actorOf(command.officer);
      for (const c of cards) {
        await tx.insertCard({ cardNumber: c.cardNumber, chipSerial: c.chipSerial, attestationKey: c.attestationKeyDer!, batchId, state: 'IN_STOCK', office: cardCentre, updatedAt: now, createdAt: now });
        await tx.recordTransition({ cardNumber: c.cardNumber, action: 'receive', toState: 'IN_STOCK', toOffice: cardCentre, actor, at: now });
      }
      // One audit event for the batch, naming every card: the delivery is one act.
      await tx.audit({
        action: 'card-batch.receive',
        outcome: 'SUCCESS',
        actor,
        objects: [{ type: 'card-batch', id: batchId }, ...cards.map((c) => ({ type: 'card', id: c.cardNumber }))],
        attributes: { supplier, cards: String(cards.length), office: cardCentre },
      });
      return { batchId, received: cards.length };
    });
  }

  /** The card centre supplies an office with blank cards. */
  async assign(command: Command, input: { office: unknown; cardNumbers: unknown }): Promise<{ cards: CardView[] }> {
    const operation = 'assign cards';
    const office = checkOffice(input.office, operation);
    if (office === this.#deps.cardCentre) throw new PkiError('INVALID_ARGUMENT', `${operation}: the cards are already at the card centre; name the office that receives them`);
    return this.#moveMany(command, operation, 'stock.assign', 'assign', input.cardNumbers, { toOffice: office });
  }

  /** An office's blank cards go to another office. */
  async transfer(command: Command, input: { toOffice: unknown; cardNumbers: unknown }): Promise<{ cards: CardView[] }> {
    const operation = 'transfer cards';
    const office = checkOffice(input.toOffice, operation);
    if (office === this.#deps.cardCentre) throw new PkiError('INVALID_ARGUMENT', `${operation}: cards go back to the card centre by a return, not a transfer`);
    return this.#moveMany(command, operation, 'stock.transfer', 'transfer', input.cardNumbers, { toOffice: office, sameOffice: 'refuse' });
  }

  /** An office sends blank cards back to the card centre. */
  async returnToCentre(command: Command, input: { cardNumbers: unknown; reason?: unknown }): Promise<{ cards: CardView[] }> {
    const operation = 'return cards';
    return this.#moveMany(command, operation, 'stock.return', 'return', input.cardNumbers, { toOffice: this.#deps.cardCentre, ...(typeof input.reason === 'string' ? { reason: input.reason } : {}) });
  }

  /** Spoiled or broken: out of use, waiting to be cut. */
  async reportDamaged(command: Command, cardNumber: string, reason: unknown): Promise<CardView> {
    const operation = 'report damaged card';
    return (await this.#moveMany(command, operation, 'card.report-damaged', 'report-damaged', [cardNumber], { reason: requireReason(reason, operation) })).cards[0]!;
  }

  /** The card cut: final. */
  async destroy(command: Command, cardNumber: string, reason: unknown): Promise<CardView> {
    const operation = 'destroy card';
    return (await this.#moveMany(command, operation, 'stock.destroy', 'destroy', [cardNumber], { reason: requireReason(reason, operation) })).cards[0]!;
  }

  async get(officer: Officer, cardNumber: string): Promise<CardView & { history: Array<Record<string, unknown>> }> {
    const operation = 'get card';
    authorize(officer, 'stock.read', operation);
    checkCardNumber(cardNumber, operation);
    const card = await this.#deps.store.reads.getCard(cardNumber);
    if (!card) throw new PkiError('NOT_FOUND', `${operation}: no card ${cardNumber}`);
    assertOfficeScope(officer, card.office, operation, cardNumber);
    const history = (await this.#deps.store.reads.transitionsOf(cardNumber)).map((t) => ({
      action: t.action,
      ...(t.fromState ? { fromState: t.fromState } : {}),
      toState: t.toState,
      ...(t.fromOffice ? { fromOffice: t.fromOffice } : {}),
      toOffice: t.toOffice,
      actor: t.actor.id,
      ...(t.reason ? { reason: t.reason } : {}),
      at: t.at.toISOString(),
    }));
    return { ...cardView(card), history };
  }

  /** Cards on hand by office and state: the officer's own office, or every office for the card centre and auditors. */
  async inventory(officer: Officer, office?: string): Promise<{ offices: Array<{ office: string; states: Record<string, number>; onHand: number }> }> {
    const operation = 'inventory';
    authorize(officer, 'stock.read', operation);
    const scope = officeFilter(officer);
    if (office !== undefined) {
      checkOffice(office, operation);
      if (scope && scope !== office) throw new PkiError('PERMISSION_DENIED', `${operation}: office ${office} is not office ${officer.office}`);
    }
    const rows = await this.#deps.store.reads.inventory(office ?? scope);
    const offices = new Map<string, { office: string; states: Record<string, number>; onHand: number }>();
    for (const r of rows) {
      const entry = offices.get(r.office) ?? { office: r.office, states: {}, onHand: 0 };
      entry.states[r.state] = r.count;
      if (r.state === 'IN_STOCK' || r.state === 'ASSIGNED' || r.state === 'PERSONALISING') entry.onHand += r.count;
      offices.set(r.office, entry);
    }
    return { offices: [...offices.values()].sort((a, b) => a.office.localeCompare(b.office)) };
  }

  async #moveMany(
    command: Command,
    operation: string,
    permission: Permission,
    action: Exclude<CardAction, 'receive'>,
    cardNumbersInput: unknown,
    options: { toOffice?: string; reason?: string; sameOffice?: 'refuse' },
  ): Promise<{ cards: CardView[] }> {
    authorize(command.officer, permission, operation);
    if (!Array.isArray(cardNumbersInput) || cardNumbersInput.length === 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: cardNumbers must name at least one card`);
    if (cardNumbersInput.length > MAX_CARDS_PER_REQUEST) throw new PkiError('INVALID_ARGUMENT', `${operation}: at most ${MAX_CARDS_PER_REQUEST} cards per request`);
    const cardNumbers = cardNumbersInput.map((n) => checkCardNumber(n, operation));
    if (new Set(cardNumbers).size !== cardNumbers.length) throw new PkiError('INVALID_ARGUMENT', `${operation}: a card number appears twice`);
    const { store, clock } = this.#deps;
    return runOnce(store, command, operation, async (tx) => {
      const now = clock.now();
      const moved: CardView[] = [];
      // In card-number order: two requests over overlapping cards lock them in the same order.
      for (const number of [...cardNumbers].sort()) {
        const card = await tx.getCard(number, { forUpdate: true });
        if (!card) throw new PkiError('NOT_FOUND', `${operation}: no card ${number}`, { details: { cardNumber: number } });
        assertOfficeScope(command.officer, card.office, operation, number);
        if (options.sameOffice === 'refuse' && card.office === options.toOffice) throw new PkiError('INVALID_ARGUMENT', `${operation}: card ${number} is already at office ${card.office}`);
        const next = await moveCard(tx, card, action, { actor: actorOf(command.officer), at: now, ...(options.toOffice ? { toOffice: options.toOffice } : {}), ...(options.reason ? { reason: options.reason } : {}) });
        moved.push(cardView(next));
      }
      return { cards: moved };
    });
  }
}

/** A chip's attestation key: RSA-2048 or EC P-256, as SubjectPublicKeyInfo DER in base64. */
function parseAttestationKey(input: unknown, field: string): Buffer {
  if (typeof input !== 'string' || !/^[A-Za-z0-9+/=]{60,600}$/.test(input)) throw new PkiError('INVALID_ARGUMENT', `${field} must be a public key (SPKI DER, base64)`);
  const der = Buffer.from(input, 'base64');
  let description;
  try {
    description = describePublicKey(der, field);
  } catch (err) {
    throw new PkiError('INVALID_ARGUMENT', `${field} is not a public key (SPKI DER, base64)`, { cause: err });
  }
  if (!((description.type === 'RSA' && description.bits >= 2048) || (description.type === 'EC' && description.curve === 'P-256'))) throw new PkiError('INVALID_ARGUMENT', `${field} must be an RSA-2048 or P-256 key`);
  return der;
}

function parseCardList(cards: unknown, operation: string): Array<{ cardNumber: string; chipSerial: string; attestationKey: unknown; attestationKeyDer?: Buffer }> {
  if (!Array.isArray(cards) || cards.length === 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: cards must list at least one card`);
  if (cards.length > MAX_CARDS_PER_REQUEST) throw new PkiError('INVALID_ARGUMENT', `${operation}: at most ${MAX_CARDS_PER_REQUEST} cards per batch`);
  return cards as Array<{ cardNumber: string; chipSerial: string; attestationKey: unknown }>;
}

function checkOffice(office: unknown, operation: string): string {
  if (typeof office !== 'string' || !OFFICE_CODE.test(office)) throw new PkiError('INVALID_ARGUMENT', `${operation}: office must be 2-32 upper-case letters, digits and -`);
  return office;
}

function requireReason(reason: unknown, operation: string): string {
  if (typeof reason !== 'string' || reason.trim() === '' || reason.length > 200) throw new PkiError('INVALID_ARGUMENT', `${operation}: reason must be 1-200 characters`);
  return reason.trim();
}
