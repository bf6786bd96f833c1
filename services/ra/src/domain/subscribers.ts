import { randomUUID } from 'node:crypto';
import { PkiError } from '@pki/kit';
import { authorize, type Principal } from './access';
import { parsePersonalData, type PersonalDataInput } from './personal-data';
import { parseNationalId } from './national-id';
import { checkNewSubscriberCode } from './subscriber-code';
import { actorOf, runOnce, type Command, type RaDeps } from './shared';
import type { SubscriberRecord } from './model';

export interface RegisterSubscriberInput extends PersonalDataInput {
  subscriberCode: unknown;
  publicationConsent: boolean;
}

export interface SubscriberDetails {
  subscriberId: string;
  /** Only the first letter and the last four digits: enough for the officer to confirm the card in hand. */
  nationalIdMasked: string;
  idKind: string;
  gender: string;
  name: string;
  birthDate: string;
  email?: string;
  publicationConsent: boolean;
  status: string;
  cards: Array<{ cardNumber: string; status: string }>;
}

/** Subscribers (用戶): the people certificates are issued to, and their personal data. */
export class Subscribers {
  readonly #deps: RaDeps;

  constructor(deps: RaDeps) {
    this.#deps = deps;
  }

  /** Registers a person at the counter. Their personal data is sealed before it reaches the registry. */
  async register(command: Command, input: RegisterSubscriberInput): Promise<{ subscriberId: string }> {
    const operation = 'register subscriber';
    const officer = this.#officer(command.principal, 'subscriber.register', operation);
    const { vault, clock } = this.#deps;
    const data = parsePersonalData(input, operation, clock.now());
    const code = checkNewSubscriberCode(input.subscriberCode, this.#deps.policy.subscriberCode, operation);
    if (typeof input.publicationConsent !== 'boolean') throw new PkiError('INVALID_ARGUMENT', `${operation}: publicationConsent must be true or false`);
    // The memory-hard hash costs tens of milliseconds: outside the transaction.
    const codeHash = await this.#deps.hasher.hash(code);
    const id = randomUUID();
    const seal = (field: 'nationalId' | 'name' | 'birthDate' | 'email', value: string) => vault.seal(field, id, value).ciphertext;
    const record: SubscriberRecord = {
      id,
      personRef: vault.personReference(data.nationalId.value),
      lookup: vault.lookupHash(data.nationalId.value),
      sealed: {
        keyId: vault.activeKeyId,
        nationalId: seal('nationalId', data.nationalId.value),
        name: seal('name', data.name),
        birthDate: seal('birthDate', data.birthDate),
        ...(data.email ? { email: seal('email', data.email) } : {}),
      },
      idKind: data.nationalId.kind,
      gender: data.nationalId.gender,
      publicationConsent: input.publicationConsent,
      subscriberCodeHash: codeHash,
      codeAttempts: { failures: 0, lockouts: 0, lockedUntil: undefined },
      status: 'ACTIVE',
      office: officer.office,
      createdAt: clock.now(),
    };
    return runOnce(this.#deps, command, operation, async (tx) => {
      const existing = await tx.findSubscriberByLookup(vault.lookupHashes(data.nationalId.value));
      if (existing) {
        throw new PkiError('ALREADY_EXISTS', `${operation}: a subscriber with this national ID is already registered as ${existing.id}`, { details: { subscriberId: existing.id } });
      }
      await tx.insertSubscriber(record);
      await tx.audit({
        action: 'subscriber.register',
        outcome: 'SUCCESS',
        actor: actorOf(command.principal),
        objects: [{ type: 'subscriber', id: record.personRef }],
        attributes: { subscriberId: id, idKind: record.idKind, publicationConsent: String(record.publicationConsent) },
      });
      return { subscriberId: id };
    });
  }

  /** Finds a person by national ID (the officer has the ID card in hand). Audited as a personal-data lookup. */
  async find(principal: Principal, nationalIdInput: unknown): Promise<{ subscriberId: string }> {
    const operation = 'find subscriber';
    this.#officer(principal, 'subscriber.read', operation);
    const nationalId = parseNationalId(nationalIdInput, operation);
    const { vault } = this.#deps;
    const personRef = vault.personReference(nationalId.value);
    const found = await this.#deps.registry.transaction(async (tx) => {
      const subscriber = await tx.findSubscriberByLookup(vault.lookupHashes(nationalId.value));
      await tx.audit({
        action: 'subscriber.search',
        outcome: subscriber ? 'SUCCESS' : 'FAILURE',
        actor: actorOf(principal),
        objects: [{ type: 'subscriber', id: personRef }],
        ...(subscriber ? {} : { reason: 'no subscriber with this national ID' }),
      });
      return subscriber;
    });
    if (!found) throw new PkiError('NOT_FOUND', `${operation}: no subscriber with this national ID`);
    return { subscriberId: found.id };
  }

  /** A subscriber's record with their personal data opened, for the officer serving them. Audited. */
  async get(principal: Principal, subscriberId: string): Promise<SubscriberDetails> {
    const operation = 'get subscriber';
    this.#officer(principal, 'subscriber.read', operation);
    const { vault, registry } = this.#deps;
    const subscriber = await registry.reads.getSubscriber(subscriberId);
    if (!subscriber) throw new PkiError('NOT_FOUND', `${operation}: no subscriber ${subscriberId}`);
    const open = (field: 'nationalId' | 'name' | 'birthDate' | 'email', ciphertext: Buffer) => vault.open(field, subscriber.id, { keyId: subscriber.sealed.keyId, ciphertext });
    const nationalId = open('nationalId', subscriber.sealed.nationalId);
    const cards = await registry.reads.cardsOfSubscriber(subscriber.id);
    await registry.transaction((tx) =>
      tx.audit({ action: 'subscriber.read', outcome: 'SUCCESS', actor: actorOf(principal), objects: [{ type: 'subscriber', id: subscriber.personRef }] }),
    );
    const details: SubscriberDetails = {
      subscriberId: subscriber.id,
      nationalIdMasked: `${nationalId[0]}${'*'.repeat(nationalId.length - 5)}${nationalId.slice(-4)}`,
      idKind: subscriber.idKind,
      gender: subscriber.gender,
      name: open('name', subscriber.sealed.name),
      birthDate: open('birthDate', subscriber.sealed.birthDate),
      publicationConsent: subscriber.publicationConsent,
      status: subscriber.status,
      cards: cards.map((c) => ({ cardNumber: c.cardNumber, status: c.status })),
    };
    if (subscriber.sealed.email) details.email = open('email', subscriber.sealed.email);
    return details;
  }

  #officer(principal: Principal, permission: 'subscriber.register' | 'subscriber.read', operation: string): Extract<Principal, { kind: 'officer' }> {
    authorize(principal, permission, operation);
    if (principal.kind !== 'officer') throw new PkiError('PERMISSION_DENIED', `${operation}: only officers`);
    return principal;
  }
}
