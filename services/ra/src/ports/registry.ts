import type {
  ApplicationRecord,
  ApplicationState,
  ApprovalRecord,
  ApprovalState,
  AuditRecord,
  CardRecord,
  CertificateRecord,
  HouseholdEventKind,
  PrincipalRecord,
  StatusChange,
  SubscriberRecord,
  SubscriberStatus,
} from '../domain/model';
import type { CardStatus, CertificateStatus, StatusReason } from '../domain/lifecycle';
import type { CodeAttemptState } from '../domain/subscriber-code';

/**
 * ra's system of record. Everything that changes state happens inside {@link Registry.transaction},
 * together with its status events and audit events (the outbox), so the registry, ocsp, crl and
 * the audit log can never disagree. The PostgreSQL adapter (adapters/postgres) implements it.
 */
export interface Registry {
  transaction<T>(work: (tx: RegistryTx) => Promise<T>): Promise<T>;
  /** A caller's client certificate (SHA-256 of its DER, hex) to the principal it is registered to. */
  principalByCertificate(certificateSha256: string): Promise<PrincipalRecord | undefined>;
  /** Applications stuck in a state since before `before` (crash recovery). */
  applicationsInState(state: ApplicationState, before: Date, limit: number): Promise<ApplicationRecord[]>;
  /** Which of these serials the registry holds (one round trip for a page of them). */
  certificatesHeld(serials: readonly string[]): Promise<Set<string>>;
  reads: RegistryReads;
  /**
   * An approval's common case, written at once and committed before it resolves (possibly in one
   * transaction with concurrent ones, never half): application `applicationId` moves from
   * SUBMITTED to ISSUING (decided by `decidedBy`), the idempotency key is claimed and the audit
   * events are recorded, all or nothing. False, with nothing written, when the
   * application is missing or not SUBMITTED, or the key is already held: the transactional way
   * then finds out why.
   */
  approveAtOnce(input: ApprovalAtOnce): Promise<boolean>;
  /**
   * A new card's issuance (no card superseded), written at once and committed before it resolves
   * (possibly in one transaction with concurrent ones, never half): the application moves from
   * ISSUING to ISSUED, then the card, its certificates with their first history rows, the idempotency key's result, the status changes' events and the audit events
   * are written, all or nothing. Undefined, with nothing written, when the application is not
   * ISSUING (a concurrent run recorded it, or it moved on).
   */
  recordIssuanceAtOnce(input: IssuanceAtOnce): Promise<ApplicationRecord | undefined>;
}

/** What {@link Registry.approveAtOnce} writes. */
export interface ApprovalAtOnce {
  applicationId: string;
  decidedBy?: string;
  at: Date;
  idempotency: { scope: string; key: string; operation: string; fingerprint: Buffer };
  audits: readonly AuditRecord[];
}

/** What {@link Registry.recordIssuanceAtOnce} writes. */
export interface IssuanceAtOnce {
  applicationId: string;
  card: CardRecord;
  certificates: readonly CertificateRecord[];
  idempotency?: { scope: string; key: string; result: unknown };
  statusChanges: readonly StatusChange[];
  audits: readonly AuditRecord[];
}

export interface Page<T> {
  items: T[];
  /** Give it back to get the next page; absent on the last page. */
  nextPageToken?: string;
}

export interface PageRequest {
  pageToken?: string;
  limit: number;
}

export interface ApplicationFilter {
  office?: string;
  state?: ApplicationState;
  subscriberId?: string;
}

export interface CertificateFilter {
  office?: string;
  cardNumber?: string;
  status?: CertificateStatus;
}

export interface ApprovalFilter {
  office?: string;
  state?: ApprovalState;
}

/** Reads that need no transaction. */
export interface RegistryReads {
  /** An application with its subscriber (one round trip, no lock). */
  getApplicationWithSubscriber(id: string): Promise<{ application: ApplicationRecord; subscriber: SubscriberRecord } | undefined>;
  getApplication(id: string): Promise<ApplicationRecord | undefined>;
  listApplications(filter: ApplicationFilter, page: PageRequest): Promise<Page<ApplicationRecord>>;
  getCard(cardNumber: string): Promise<CardRecord | undefined>;
  cardsOfSubscriber(subscriberId: string): Promise<CardRecord[]>;
  getCertificate(serialHex: string): Promise<CertificateRecord | undefined>;
  certificatesOfCard(cardNumber: string): Promise<CertificateRecord[]>;
  listCertificates(filter: CertificateFilter, page: PageRequest): Promise<Page<CertificateRecord>>;
  /** Every certificate's status in serial order (ocsp/crl resync). */
  listStatuses(page: PageRequest, issuerKeyId?: string): Promise<Page<CertificateRecord>>;
  getSubscriber(id: string): Promise<SubscriberRecord | undefined>;
  getApproval(id: string): Promise<ApprovalRecord | undefined>;
  listApprovals(filter: ApprovalFilter, page: PageRequest): Promise<Page<ApprovalRecord>>;
  getCursor(name: string): Promise<string | undefined>;
}

export type IdempotencyClaim =
  /** First use of the key: go ahead. */
  | { kind: 'new' }
  /** Used before with the same request, which did not finish (a crash, or it is still running): resume. */
  | { kind: 'in-progress' }
  /** Used before with the same request, which finished: this is its result. */
  | { kind: 'done'; result: unknown }
  /** Used before with a different request. */
  | { kind: 'conflict'; operation: string };

export interface HouseholdEventRecord {
  eventId: string;
  sender: string;
  kind: HouseholdEventKind;
  fingerprint: Buffer;
  personRef: string;
  occurredAt: Date;
  result: unknown;
}

export interface RegistryTx {
  claimIdempotency(scope: string, key: string, operation: string, fingerprint: Buffer): Promise<IdempotencyClaim>;
  completeIdempotency(scope: string, key: string, result: unknown): Promise<void>;

  insertSubscriber(subscriber: SubscriberRecord): Promise<void>;
  /** By any of the national ID's lookup hashes (one per lookup key, so rotation does not hide rows). */
  findSubscriberByLookup(hashes: Array<{ keyId: string; hash: Buffer }>, options?: { forUpdate?: boolean }): Promise<SubscriberRecord | undefined>;
  getSubscriber(id: string, options?: { forUpdate?: boolean }): Promise<SubscriberRecord | undefined>;
  updateSubscriberCodeAttempts(id: string, state: CodeAttemptState): Promise<void>;
  /** Replaces the code hash if it is still `previous` (a concurrent change wins); true when replaced. */
  replaceSubscriberCodeHash(id: string, previous: string, next: string): Promise<boolean>;
  updateSubscriberStatus(id: string, status: SubscriberStatus): Promise<void>;

  insertApplication(application: ApplicationRecord): Promise<void>;
  getApplication(id: string, options?: { forUpdate?: boolean }): Promise<ApplicationRecord | undefined>;
  updateApplication(id: string, changes: { state: ApplicationState; reason?: string; decidedBy?: string }): Promise<void>;
  /**
   * Moves an application from state `from` to `changes.state` if it is in `from` (waiting for a
   * concurrent writer of the row first) and returns it as changed, with its subscriber; undefined
   * when it is missing or in another state (nothing changed). One round trip for the common path of
   * an approval: a read, a check and an update under the row lock, and the subscriber's record that
   * the issuance needs next.
   */
  transitionApplicationWithSubscriber(
    id: string,
    from: ApplicationState,
    changes: { state: ApplicationState; decidedBy?: string },
  ): Promise<{ application: ApplicationRecord; subscriber: SubscriberRecord } | undefined>;
  /**
   * Records an issuance: moves the application from ISSUING to ISSUED and only then inserts the
   * new card (none for an extension), the certificates with their first history rows, and
   * completes the idempotency key with `result` (two round trips). Undefined when the application
   * is not ISSUING (a concurrent run recorded it, or it moved on): nothing changed.
   * `lockCard`: an existing card the recording goes on to change (an extension's), locked for update
   * after the move and before the inserts (one more round trip), so that the key-share lock the
   * certificates' foreign key takes on it is never upgraded: two transactions upgrading key-share
   * locks on one row deadlock.
   */
  recordIssuance(input: {
    applicationId: string;
    card?: CardRecord;
    lockCard?: string;
    certificates: readonly CertificateRecord[];
    idempotency?: { scope: string; key: string; result: unknown };
  }): Promise<ApplicationRecord | undefined>;
  /** SUBMITTED, PENDING_APPROVAL or ISSUING applications of a subscriber. */
  openApplications(subscriberId: string): Promise<ApplicationRecord[]>;
  /** Whether a card or an open application already uses one of these public keys (SHA-256 of the SPKI). */
  keysInUse(spkis: Buffer[]): Promise<boolean>;
  cardNumberTaken(cardNumber: string): Promise<boolean>;
  subjectSerialTaken(subjectSerial: string): Promise<boolean>;

  getCard(cardNumber: string, options?: { forUpdate?: boolean }): Promise<CardRecord | undefined>;
  cardsOfSubscriber(subscriberId: string, options?: { forUpdate?: boolean }): Promise<CardRecord[]>;
  updateCard(cardNumber: string, changes: { status?: CardStatus; activatedAt?: Date; extended?: boolean }): Promise<void>;

  insertCertificate(certificate: CertificateRecord): Promise<void>;
  /** Several certificates (a card's pair) at once, each with its first history row. */
  insertCertificates(certificates: readonly CertificateRecord[]): Promise<void>;
  getCertificate(serialHex: string): Promise<CertificateRecord | undefined>;
  certificatesOfCard(cardNumber: string, options?: { forUpdate?: boolean }): Promise<CertificateRecord[]>;
  certificatesOfApplication(applicationId: string): Promise<CertificateRecord[]>;
  updateCertificateStatus(serialHex: string, change: { status: CertificateStatus; reason?: StatusReason; revocationTime?: Date; invalidityDate?: Date; at: Date; by: string }): Promise<void>;

  /**
   * Adds the status event (topic pki.certificate-status.v1) to the outbox of this transaction: it
   * commits with it or not at all. (The adapter may append a transaction's events together, at
   * its end, in call order per topic.)
   */
  recordStatusChange(change: StatusChange): Promise<void>;
  /** Adds the audit event (topic pki.audit.v1) to the outbox of this transaction, as above. */
  audit(record: AuditRecord): Promise<void>;

  insertApproval(approval: ApprovalRecord): Promise<void>;
  getApproval(id: string, options?: { forUpdate?: boolean }): Promise<ApprovalRecord | undefined>;
  updateApproval(id: string, changes: { state: ApprovalState; decidedBy?: string; decidedAt?: Date; comment?: string }): Promise<void>;
  pendingApprovalsExpiredBy(now: Date, limit: number): Promise<ApprovalRecord[]>;

  getHouseholdEvent(eventId: string, options?: { forUpdate?: boolean }): Promise<HouseholdEventRecord | undefined>;
  insertHouseholdEvent(event: HouseholdEventRecord): Promise<void>;

  setCursor(name: string, value: string): Promise<void>;
}
