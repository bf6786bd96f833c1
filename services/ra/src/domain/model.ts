import type { Gender, NationalIdKind } from './national-id';
import type { CardStatus, CertificateStatus, StatusReason } from './lifecycle';
import type { CodeAttemptState } from './subscriber-code';
import type { OfficerRole } from './access';

/** The registry's records, as the domain sees them (ports/registry.ts stores them). */

export type SubscriberStatus = 'ACTIVE' | 'ID_CHANGED' | 'NAME_CHANGED' | 'DECEASED' | 'NATIONALITY_LOST';

export interface SubscriberRecord {
  id: string;
  /** Keyed hash of the national ID: how audit records and events name this person. */
  personRef: string;
  lookup: { keyId: string; hash: Buffer };
  /** Every personal field sealed under one key (rotation re-seals the row). */
  sealed: { keyId: string; nationalId: Buffer; name: Buffer; birthDate: Buffer; email?: Buffer };
  idKind: NationalIdKind;
  gender: Gender;
  publicationConsent: boolean;
  subscriberCodeHash: string;
  codeAttempts: CodeAttemptState;
  status: SubscriberStatus;
  office: string;
  createdAt: Date;
}

export type ApplicationKind = 'NEW' | 'REPLACEMENT' | 'REISSUE' | 'EXTENSION';
export type ApplicationState = 'SUBMITTED' | 'PENDING_APPROVAL' | 'ISSUING' | 'ISSUED' | 'REJECTED' | 'FAILED';

export interface ApplicationRecord {
  id: string;
  kind: ApplicationKind;
  state: ApplicationState;
  subscriberId: string;
  cardNumber: string;
  /** REPLACEMENT and REISSUE: the card whose certificates the new ones supersede. */
  replacesCard?: string;
  /**
   * The 16-digit serialNumber of the certificates' subject, fixed when the application is made so
   * that a retried issuance asks ca-signer for exactly the same subject.
   */
  subjectSerial: string;
  office: string;
  createdBy: string;
  /** The card's keys (SubjectPublicKeyInfo DER): what the CSRs proved possession of. */
  signingSpki: Buffer;
  encryptionSpki: Buffer;
  /** EXTENSION: the notAfter the extended certificates get. */
  notAfter?: Date;
  /** FAILED / REJECTED: why (no personal data). */
  reason?: string;
  decidedBy?: string;
  createdAt: Date;
  updatedAt: Date;
}

export interface CardRecord {
  cardNumber: string;
  subscriberId: string;
  /** The 16-digit serialNumber of the certificates' subject (not the national ID). */
  subjectSerial: string;
  status: CardStatus;
  office: string;
  activatedAt?: Date;
  extended: boolean;
  signingSpki: Buffer;
  encryptionSpki: Buffer;
  /** When the card's keys were first certified: they are not used beyond 10 years (domain.md). */
  keysCreatedAt: Date;
  /** notAfter of the card's first certificates: the extension window is measured from it. */
  originalNotAfter: Date;
  createdAt: Date;
}

/** SIGN and KEYX: the card's two key pairs; MOBILE: a phone's key bound through the card (decision 0025). */
export type KeySlot = 'SIGN' | 'KEYX' | 'MOBILE' | 'AGENCY';

export interface CertificateRecord {
  serialHex: string;
  issuerKeyId: string;
  profile: string;
  cardNumber?: string;
  applicationId?: string;
  keySlot: KeySlot;
  /** MOBILE: the device card-mgmt enrolled. */
  deviceId?: string;
  /** AGENCY: the application system whose credential it is. */
  systemId?: string;
  status: CertificateStatus;
  reason?: StatusReason;
  revocationTime?: Date;
  invalidityDate?: Date;
  notBefore: Date;
  notAfter: Date;
  certificateDer: Buffer;
  createdAt: Date;
  updatedAt: Date;
}

export type ApprovalOperation = 'card.revoke' | 'cards.bulk-revoke' | 'application.issue';
export type ApprovalState = 'PENDING' | 'APPROVED' | 'REJECTED' | 'EXPIRED' | 'EXECUTED';

export type ApprovalPayload =
  | { operation: 'card.revoke'; cardNumber: string; reason: string; invalidityDate?: string; comment?: string }
  | { operation: 'cards.bulk-revoke'; cardNumbers: string[]; reason: string; comment?: string }
  | { operation: 'application.issue'; applicationId: string };

export interface ApprovalRecord {
  id: string;
  operation: ApprovalOperation;
  payload: ApprovalPayload;
  state: ApprovalState;
  office: string;
  requestedBy: string;
  createdAt: Date;
  expiresAt: Date;
  decidedBy?: string;
  decidedAt?: Date;
  comment?: string;
}

export interface PrincipalRecord {
  id: string;
  kind: 'officer' | 'household-system';
  role?: OfficerRole;
  office?: string;
  status: 'ACTIVE' | 'DISABLED';
}

export type HouseholdEventKind = 'ID_CHANGE' | 'NAME_CHANGE' | 'DEATH' | 'DECLARED_DEATH' | 'NATIONALITY_LOSS';

/** A status change as ocsp and crl need it (proto CertificateStatusChanged), committed with the change. */
export interface StatusChange {
  serialHex: string;
  issuerKeyId: string;
  profile: string;
  status: CertificateStatus;
  previousStatus?: CertificateStatus;
  reason?: StatusReason;
  revocationTime?: Date;
  invalidityDate?: Date;
  changedAt: Date;
  notBefore: Date;
  notAfter: Date;
}

export type AuditActor =
  | { type: 'officer'; id: string; office: string; role: string }
  | { type: 'citizen'; personRef: string }
  | { type: 'household-system'; id: string }
  | { type: 'agency-system'; id: string }
  | { type: 'service'; id: string };

/** One audit event (proto AuditEvent): no personal data, persons only by their reference. */
export interface AuditRecord {
  action: string;
  outcome: 'INTENT' | 'SUCCESS' | 'FAILURE';
  actor: AuditActor;
  objects: Array<{ type: string; id: string }>;
  reason?: string;
  attributes?: Record<string, string>;
}
