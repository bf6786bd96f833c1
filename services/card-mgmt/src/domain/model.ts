import type { CardAction, CardState } from './card-states';

/** card-mgmt's records as the domain sees them (ports/card-store.ts stores them). */

export interface CardRecord {
  cardNumber: string;
  chipSerial: string;
  /** The chip's attestation public key (SPKI DER), from the supplier's manifest. */
  attestationKey: Buffer;
  batchId: string;
  state: CardState;
  office: string;
  subscriberId?: string;
  replacesCard?: string;
  replacedBy?: string;
  signingSerial?: string;
  encryptionSerial?: string;
  signingCertificate?: Buffer;
  tokenSerial?: string;
  updatedAt: Date;
  createdAt: Date;
}

export interface TransitionRecord {
  cardNumber: string;
  action: CardAction;
  fromState?: CardState;
  toState: CardState;
  fromOffice?: string;
  toOffice: string;
  actor: AuditActor;
  reason?: string;
  at: Date;
}

export type AuditActor = { type: 'officer'; id: string; office: string; role: string } | { type: 'citizen'; id: string } | { type: 'service'; id: string };

export interface AuditRecord {
  action: string;
  outcome: 'SUCCESS' | 'FAILURE';
  actor: AuditActor;
  objects: Array<{ type: string; id: string }>;
  reason?: string;
  attributes?: Record<string, string>;
}

export type PersonalisationState = 'STARTED' | 'ISSUING' | 'COMPLETED' | 'FAILED';

export interface PersonalisationRecord {
  id: string;
  cardNumber: string;
  kind: 'NEW' | 'REPLACEMENT';
  replacesCard?: string;
  subscriberId: string;
  office: string;
  officerId: string;
  officerCertificateSha256: string;
  challenge: Buffer;
  state: PersonalisationState;
  failure?: string;
  result?: unknown;
  /** Set when ra is asked: what a resumption sends again. */
  request?: { signingCsr: string; encryptionCsr: string; tokenSerial: string };
  createdAt: Date;
  updatedAt: Date;
}

export type DeviceState = 'ACTIVE' | 'SUSPENDED' | 'REVOKED';

export interface DeviceRecord {
  id: string;
  subscriberId: string;
  cardNumber: string;
  name: string;
  publicKey: Buffer;
  state: DeviceState;
  serialHex?: string;
  createdAt: Date;
  updatedAt: Date;
}

export interface BindingChallenge {
  id: string;
  cardNumber: string;
  challenge: Buffer;
  expiresAt: Date;
  usedAt?: Date;
  createdAt: Date;
}

export type IdempotencyClaim = { kind: 'new' } | { kind: 'done'; result: unknown } | { kind: 'in-progress' } | { kind: 'conflict'; operation: string };
