import type { Logger } from '@pki/kit';
import type { AgencyStore, OcspIdentification } from '../ports/agency';
import { taipeiMonth } from './agency-systems';

/** One metering window of one OCSP responder (proto OcspUsageCounted), in the domain's terms. */
export interface OcspUsageWindow {
  responderInstance: string;
  windowSequence: bigint;
  windowStart: Date;
  entries: Array<{ identification: OcspIdentification; callerKey: string; requests: number }>;
  anonymousRequests: number;
  /** Identified requests the responder could not keep per caller (its caller table was full). */
  overflowRequests?: number;
}

export interface OcspUsageApplied {
  duplicate: boolean;
  attributed: number;
  unattributed: number;
}

/**
 * Credits the responders' OCSP counts to registered systems. A window is applied once: the
 * (responder instance, window sequence) pair is recorded in the same transaction as the counts,
 * so a redelivered event changes nothing. MTLS and SIGNED_REQUEST callers are named by the issuer
 * key id and serial of their certificate (a system's credential, also after it was renewed or
 * revoked: the requests were made); SYSTEM_URL callers by the system id in the URL. What no system
 * can be credited with is kept per month and identification, with the anonymous requests.
 */
export class UsageMetering {
  readonly #store: AgencyStore;
  readonly #logger: Logger;

  constructor(store: AgencyStore, logger: Logger) {
    this.#store = store;
    this.#logger = logger;
  }

  async applyOcspWindow(window: OcspUsageWindow): Promise<OcspUsageApplied> {
    const month = taipeiMonth(window.windowStart);
    const applied = await this.#store.transaction(async (tx) => {
      if (!(await tx.acceptUsageWindow(window.responderInstance, window.windowSequence, window.windowStart))) return { duplicate: true, attributed: 0, unattributed: 0 };
      let attributed = 0;
      let unattributed = 0;
      const perSystem = new Map<string, number>();
      const perIdentification = new Map<OcspIdentification, number>();
      for (const entry of window.entries) {
        if (entry.requests <= 0) continue;
        let systemId: string | undefined;
        if (entry.identification === 'MTLS' || entry.identification === 'SIGNED_REQUEST') {
          const match = /^([0-9a-fA-F]+):([0-9a-fA-F]+)$/.exec(entry.callerKey);
          if (match) systemId = await tx.systemByCredentialSerial(match[1]!.toLowerCase(), match[2]!.toLowerCase());
        } else if (entry.identification === 'SYSTEM_URL') {
          if (await tx.systemExists(entry.callerKey)) systemId = entry.callerKey;
        }
        if (systemId) {
          perSystem.set(systemId, (perSystem.get(systemId) ?? 0) + entry.requests);
          attributed += entry.requests;
        } else {
          perIdentification.set(entry.identification, (perIdentification.get(entry.identification) ?? 0) + entry.requests);
          unattributed += entry.requests;
        }
      }
      for (const [identification, requests] of [['ANONYMOUS', window.anonymousRequests], ['OVERFLOW', window.overflowRequests ?? 0]] as const) {
        if (requests <= 0) continue;
        perIdentification.set(identification, (perIdentification.get(identification) ?? 0) + requests);
        unattributed += requests;
      }
      for (const [systemId, uses] of perSystem) await tx.addUsage(systemId, month, 'ocsp', uses);
      for (const [identification, requests] of perIdentification) await tx.addUnattributed(month, identification, requests);
      return { duplicate: false, attributed, unattributed };
    });
    if (!applied.duplicate) this.#logger.debug({ responder: window.responderInstance, window: window.windowSequence.toString(), ...applied }, 'OCSP usage window applied');
    return applied;
  }
}
