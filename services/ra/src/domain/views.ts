import { toPem } from '@pki/x509';
import type { ApplicationRecord, ApprovalRecord, CardRecord, CertificateRecord, KeySlot } from './model';

/**
 * What the API returns, as plain JSON (dates as ISO strings), so that an idempotent replay returns
 * exactly what the first call did. No personal data: a subscriber appears only by id.
 */
export interface CertificateView {
  serialHex: string;
  issuerKeyId: string;
  profile: string;
  keySlot: KeySlot;
  status: 'VALID' | 'SUSPENDED' | 'REVOKED';
  reason?: string;
  revocationTime?: string;
  invalidityDate?: string;
  notBefore: string;
  notAfter: string;
  cardNumber?: string;
  /** PEM. */
  certificate: string;
  /** The chain of the generation that signed it, issuing CA first (PEM). */
  chain?: string[];
}

export interface CardView {
  cardNumber: string;
  status: string;
  subscriberId: string;
  subjectSerialNumber: string;
  office: string;
  activatedAt?: string;
  extended: boolean;
  /** Every certificate the card carried, newest first. */
  certificates: CertificateView[];
}

export interface ApplicationView {
  id: string;
  kind: string;
  state: string;
  subscriberId: string;
  cardNumber: string;
  replacesCard?: string;
  office: string;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
  reason?: string;
  approvalRequestId?: string;
}

export interface ApprovalView {
  id: string;
  operation: string;
  state: string;
  office: string;
  requestedBy: string;
  createdAt: string;
  expiresAt: string;
  decidedBy?: string;
  decidedAt?: string;
  comment?: string;
  /** What the request does, e.g. { cardNumber, reason }. */
  target: Record<string, unknown>;
}

const iso = (d: Date | undefined): string | undefined => d?.toISOString();

function defined<T extends Record<string, unknown>>(value: T): T {
  for (const key of Object.keys(value)) if (value[key] === undefined) delete value[key];
  return value;
}

export function certificateView(c: CertificateRecord, chain?: string[]): CertificateView {
  return defined({
    serialHex: c.serialHex,
    issuerKeyId: c.issuerKeyId,
    profile: c.profile,
    keySlot: c.keySlot,
    status: c.status,
    reason: c.reason,
    revocationTime: iso(c.revocationTime),
    invalidityDate: iso(c.invalidityDate),
    notBefore: c.notBefore.toISOString(),
    notAfter: c.notAfter.toISOString(),
    cardNumber: c.cardNumber,
    certificate: toPem(c.certificateDer, 'CERTIFICATE'),
    chain,
  });
}

export function cardView(card: CardRecord, certificates: readonly CertificateRecord[], chains?: ReadonlyMap<string, string[]>): CardView {
  const newestFirst = [...certificates].sort((a, b) => b.notBefore.getTime() - a.notBefore.getTime() || a.keySlot.localeCompare(b.keySlot));
  return defined({
    cardNumber: card.cardNumber,
    status: card.status,
    subscriberId: card.subscriberId,
    subjectSerialNumber: card.subjectSerial,
    office: card.office,
    activatedAt: iso(card.activatedAt),
    extended: card.extended,
    certificates: newestFirst.map((c) => certificateView(c, chains?.get(c.issuerKeyId))),
  });
}

export function applicationView(a: ApplicationRecord, approvalRequestId?: string): ApplicationView {
  return defined({
    id: a.id,
    kind: a.kind,
    state: a.state,
    subscriberId: a.subscriberId,
    cardNumber: a.cardNumber,
    replacesCard: a.replacesCard,
    office: a.office,
    createdBy: a.createdBy,
    createdAt: a.createdAt.toISOString(),
    updatedAt: a.updatedAt.toISOString(),
    reason: a.reason,
    approvalRequestId,
  });
}

export function approvalView(a: ApprovalRecord, now: Date): ApprovalView {
  const { operation: _operation, ...target } = a.payload;
  return defined({
    id: a.id,
    operation: a.operation,
    // An expired request reads as EXPIRED even before the sweeper has marked it.
    state: a.state === 'PENDING' && a.expiresAt <= now ? 'EXPIRED' : a.state,
    office: a.office,
    requestedBy: a.requestedBy,
    createdAt: a.createdAt.toISOString(),
    expiresAt: a.expiresAt.toISOString(),
    decidedBy: a.decidedBy,
    decidedAt: iso(a.decidedAt),
    comment: a.comment,
    target,
  });
}
