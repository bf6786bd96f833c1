import type { Clock, Logger } from '@pki/kit';
import type { CardStore } from '../ports/card-store';
import { TRANSITIONS, type CardAction } from './card-states';
import { moveCard } from './card-stock';

/** A certificate status change as ra publishes it (pki.certificate-status.v1), in the domain's words. */
export interface CertificateStatusEvent {
  producer: string;
  seq: number;
  serialHex: string;
  status: 'VALID' | 'SUSPENDED' | 'REVOKED';
  previousStatus?: 'VALID' | 'SUSPENDED' | 'REVOKED';
  reason?: string;
}

/**
 * Keeps the physical cards and devices in step with what ra does to their certificates elsewhere:
 * an officer's revocation in ra, a household-registration event, the citizen's self-service
 * suspension or resumption. The card follows its SIGN certificate (both move together in ra); a
 * device follows its own. A change the card's state does not allow (a LOST card's suspension, a
 * REPLACED card's supersession) is already reflected and is skipped. Each event is applied once,
 * in the transaction of its effect.
 */
export class StatusFollower {
  constructor(
    private readonly store: CardStore,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  async apply(event: CertificateStatusEvent): Promise<'card' | 'device' | 'none' | 'duplicate'> {
    return this.store.transaction(async (tx) => {
      if (!(await tx.acceptEventOnce('card-mgmt.status', event))) return 'duplicate';
      const device = await tx.deviceWithSerial(event.serialHex);
      if (device) {
        const state = event.status === 'VALID' ? 'ACTIVE' : event.status;
        if (device.state === state || device.state === 'REVOKED') return 'none';
        await tx.updateDevice(device.id, { state, updatedAt: this.clock.now() });
        await tx.audit({ action: 'device.follow', outcome: 'SUCCESS', actor: { type: 'service', id: 'ra' }, objects: [{ type: 'device', id: device.id }, { type: 'certificate', id: event.serialHex }], attributes: { state } });
        return 'device';
      }
      const card = await tx.cardWithSigningSerial(event.serialHex);
      if (!card) return 'none';
      const action: Exclude<CardAction, 'receive'> | undefined =
        event.status === 'REVOKED' ? 'revoke' : event.status === 'SUSPENDED' ? 'suspend' : event.previousStatus === 'SUSPENDED' ? 'resume' : undefined;
      if (!action || !TRANSITIONS[action].from.includes(card.state)) return 'none';
      await moveCard(tx, card, action, { actor: { type: 'service', id: 'ra' }, at: this.clock.now(), ...(event.reason ? { reason: event.reason } : {}), objects: [{ type: 'certificate', id: event.serialHex }] });
      this.logger.info({ card: card.cardNumber, action }, 'card follows a status change made in ra');
      return 'card';
    });
  }
}
