import type { CertificateStatus } from '../domain/lifecycle';
import type { CardStatus } from '../domain/lifecycle';
import type { RegistryTx } from './registry';

/** The programme's split of application systems and their uses (domain.md, yearly table). */
export type SystemSector = 'GOVERNMENT' | 'PUBLIC';
export type SystemStatus = 'ACTIVE' | 'SUSPENDED' | 'RETIRED';
/** What a use was: ra meters the first two itself; OCSP requests arrive from the responders' usage events. */
export type UsageChannel = 'identity-confirmation' | 'certificate-validation' | 'ocsp';
/** How an OCSP caller identified itself (proto OcspCallerIdentification), or nobody at all. */
/** OVERFLOW: identified requests beyond a responder's caller table in one window (proto overflow_requests), whose callers it did not keep. */
export type OcspIdentification = 'ANONYMOUS' | 'OVERFLOW' | 'MTLS' | 'SIGNED_REQUEST' | 'SYSTEM_URL' | 'UNSPECIFIED';

export interface SystemContact {
  name: string;
  email: string;
  phone?: string;
}

export interface ApplicationSystemRecord {
  id: string;
  agency: string;
  name: string;
  sector: SystemSector;
  contact: SystemContact;
  status: SystemStatus;
  rateLimitPerMinute: number;
  createdAt: Date;
  createdBy: string;
  updatedAt: Date;
  retiredAt?: Date;
}

export interface AgencyCredentialRecord {
  certificateSha256: string;
  serialHex: string;
  issuerKeyId: string;
  systemId: string;
  certificateDer: Buffer;
  notBefore: Date;
  notAfter: Date;
  createdAt: Date;
  /** The certificate's status in the registry (revocation is recorded there). */
  status: CertificateStatus;
}

/** A credential with its system, as authentication needs it. */
export interface AgencyCaller {
  system: ApplicationSystemRecord;
  credential: AgencyCredentialRecord;
}

/** One record of an identity-confirmation batch, as the lookup needs it: no national ID in clear. */
export interface IdentityLookupKey {
  seq: number;
  subjectSerial: string;
  /** The national ID's lookup hash under every lookup key (rotation does not hide rows). */
  lookups: Array<{ keyId: string; hash: Buffer }>;
}

/** What the registry knows about one record: the person by ID, the card by serialNumber, and whether they are the same. */
export interface IdentityLookupResult {
  seq: number;
  /** A subscriber holds this national ID. */
  personFound: boolean;
  /** That subscriber has at least one card. */
  personHasCard: boolean;
  /** The card with this serialNumber belongs to that subscriber. */
  pair?: {
    subscriberId: string;
    cardStatus: CardStatus;
    /** The latest notAfter of the card's SIGN and KEYX certificates. */
    notAfter?: Date;
    /** Sealed birth date, opened only when the record carries one to compare. */
    birthDateSealed: { keyId: string; ciphertext: Buffer };
  };
}

export interface UsageRow {
  systemId: string;
  agency: string;
  name: string;
  sector: SystemSector;
  /** 1-12. */
  month: number;
  channel: UsageChannel;
  uses: number;
}

export interface YearlyUsageRow {
  year: number;
  systems: Record<SystemSector, number>;
  uses: Record<SystemSector, number>;
  unattributedOcsp: number;
}

export interface GenderIssuanceRow {
  year: number;
  male: number;
  female: number;
}

export interface AgencyTx extends RegistryTx {
  insertSystem(system: ApplicationSystemRecord): Promise<void>;
  getSystem(id: string, options?: { forUpdate?: boolean }): Promise<ApplicationSystemRecord | undefined>;
  updateSystem(id: string, changes: { status: SystemStatus; updatedAt: Date; retiredAt?: Date }): Promise<void>;
  insertCredential(credential: Omit<AgencyCredentialRecord, 'status'>): Promise<void>;
  credentialsOfSystem(systemId: string): Promise<AgencyCredentialRecord[]>;
  /** Records the nonce for the system; false when it was seen before (a replay). */
  acceptNonce(systemId: string, nonce: string, expiresAt: Date): Promise<boolean>;
  /** One set-based lookup for a whole batch. */
  lookupIdentities(keys: readonly IdentityLookupKey[], now: Date): Promise<IdentityLookupResult[]>;
  addUsage(systemId: string, month: string, channel: UsageChannel, uses: number): Promise<void>;
  addUnattributed(month: string, identification: OcspIdentification, requests: number): Promise<void>;
  /** Records a responder's window; false when it was counted before. */
  acceptUsageWindow(responderInstance: string, windowSequence: bigint, windowStart: Date): Promise<boolean>;
  systemByCredentialSerial(issuerKeyId: string, serialHex: string): Promise<string | undefined>;
  systemExists(id: string): Promise<boolean>;
}

/** The agency part of ra's registry (adapters/postgres/agency.ts). */
export interface AgencyStore {
  transaction<T>(work: (tx: AgencyTx) => Promise<T>): Promise<T>;
  callerByCertificate(certificateSha256: string): Promise<AgencyCaller | undefined>;
  callerBySerial(issuerKeyId: string, serialHex: string): Promise<AgencyCaller | undefined>;
  getSystem(id: string): Promise<ApplicationSystemRecord | undefined>;
  listSystems(): Promise<ApplicationSystemRecord[]>;
  credentialsOfSystem(systemId: string): Promise<AgencyCredentialRecord[]>;
  usageOfYear(year: number): Promise<UsageRow[]>;
  unattributedOfYear(year: number): Promise<Array<{ month: number; identification: OcspIdentification; requests: number }>>;
  yearlyUsage(): Promise<YearlyUsageRow[]>;
  issuanceByGender(): Promise<GenderIssuanceRow[]>;
  purgeNonces(before: Date): Promise<number>;
}
