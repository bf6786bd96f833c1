import type { CardState } from '../domain/card-states';
import type { AuditRecord, BindingChallenge, CardRecord, DeviceRecord, IdempotencyClaim, PersonalisationRecord, TransitionRecord } from '../domain/model';

/**
 * card-mgmt's system of record for physical cards. Every change happens inside
 * {@link CardStore.transaction} with its transition row and its audit event (the outbox): a card's
 * history, its audit trail and the reconciliation can never disagree.
 */
export interface CardStore {
  transaction<T>(work: (tx: CardStoreTx) => Promise<T>): Promise<T>;
  reads: CardReads;
}

export interface CardReads {
  getCard(cardNumber: string): Promise<CardRecord | undefined>;
  transitionsOf(cardNumber: string): Promise<TransitionRecord[]>;
  /** Cards by office and state (one office, or every office). */
  inventory(office?: string): Promise<Array<{ office: string; state: CardState; count: number }>>;
  /** Every transition with `from <= at < to`, in order. */
  transitionsBetween(from: Date, to: Date): Promise<TransitionRecord[]>;
  /** For each card, its last transition before `before` (where it was and in what state). */
  positionsAt(before: Date): Promise<Array<{ cardNumber: string; state: CardState; office: string }>>;
  getPersonalisation(id: string): Promise<PersonalisationRecord | undefined>;
  devicesOfSubscriber(subscriberId: string): Promise<DeviceRecord[]>;
  getDevice(id: string): Promise<DeviceRecord | undefined>;
  getChallenge(id: string): Promise<BindingChallenge | undefined>;
  /** A completed idempotency key's request fingerprint and result. */
  completedIdempotency(scope: string, key: string): Promise<{ operation: string; fingerprint: Buffer; result: unknown } | undefined>;
}

export interface CardStoreTx {
  claimIdempotency(scope: string, key: string, operation: string, fingerprint: Buffer): Promise<IdempotencyClaim>;
  completeIdempotency(scope: string, key: string, result: unknown): Promise<void>;
  batchExists(batchId: string): Promise<boolean>;
  insertBatch(batch: { id: string; supplier: string; cardCount: number; receivedAt: Date; receivedBy: string }): Promise<void>;
  /** Card numbers and chip serials among these that are already recorded. */
  existingCards(cardNumbers: readonly string[], chipSerials: readonly string[]): Promise<{ cardNumbers: string[]; chipSerials: string[] }>;
  insertCard(card: CardRecord): Promise<void>;
  getCard(cardNumber: string, options?: { forUpdate?: boolean }): Promise<CardRecord | undefined>;
  updateCard(cardNumber: string, patch: Partial<Omit<CardRecord, 'cardNumber' | 'chipSerial' | 'attestationKey' | 'batchId' | 'createdAt'>>): Promise<void>;
  recordTransition(transition: TransitionRecord): Promise<void>;
  audit(record: AuditRecord): Promise<void>;
  insertPersonalisation(p: PersonalisationRecord): Promise<void>;
  getPersonalisation(id: string, options?: { forUpdate?: boolean }): Promise<PersonalisationRecord | undefined>;
  updatePersonalisation(id: string, patch: Partial<Pick<PersonalisationRecord, 'state' | 'failure' | 'result' | 'updatedAt' | 'request'>>): Promise<void>;
  insertChallenge(challenge: BindingChallenge): Promise<void>;
  /** Marks the challenge used; false when it was used already or does not exist. */
  useChallenge(id: string, at: Date): Promise<BindingChallenge | undefined>;
  /** The subscriber's devices, locked: the limit of 3 is checked under this lock. */
  devicesOfSubscriber(subscriberId: string, options?: { forUpdate?: boolean }): Promise<DeviceRecord[]>;
  deviceWithKey(publicKey: Buffer): Promise<DeviceRecord | undefined>;
  insertDevice(device: DeviceRecord): Promise<void>;
  getDevice(id: string, options?: { forUpdate?: boolean }): Promise<DeviceRecord | undefined>;
  updateDevice(id: string, patch: Partial<Pick<DeviceRecord, 'state' | 'serialHex' | 'updatedAt'>>): Promise<void>;
  /** True, and recorded, when this producer's event is new to `consumer` (exactly once with the effect). */
  acceptEventOnce(consumer: string, event: { producer: string; seq: number }): Promise<boolean>;
  deviceWithSerial(serialHex: string): Promise<DeviceRecord | undefined>;
  /** The card whose SIGN certificate has this serial, locked. */
  cardWithSigningSerial(serialHex: string): Promise<CardRecord | undefined>;
}
