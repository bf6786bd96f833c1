import { createPublicKey, randomBytes, randomUUID, verify, X509Certificate } from 'node:crypto';
import { PkiError, type Clock, type Logger } from '@pki/kit';
import { describePublicKey, toPem } from '@pki/x509';
import type { CardStore, CardStoreTx } from '../ports/card-store';
import type { RegistrationAuthority } from '../ports/registration-authority';
import { assertOfficeScope, authorize, type Officer } from './access';
import { actorOf, checkCardNumber, idempotencyConflict, runOnce, type Command } from './card-stock';
import type { DeviceRecord } from './model';

/** domain.md: up to 3 devices per person. */
export const MAX_DEVICES = 3;
const CHALLENGE_TTL_MS = 5 * 60_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface MobileDeps {
  store: CardStore;
  ra: RegistrationAuthority;
  clock: Clock;
  logger: Logger;
}

/** A citizen's request from their phone: no officer, authenticated by what it carries. */
export interface CitizenCommand {
  idempotencyKey: string;
  fingerprint: Buffer;
}

export interface EnrolInput {
  challengeId: unknown;
  cardNumber: unknown;
  deviceName: unknown;
  /** The phone's P-256 key, SPKI DER in base64. */
  devicePublicKey: unknown;
  /** The phone's ECDSA P-256 SHA-256 signature (DER, base64) over {@link bindingMessage}: possession of its key. */
  deviceSignature: unknown;
  /** The card's SIGN key's RSA PKCS#1 v1.5 SHA-256 signature (base64) over {@link bindingMessage}. */
  cardSignature: unknown;
  subscriberCode: unknown;
}

export interface DeviceView {
  deviceId: string;
  cardNumber: string;
  name: string;
  state: DeviceRecord['state'];
  serialHex?: string;
  createdAt: string;
}

export interface EnrolledDevice extends DeviceView {
  certificate: string;
  chain: string[];
  notAfter: string;
}

/** What the card and the phone both sign to bind the phone's key to the card's holder (decision 0025). */
export function bindingMessage(challenge: Buffer, cardNumber: string, devicePublicKey: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`card-mgmt mobile binding\0${cardNumber}\0`), challenge, devicePublicKey]);
}

function deviceView(d: DeviceRecord): DeviceView {
  return { deviceId: d.id, cardNumber: d.cardNumber, name: d.name, state: d.state, ...(d.serialHex ? { serialHex: d.serialHex } : {}), createdAt: d.createdAt.toISOString() };
}

/**
 * Mobile credentials (issue 12, decision 0025): a phone generates a P-256 key pair; the citizen
 * binds it with their card (the card's SIGN key signs a one-time challenge with the phone's key)
 * and their subscriber code; ra has ca-signer certify it. At most {@link MAX_DEVICES} live devices
 * per person; each is listed, suspended and revoked on its own.
 */
export class MobileCredentials {
  readonly #deps: MobileDeps;

  constructor(deps: MobileDeps) {
    this.#deps = deps;
  }

  async challenge(command: CitizenCommand, cardNumberInput: unknown): Promise<{ challengeId: string; challenge: string; expiresAt: string }> {
    const operation = 'binding challenge';
    const cardNumber = checkCardNumber(cardNumberInput, operation);
    return this.#once(command, `citizen:${cardNumber}`, operation, async (tx) => {
      const card = await tx.getCard(cardNumber);
      // The same answer for a card that does not exist and one that cannot bind: nothing to probe.
      if (!card || !['ISSUED', 'ACTIVATED'].includes(card.state) || !card.signingCertificate) throw new PkiError('FAILED_PRECONDITION', `${operation}: card ${cardNumber} cannot bind a device (it must be issued and in use)`);
      const now = this.#deps.clock.now();
      const id = randomUUID();
      const challenge = randomBytes(32);
      await tx.insertChallenge({ id, cardNumber, challenge, expiresAt: new Date(now.getTime() + CHALLENGE_TTL_MS), createdAt: now });
      return { challengeId: id, challenge: challenge.toString('base64'), expiresAt: new Date(now.getTime() + CHALLENGE_TTL_MS).toISOString() };
    });
  }

  async enrol(command: CitizenCommand, input: EnrolInput): Promise<EnrolledDevice> {
    const operation = 'enrol device';
    const { store, ra, clock } = this.#deps;
    const cardNumber = checkCardNumber(input.cardNumber, operation);
    if (typeof input.challengeId !== 'string' || !UUID.test(input.challengeId)) throw new PkiError('INVALID_ARGUMENT', `${operation}: challengeId must be a UUID`);
    if (typeof input.deviceName !== 'string' || input.deviceName.trim() === '' || input.deviceName.length > 64) throw new PkiError('INVALID_ARGUMENT', `${operation}: deviceName must be 1-64 characters`);
    if (typeof input.subscriberCode !== 'string' || input.subscriberCode.length === 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: subscriberCode is required`);
    const devicePublicKey = parseDeviceKey(input.devicePublicKey, operation);
    const deviceSignature = base64(input.deviceSignature, 'deviceSignature', operation);
    const cardSignature = base64(input.cardSignature, 'cardSignature', operation);

    // A retry of an enrolment that succeeded gets its answer (its challenge is used by now).
    const replay = await store.reads.completedIdempotency(`citizen:${cardNumber}`, command.idempotencyKey);
    if (replay) {
      if (replay.operation !== operation || !replay.fingerprint.equals(command.fingerprint)) throw idempotencyConflict(operation, command.idempotencyKey, replay.operation);
      if (replay.result && (replay.result as EnrolledDevice).certificate) return replay.result as EnrolledDevice;
    }
    const card = await store.reads.getCard(cardNumber);
    if (!card || !['ISSUED', 'ACTIVATED'].includes(card.state) || !card.signingCertificate || !card.subscriberId) throw new PkiError('FAILED_PRECONDITION', `${operation}: card ${cardNumber} cannot bind a device (it must be issued and in use)`);
    const challenge = await this.#openChallenge(input.challengeId, cardNumber, operation);
    const message = bindingMessage(challenge, cardNumber, devicePublicKey);
    if (!verify('sha256', message, new X509Certificate(card.signingCertificate).publicKey, cardSignature)) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: cardSignature is not by the SIGN key of card ${cardNumber}: the binding must be signed with this card`);
    }
    if (!verify('sha256', message, createPublicKey({ key: devicePublicKey, format: 'der', type: 'spki' }), deviceSignature)) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: deviceSignature does not verify with devicePublicKey (no proof of possession of the phone's key)`);
    }
    try {
      await ra.verifySubscriberCode({ cardNumber, subscriberCode: input.subscriberCode, purpose: 'mobile-binding' });
    } catch (err) {
      const failure = PkiError.from(err, operation);
      throw failure.code === 'UNAUTHENTICATED' ? new PkiError('UNAUTHENTICATED', `${operation}: the subscriber code is wrong`) : failure;
    }

    const subscriberId = card.subscriberId;
    const reserved = await this.#once(command, `citizen:${cardNumber}`, operation, async (tx) => {
      const now = clock.now();
      if (!(await tx.useChallenge(input.challengeId as string, now))) throw new PkiError('FAILED_PRECONDITION', `${operation}: the challenge was used already; ask for a new one`);
      if (await tx.deviceWithKey(devicePublicKey)) throw new PkiError('ALREADY_EXISTS', `${operation}: this phone key is already enrolled`);
      // Locked: two enrolments at once cannot both be the third.
      const live = (await tx.devicesOfSubscriber(subscriberId, { forUpdate: true })).filter((d) => d.state !== 'REVOKED');
      if (live.length >= MAX_DEVICES) {
        throw new PkiError('FAILED_PRECONDITION', `${operation}: the card holder already has ${live.length} mobile devices, the most allowed; revoke one first`, { details: { devices: String(live.length) } });
      }
      const device: DeviceRecord = { id: randomUUID(), subscriberId, cardNumber, name: (input.deviceName as string).trim(), publicKey: devicePublicKey, state: 'ACTIVE', createdAt: now, updatedAt: now };
      await tx.insertDevice(device);
      await tx.audit({ action: 'device.bind', outcome: 'SUCCESS', actor: { type: 'citizen', id: `card:${cardNumber}` }, objects: [{ type: 'card', id: cardNumber }, { type: 'device', id: device.id }], attributes: { devices: String(live.length + 1) } });
      return deviceView(device);
    });
    let issued;
    try {
      issued = await ra.issueMobileCertificate({ cardNumber, deviceId: reserved.deviceId, publicKeySpki: devicePublicKey });
    } catch (err) {
      const failure = PkiError.from(err, operation);
      if (failure.code !== 'UNAVAILABLE' && failure.code !== 'DEADLINE_EXCEEDED' && failure.code !== 'INTERNAL') {
        // Refused for good: the device does not count towards the limit.
        await store.transaction(async (tx) => {
          await tx.updateDevice(reserved.deviceId, { state: 'REVOKED', updatedAt: clock.now() });
          await tx.audit({ action: 'device.certify', outcome: 'FAILURE', actor: { type: 'service', id: 'card-mgmt' }, objects: [{ type: 'device', id: reserved.deviceId }], reason: failure.code });
        });
      }
      throw failure;
    }
    const enrolled: EnrolledDevice = { ...reserved, serialHex: issued.serialHex, certificate: toPem(issued.certificateDer, 'CERTIFICATE'), chain: issued.chainDer.map((d) => toPem(d, 'CERTIFICATE')), notAfter: issued.notAfter.toISOString() };
    await store.transaction(async (tx) => {
      await tx.updateDevice(reserved.deviceId, { serialHex: issued.serialHex, updatedAt: clock.now() });
      await tx.audit({ action: 'device.certify', outcome: 'SUCCESS', actor: { type: 'service', id: 'card-mgmt' }, objects: [{ type: 'device', id: reserved.deviceId }, { type: 'certificate', id: issued.serialHex }] });
      await tx.completeIdempotency(`citizen:${cardNumber}`, command.idempotencyKey, enrolled);
    });
    return enrolled;
  }

  /** The devices of a card's holder, for the officer serving them. */
  async list(officer: Officer, cardNumber: string): Promise<{ devices: DeviceView[] }> {
    const operation = 'list devices';
    authorize(officer, 'stock.read', operation);
    checkCardNumber(cardNumber, operation);
    const card = await this.#deps.store.reads.getCard(cardNumber);
    if (!card) throw new PkiError('NOT_FOUND', `${operation}: no card ${cardNumber}`);
    assertOfficeScope(officer, card.office, operation, cardNumber);
    if (!card.subscriberId) return { devices: [] };
    return { devices: (await this.#deps.store.reads.devicesOfSubscriber(card.subscriberId)).map(deviceView) };
  }

  /** An officer suspends, resumes or revokes one device: ra changes its certificate, the others are untouched. */
  async changeStatus(command: Command, deviceId: string, operation: 'suspend' | 'resume' | 'revoke'): Promise<DeviceView> {
    const name = `${operation} device`;
    authorize(command.officer, 'card.unlock', name);
    if (!UUID.test(deviceId)) throw new PkiError('INVALID_ARGUMENT', `${name}: the device id must be a UUID`);
    const { store, ra, clock } = this.#deps;
    const device = await store.reads.getDevice(deviceId);
    if (!device) throw new PkiError('NOT_FOUND', `${name}: no device ${deviceId}`);
    const card = (await store.reads.getCard(device.cardNumber))!;
    assertOfficeScope(command.officer, card.office, name, card.cardNumber);
    const next = { suspend: { from: ['ACTIVE'], to: 'SUSPENDED' }, resume: { from: ['SUSPENDED'], to: 'ACTIVE' }, revoke: { from: ['ACTIVE', 'SUSPENDED'], to: 'REVOKED' } }[operation] as { from: string[]; to: DeviceRecord['state'] };
    if (!next.from.includes(device.state) || !device.serialHex) throw new PkiError('FAILED_PRECONDITION', `${name}: device ${deviceId} is ${device.state}; ${operation} needs a device that is ${next.from.join(' or ')}`);
    await ra.changeMobileCertificateStatus({ officerCertificateSha256: command.officer.certificateSha256, idempotencyKey: `${command.officer.id}:${command.idempotencyKey}`, serialHex: device.serialHex, operation });
    return runOnce(store, command, name, async (tx) => {
      const locked = (await tx.getDevice(deviceId, { forUpdate: true }))!;
      const now = clock.now();
      await tx.updateDevice(deviceId, { state: next.to, updatedAt: now });
      await tx.audit({ action: `device.${operation}`, outcome: 'SUCCESS', actor: actorOf(command.officer), objects: [{ type: 'device', id: deviceId }, { type: 'card', id: locked.cardNumber }, { type: 'certificate', id: device.serialHex! }] });
      return deviceView({ ...locked, state: next.to, updatedAt: now });
    });
  }

  async #openChallenge(id: string, cardNumber: string, operation: string): Promise<Buffer> {
    const c = await this.#deps.store.reads.getChallenge(id);
    if (!c || c.cardNumber !== cardNumber) throw new PkiError('NOT_FOUND', `${operation}: no challenge ${id} for card ${cardNumber}`);
    if (c.usedAt) throw new PkiError('FAILED_PRECONDITION', `${operation}: the challenge was used already; ask for a new one`);
    if (c.expiresAt.getTime() < this.#deps.clock.now().getTime()) throw new PkiError('FAILED_PRECONDITION', `${operation}: the challenge expired; ask for a new one`);
    return c.challenge;
  }

  async #once<T>(command: CitizenCommand, scope: string, operation: string, work: (tx: CardStoreTx) => Promise<T>): Promise<T> {
    return this.#deps.store.transaction(async (tx) => {
      const claim = await tx.claimIdempotency(scope, command.idempotencyKey, operation, command.fingerprint);
      if (claim.kind === 'conflict') throw idempotencyConflict(operation, command.idempotencyKey, claim.operation);
      if (claim.kind === 'done') return claim.result as T;
      const result = await work(tx);
      await tx.completeIdempotency(scope, command.idempotencyKey, result);
      return result;
    });
  }
}

function parseDeviceKey(input: unknown, operation: string): Buffer {
  if (typeof input !== 'string' || !/^[A-Za-z0-9+/=]{40,400}$/.test(input)) throw new PkiError('INVALID_ARGUMENT', `${operation}: devicePublicKey must be a P-256 public key (SPKI DER, base64)`);
  const der = Buffer.from(input, 'base64');
  let key;
  try {
    key = describePublicKey(der, operation);
  } catch (err) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: devicePublicKey is not a public key (SPKI DER, base64)`, { cause: err });
  }
  if (key.type !== 'EC' || key.curve !== 'P-256') throw new PkiError('INVALID_ARGUMENT', `${operation}: devicePublicKey must be a P-256 key, not ${key.type === 'RSA' ? `RSA-${key.bits}` : key.curve}`);
  return der;
}

function base64(input: unknown, field: string, operation: string): Buffer {
  if (typeof input !== 'string' || !/^[A-Za-z0-9+/=]{40,700}$/.test(input)) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} must be a signature in base64`);
  return Buffer.from(input, 'base64');
}
