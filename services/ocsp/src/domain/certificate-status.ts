import { createHash } from 'node:crypto';
import { CRLReasons, type OcspSingleResponseSpec } from '@pki/x509';

/** The status of one certificate as the responder knows it (from ra's status events). */
export interface CertificateState {
  serialHex: string;
  issuerKeyId: string;
  status: 'VALID' | 'SUSPENDED' | 'REVOKED';
  revocationTime?: Date;
  /** RFC 5280 CRLReason; 0 with REVOKED means no reason given. */
  reason: number;
  notAfter: Date;
  statusProducer: string;
  statusSeq: number;
  changedAt: Date;
}

export interface ResponsePolicy {
  /** nextUpdate - thisUpdate of pre-produced responses, in seconds. */
  validitySeconds: number;
  refreshAt: number;
  jitter: number;
  expiredRetentionDays: number;
}

/** What an OCSP answer says for a certificate in this state (RFC 6960 §2.2). */
export function singleStatusOf(state: Pick<CertificateState, 'status' | 'revocationTime' | 'reason'>): OcspSingleResponseSpec['status'] {
  if (state.status === 'VALID') return { kind: 'good' };
  // GeneralizedTime in OCSP has whole seconds (RFC 5280 §4.1.2.5.2).
  const revocationTime = wholeSecond(state.revocationTime ?? new Date(0));
  // Suspension (停用) is revocation with reason certificateHold until it is lifted (RFC 5280 §5.3.1).
  if (state.status === 'SUSPENDED') return { kind: 'revoked', revocationTime, reason: CRLReasons.certificateHold };
  return { kind: 'revoked', revocationTime, ...(state.reason !== 0 ? { reason: state.reason as CRLReasons } : {}) };
}

/**
 * The answer for a serial this CA never issued under the `revoked` policy (RFC 6960 §2.2): revoked,
 * reason certificateHold, revocationTime 1970-01-01T00:00:00Z, with the extended-revoke extension.
 */
export const NEVER_ISSUED_REVOKED: OcspSingleResponseSpec['status'] = { kind: 'revoked', revocationTime: new Date(0), reason: CRLReasons.certificateHold };

/** Whether a certificate is past the expired-certificate policy: then it is no longer answered (unauthorized). */
export function pastRetention(notAfter: Date, now: Date, policy: Pick<ResponsePolicy, 'expiredRetentionDays'>): boolean {
  return now.getTime() > notAfter.getTime() + policy.expiredRetentionDays * 86_400_000;
}

/** Whole seconds, as GeneralizedTime carries them. */
export function wholeSecond(date: Date): Date {
  return new Date(Math.floor(date.getTime() / 1000) * 1000);
}

export interface ResponseTimes {
  thisUpdate: Date;
  nextUpdate: Date;
  /** When the updater signs again: a share of the validity in, plus a per-serial jitter. */
  refreshAt: Date;
}

/**
 * thisUpdate and nextUpdate of a response signed now. nextUpdate never passes the responder
 * certificate's notAfter (a response must not outlive its signer's certificate: ca-signer refuses it).
 */
export function validityWindow(now: Date, policy: Pick<ResponsePolicy, 'validitySeconds'>, responderNotAfter?: Date): { thisUpdate: Date; nextUpdate: Date } {
  const thisUpdate = wholeSecond(now);
  let validityMs = policy.validitySeconds * 1000;
  if (responderNotAfter) validityMs = Math.min(validityMs, wholeSecond(responderNotAfter).getTime() - thisUpdate.getTime());
  validityMs = Math.max(validityMs, 1000);
  return { thisUpdate, nextUpdate: new Date(thisUpdate.getTime() + validityMs) };
}

/**
 * thisUpdate, nextUpdate and the next refresh of a pre-produced response signed now (see
 * {@link validityWindow}); the refresh is spread by a jitter derived from the serial, so that a
 * population signed in one burst does not come due in one burst again.
 */
export function responseTimes(serialHex: string, now: Date, policy: ResponsePolicy, responderNotAfter?: Date): ResponseTimes {
  const { thisUpdate, nextUpdate } = validityWindow(now, policy, responderNotAfter);
  const validityMs = nextUpdate.getTime() - thisUpdate.getTime();
  const spread = createHash('sha256').update(serialHex).digest().readUInt32BE(0) / 0xffffffff; // 0..1, stable per serial
  const refreshAt = new Date(thisUpdate.getTime() + validityMs * (policy.refreshAt + policy.jitter * (2 * spread - 1)));
  return { thisUpdate, nextUpdate, refreshAt };
}
