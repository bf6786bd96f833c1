import { PkiError } from '@pki/kit';
import { describePublicKey } from '@pki/x509';
import { assertOfficeScope, authorize } from './access';
import { revocationReasonOf, type StatusReason } from './lifecycle';
import type { CertificateRecord } from './model';
import { actorOf, changeCertificateStatus, isLive, runOnce, type Command, type RaDeps } from './shared';
import { certificateView, type CertificateView } from './views';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface IssueMobileInput {
  cardNumber: string;
  /** card-mgmt's id of the enrolled device: one certificate per device, however often asked. */
  deviceId: string;
  /** The phone's P-256 key (SubjectPublicKeyInfo DER). */
  publicKeySpki: Buffer;
}

/**
 * Mobile credentials (decision 0025): card-mgmt enrols a phone after it has checked the binding
 * (a challenge signed by the card's SIGN key, the subscriber code, at most 3 devices); ra has
 * ca-signer certify the phone's key under the citizen-mobile profile with the card holder's
 * subject, records it with the card it was bound through, and emits its status events. The
 * certificate then follows that card: suspending, revoking or replacing the card moves it too.
 */
export class MobileCertificates {
  readonly #deps: RaDeps;

  constructor(deps: RaDeps) {
    this.#deps = deps;
  }

  async issue(input: IssueMobileInput): Promise<CertificateView> {
    const operation = 'issue mobile certificate';
    const { registry, signer, vault, clock, policy, serviceIdentity } = this.#deps;
    if (!UUID.test(input.deviceId)) throw new PkiError('INVALID_ARGUMENT', `${operation}: device_id must be a UUID`);
    let key;
    try {
      key = describePublicKey(input.publicKeySpki, operation);
    } catch (err) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: public_key_spki is not a public key`, { cause: err });
    }
    if (key.type !== 'EC' || key.curve !== 'P-256') throw new PkiError('INVALID_ARGUMENT', `${operation}: a mobile credential's key is P-256`);
    const existing = await registry.reads.certificatesOfCard(input.cardNumber);
    const already = existing.find((c) => c.deviceId === input.deviceId);
    if (already) return certificateView(already);
    const card = await registry.reads.getCard(input.cardNumber);
    if (!card) throw new PkiError('NOT_FOUND', `${operation}: no card ${input.cardNumber}`);
    if (card.status !== 'ISSUED' && card.status !== 'ACTIVE') throw new PkiError('FAILED_PRECONDITION', `${operation}: card ${input.cardNumber} is ${card.status}; a phone is bound only through a card in use`);
    const subscriber = await registry.reads.getSubscriber(card.subscriberId);
    if (subscriber?.status !== 'ACTIVE') throw new PkiError('FAILED_PRECONDITION', `${operation}: subscriber ${card.subscriberId} is ${subscriber?.status ?? 'missing'}`);
    // The profile's own limit (2 years) applies when the card outlives it; notAfter is whole seconds.
    const profileLimit = new Date(clock.now());
    profileLimit.setUTCFullYear(profileLimit.getUTCFullYear() + 2);
    const sign = existing.filter((c) => c.keySlot === 'SIGN' && c.status !== 'REVOKED').map((c) => c.notAfter.getTime());
    const cardNotAfter = sign.length > 0 && Math.min(...sign) < profileLimit.getTime() - 60_000 ? new Date(Math.floor(Math.min(...sign) / 1000) * 1000) : undefined;
    const open = (field: 'nationalId' | 'name', ciphertext: Buffer) => vault.open(field, subscriber.id, { keyId: subscriber.sealed.keyId, ciphertext });
    const signed = await signer.issue(
      {
        idempotencyKey: `ra/mobile/${input.deviceId}`,
        profile: 'citizen-mobile',
        publicKeySpki: input.publicKeySpki,
        subject: [{ type: 'C', value: 'TW' }, { type: 'CN', value: open('name', subscriber.sealed.name) }, { type: 'serialNumber', value: card.subjectSerial }],
        nationalIdLastFour: open('nationalId', subscriber.sealed.nationalId).slice(-4),
        // Never beyond the card it was bound through.
        ...(cardNotAfter ? { notAfter: cardNotAfter } : {}),
      },
      new Date(Date.now() + policy.signerDeadlineMs),
    );
    const now = clock.now();
    const record: CertificateRecord = {
      serialHex: signed.serialHex,
      issuerKeyId: signed.issuerKeyId,
      profile: 'citizen-mobile',
      cardNumber: card.cardNumber,
      keySlot: 'MOBILE',
      deviceId: input.deviceId,
      status: 'VALID',
      notBefore: signed.notBefore,
      notAfter: signed.notAfter,
      certificateDer: signed.certificateDer,
      createdAt: now,
      updatedAt: now,
    };
    return registry.transaction(async (tx) => {
      const recorded = await tx.getCertificate(signed.serialHex);
      if (recorded) return certificateView(recorded);
      await tx.insertCertificate(record);
      await tx.recordStatusChange({ serialHex: record.serialHex, issuerKeyId: record.issuerKeyId, profile: record.profile, status: 'VALID', changedAt: now, notBefore: record.notBefore, notAfter: record.notAfter });
      await tx.audit({
        action: 'certificate.issue',
        outcome: 'SUCCESS',
        actor: { type: 'service', id: serviceIdentity },
        objects: [{ type: 'certificate', id: record.serialHex }, { type: 'card', id: card.cardNumber }, { type: 'device', id: input.deviceId }, { type: 'subscriber', id: subscriber.personRef }],
        attributes: { profile: 'citizen-mobile', notAfter: record.notAfter.toISOString() },
      });
      return certificateView(record);
    });
  }

  /** An officer suspends, resumes or revokes one mobile certificate; the card and its other devices are untouched. */
  async changeStatus(command: Command, serialHex: string, operation: 'suspend' | 'resume' | 'revoke', reasonInput?: string): Promise<CertificateView> {
    const name = `${operation} mobile certificate`;
    authorize(command.principal, operation === 'revoke' ? 'card.revoke' : operation === 'suspend' ? 'card.suspend' : 'card.resume', name);
    const reason: StatusReason | undefined = operation === 'suspend' ? 'certificateHold' : operation === 'resume' ? 'removeFromCRL' : revocationReasonOf(reasonInput ?? 'cessationOfOperation', name);
    const { clock } = this.#deps;
    return runOnce(this.#deps, command, name, async (tx) => {
      const found = await tx.getCertificate(serialHex);
      if (!found || found.keySlot !== 'MOBILE' || !found.cardNumber) throw new PkiError('NOT_FOUND', `${name}: no mobile certificate ${serialHex}`);
      // Locked with the card's other certificates, as every card operation locks them.
      const certificate = (await tx.certificatesOfCard(found.cardNumber, { forUpdate: true })).find((c) => c.serialHex === serialHex)!;
      const card = await tx.getCard(found.cardNumber);
      if (card) assertOfficeScope(command.principal, card.office, name, `card ${card.cardNumber}`);
      const now = clock.now();
      const allowed = operation === 'resume' ? certificate.status === 'SUSPENDED' : operation === 'suspend' ? certificate.status === 'VALID' : isLive(certificate, now);
      if (!allowed || !isLive(certificate, now)) throw new PkiError('FAILED_PRECONDITION', `${name}: certificate ${serialHex} is ${certificate.status}`);
      const status = operation === 'suspend' ? 'SUSPENDED' : operation === 'resume' ? 'VALID' : 'REVOKED';
      await changeCertificateStatus(tx, [certificate], { status, ...(reason ? { reason } : {}), at: now, by: command.principal.kind === 'officer' ? command.principal.id : 'card-mgmt' });
      await tx.audit({ action: `certificate.${operation}`, outcome: 'SUCCESS', actor: actorOf(command.principal), objects: [{ type: 'certificate', id: serialHex }, { type: 'device', id: certificate.deviceId ?? '' }], ...(reason ? { reason } : {}) });
      return certificateView({ ...certificate, status, ...(reason ? { reason } : {}), updatedAt: now, ...(status === 'VALID' ? {} : { revocationTime: now }) });
    });
  }
}
