import { createHash } from 'node:crypto';
import { create, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type pg from 'pg';
import { PkiError, type Clock } from '@pki/kit';
import { BatchCommit, toDatabaseError, withTransaction, type BatchQueryable, type Tx } from '@pki/db';
import { appendEvents, appendEventsFrom, eventColumns, eventRows, type NewEvent } from '@pki/outbox';
import { auditOutboxEvent, AuditActorType, AuditOutcome, type AuditActor as WireActor } from '@pki/audit-events';
import { eventsV1, Topics } from '@pki/proto';
import type { PersonalDataVault } from '../../ports/personal-data-vault';
import type {
  ApplicationFilter,
  ApprovalAtOnce,
  ApprovalFilter,
  CertificateFilter,
  HouseholdEventRecord,
  IdempotencyClaim,
  IssuanceAtOnce,
  Page,
  PageRequest,
  Registry,
  RegistryReads,
  RegistryTx,
} from '../../ports/registry';
import type {
  ApplicationRecord,
  ApplicationState,
  ApprovalRecord,
  ApprovalState,
  AuditActor,
  AuditRecord,
  CardRecord,
  CertificateRecord,
  PrincipalRecord,
  StatusChange,
  SubscriberRecord,
  SubscriberStatus,
} from '../../domain/model';
import type { CardStatus, CertificateStatus, StatusReason } from '../../domain/lifecycle';
import type { CodeAttemptState } from '../../domain/subscriber-code';

export interface PostgresRegistryOptions {
  pool: pg.Pool;
  vault: PersonalDataVault;
  clock: Clock;
  /** Outbox producer of status events (topic pki.certificate-status.v1). */
  statusProducer: string;
  /** Outbox producer of audit events (topic pki.audit.v1): its own, so its sequence has no gaps. */
  auditProducer: string;
}

const STATUS_WIRE: Record<CertificateStatus, eventsV1.CertificateStatus> = {
  VALID: eventsV1.CertificateStatus.VALID,
  SUSPENDED: eventsV1.CertificateStatus.SUSPENDED,
  REVOKED: eventsV1.CertificateStatus.REVOKED,
};

/** RFC 5280 §5.3.1 CRLReason codes. */
const REASON_WIRE: Record<StatusReason, eventsV1.RevocationReason> = {
  unspecified: eventsV1.RevocationReason.UNSPECIFIED,
  keyCompromise: eventsV1.RevocationReason.KEY_COMPROMISE,
  cACompromise: eventsV1.RevocationReason.CA_COMPROMISE,
  affiliationChanged: eventsV1.RevocationReason.AFFILIATION_CHANGED,
  superseded: eventsV1.RevocationReason.SUPERSEDED,
  cessationOfOperation: eventsV1.RevocationReason.CESSATION_OF_OPERATION,
  certificateHold: eventsV1.RevocationReason.CERTIFICATE_HOLD,
  removeFromCRL: eventsV1.RevocationReason.REMOVE_FROM_CRL,
  privilegeWithdrawn: eventsV1.RevocationReason.PRIVILEGE_WITHDRAWN,
};

export function encodeStatusChange(change: StatusChange): Uint8Array {
  const ts = (d: Date | undefined) => (d ? timestampFromDate(d) : undefined);
  const message = create(eventsV1.CertificateStatusChangedSchema, {
    serialHex: change.serialHex,
    issuerKeyId: change.issuerKeyId,
    status: STATUS_WIRE[change.status],
    changedAt: ts(change.changedAt),
    notBefore: ts(change.notBefore),
    notAfter: ts(change.notAfter),
    revocationTime: ts(change.revocationTime),
    reason: change.reason ? REASON_WIRE[change.reason] : eventsV1.RevocationReason.UNSPECIFIED,
    invalidityDate: ts(change.invalidityDate),
    profile: change.profile,
    previousStatus: change.previousStatus ? STATUS_WIRE[change.previousStatus] : eventsV1.CertificateStatus.UNSPECIFIED,
  });
  return toBinary(eventsV1.CertificateStatusChangedSchema, message);
}

function wireActor(actor: AuditActor): WireActor {
  switch (actor.type) {
    case 'officer':
      return { type: AuditActorType.OFFICER, id: actor.id, office: actor.office, role: actor.role };
    case 'citizen':
      return { type: AuditActorType.CITIZEN, id: actor.personRef };
    case 'household-system':
      return { type: AuditActorType.HOUSEHOLD_SYSTEM, id: actor.id };
    case 'agency-system':
      return { type: AuditActorType.AGENCY_SYSTEM, id: actor.id };
    case 'service':
      return { type: AuditActorType.SERVICE, id: actor.id };
  }
}

const OUTCOME = { INTENT: AuditOutcome.INTENT, SUCCESS: AuditOutcome.SUCCESS, FAILURE: AuditOutcome.FAILURE } as const;

function statusEvent(options: PostgresRegistryOptions, change: StatusChange): NewEvent {
  return { producer: options.statusProducer, topic: Topics.certificateStatus, key: change.serialHex, payload: encodeStatusChange(change) };
}

function auditEvent(options: PostgresRegistryOptions, record: AuditRecord): NewEvent {
  return auditOutboxEvent({ producer: options.auditProducer, clock: options.clock }, {
    action: record.action,
    outcome: OUTCOME[record.outcome],
    actor: wireActor(record.actor),
    objects: record.objects,
    ...(record.reason ? { reason: record.reason } : {}),
    ...(record.attributes ? { attributes: record.attributes } : {}),
  }).event;
}

/**
 * The WITH part `outbox_source` of a one-statement write: its events as parameters (numbered on
 * from `values`), kept only if `when` holds, then the outbox append (appendEventsFrom). The
 * statement must read `outbox_notified`.
 */
function eventsWhen(events: readonly NewEvent[], values: unknown[], when: string): string {
  const first = values.length + 1;
  values.push(...eventColumns(events));
  return `outbox_source AS (
       ${eventRows(first)}
        WHERE ${when}
     ), ${appendEventsFrom('outbox_source')}`;
}

/**
 * The WITH part that completes an idempotency key with `result`, numbering its parameters on from
 * `values`; with `when`, only if that condition holds.
 */
function idempotencyCompletion(idempotency: { scope: string; key: string; result: unknown }, values: unknown[], when?: string): string {
  const { scope, key, result } = idempotency;
  return `completed AS (UPDATE idempotency_keys SET result = $${values.push(JSON.stringify(result))}::jsonb, completed_at = now()
           WHERE scope = $${values.push(scope)}::text AND key = $${values.push(key)}::text${when ? ` AND ${when}` : ''})`;
}

/** PostgreSQL's unique_violation on the idempotency key: in a one-statement write, another request holds it. */
function isIdempotencyKeyTaken(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const { code, constraint } = err as { code?: unknown; constraint?: unknown };
  return code === '23505' && constraint === 'idempotency_keys_pkey';
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest();

/**
 * A statement of the issuance path as a named (server-side prepared) one: PostgreSQL parses and
 * plans it once per connection instead of on every call. For statements whose generic plan is the
 * right one whatever the tables hold: inserts, and look-ups and updates by primary key where no
 * other index can serve the parameters (decisions 0037 and 0040: a generic plan made while a table
 * is tiny may be a sequential scan, but PostgreSQL replans when ANALYZE updates the table's
 * statistics, so it does not outlive the table's first growth), with named result columns: a
 * prepared `SELECT *` would fail once a migration adds a column under a running replica ("cached
 * plan must not change result type").
 */
function prepared(text: string, values: unknown[]): pg.QueryConfig {
  let name = statementNames.get(text);
  if (!name) statementNames.set(text, (name = `ra_${createHash('sha256').update(text).digest('hex').slice(0, 20)}`));
  return { name, text, values };
}
const statementNames = new Map<string, string>();


/**
 * The registry on PostgreSQL (ra's schema). Certificates are sealed at rest here, transparently:
 * their DER carries the subject's name. Pages are keyset-paginated with opaque tokens.
 */
export class PostgresRegistry implements Registry {
  readonly #options: PostgresRegistryOptions;
  readonly reads: RegistryReads;

  readonly #approvals: BatchCommit<ApprovalAtOnce, boolean>;
  readonly #recordings: BatchCommit<IssuanceAtOnce, ApplicationRecord | undefined>;

  constructor(options: PostgresRegistryOptions) {
    this.#options = options;
    this.reads = new Reads(options.pool, options);
    this.#approvals = new BatchCommit(options.pool, (tx, items) => this.#approveTogether(tx, items), { alone: (input) => this.#approveAlone(input) });
    this.#recordings = new BatchCommit(options.pool, (tx, items) => this.#recordTogether(tx, items), { alone: (input) => this.#recordAlone(input) });
  }

  async #query(text: string, params: unknown[]): Promise<pg.QueryResult> {
    try {
      return await this.#options.pool.query(text, params);
    } catch (err) {
      throw toDatabaseError(err, 'registry read');
    }
  }

  transaction<T>(work: (tx: RegistryTx) => Promise<T>): Promise<T> {
    return registryTransaction(this.#options.pool, (tx) => new Transaction(tx, this.#options), work);
  }

  /**
   * An approval's common case written at once (decision 0040): a SUBMITTED application becomes
   * ISSUING, the idempotency key is claimed and the audit events are appended, or nothing is
   * written. False when the application is not SUBMITTED (any more) or the key is taken: the
   * caller then goes the transactional way, which says why. Concurrent approvals commit together
   * (decision 0041).
   */
  approveAtOnce(input: ApprovalAtOnce): Promise<boolean> {
    if (!isUuid(input.applicationId)) return Promise.resolve(false);
    return this.#approvals.submit(input);
  }

  /**
   * A new card's issuance recorded at once (decision 0040): the application moves from ISSUING to
   * ISSUED and only then are the card, the certificates with their first history rows, the
   * idempotency key's result and the events written; all or nothing. Undefined when the
   * application is not ISSUING (a concurrent run recorded it, or it moved on): nothing was
   * written, and the transactional recording says what happened. Concurrent recordings commit
   * together (decision 0041).
   */
  recordIssuanceAtOnce(input: IssuanceAtOnce): Promise<ApplicationRecord | undefined> {
    if (!isUuid(input.applicationId)) return Promise.resolve(undefined);
    return this.#recordings.submit(input);
  }

  /** An approval alone: one statement, its own transaction, the events included. */
  async #approveAlone(input: ApprovalAtOnce): Promise<boolean> {
    try {
      const { rows } = await this.#options.pool.query(this.#approval(input, true));
      return Number(rows[0].moved) === 1;
    } catch (err) {
      if (isIdempotencyKeyTaken(err)) return false;
      throw toDatabaseError(err, 'approve application');
    }
  }

  /**
   * Items together in one transaction: each one's statement in turn, then the events of those
   * written, all in one append. The events come last so that the audit producer's head row, which
   * every ra write locks until its commit, is taken after the applications' rows, as in every ra
   * transaction (registryTransaction): a batch cannot deadlock with a transaction on one of its
   * applications. A statement that fails (a key already held) fails the batch; BatchCommit then
   * writes each item alone.
   */
  async #together<I, R>(tx: BatchQueryable, items: readonly I[], write: (input: I) => Promise<{ result: R; events: NewEvent[] }>): Promise<R[]> {
    const results: R[] = [];
    const events: NewEvent[] = [];
    for (const input of items) {
      const written = await write(input);
      results.push(written.result);
      events.push(...written.events);
    }
    await appendEvents(tx, events);
    return results;
  }

  /** Approvals together (#together); an approval that moved nothing appends no events. */
  #approveTogether(tx: BatchQueryable, items: readonly ApprovalAtOnce[]): Promise<boolean[]> {
    return this.#together(tx, items, async (input) => {
      const moved = Number((await tx.query(this.#approval(input, false))).rows[0].moved) === 1;
      return { result: moved, events: moved ? input.audits.map((a) => auditEvent(this.#options, a)) : [] };
    });
  }

  #approval(input: ApprovalAtOnce, withEvents: boolean): pg.QueryConfig {
    const { scope, key, operation, fingerprint } = input.idempotency;
    // The states are parameters, not literals: a generic plan cannot then use the partial index on
    // state (a bulk re-issuance leaves millions of applications SUBMITTED) and takes the primary key.
    const values: unknown[] = [input.applicationId, 'SUBMITTED', 'ISSUING', input.decidedBy ?? null, input.at];
    // The key's INSERT has no ON CONFLICT: a key already held makes the statement fail (and write
    // nothing) rather than move an application under another request's key.
    const parts = [
      `moved AS (
         UPDATE applications SET state = $3::text, decided_by = COALESCE($4::text, decided_by), updated_at = $5
          WHERE id = $1 AND state = $2::text
         RETURNING id)`,
      `claim AS (
         INSERT INTO idempotency_keys (scope, key, operation, fingerprint)
         SELECT $${values.push(scope)}::text, $${values.push(key)}::text, $${values.push(operation)}::text, $${values.push(fingerprint)}::bytea FROM moved)`,
    ];
    if (!withEvents) return prepared(`WITH ${parts.join(',\n')}\nSELECT (SELECT count(*) FROM moved) AS moved`, values);
    parts.push(eventsWhen(input.audits.map((a) => auditEvent(this.#options, a)), values, 'EXISTS (SELECT 1 FROM moved)'));
    return prepared(`WITH ${parts.join(',\n')}\nSELECT (SELECT count(*) FROM moved) AS moved, (SELECT count(*) FROM outbox_notified) AS notified`, values);
  }

  /** A recording alone: one statement, its own transaction, the events included. */
  async #recordAlone(input: IssuanceAtOnce): Promise<ApplicationRecord | undefined> {
    try {
      const { rows } = await this.#options.pool.query(this.#recording(input, true));
      return rows[0] ? application(rows[0]) : undefined;
    } catch (err) {
      throw toDatabaseError(err, 'record issuance');
    }
  }

  /** Recordings together (#together); a recording that moved nothing appends no events. */
  #recordTogether(tx: BatchQueryable, items: readonly IssuanceAtOnce[]): Promise<Array<ApplicationRecord | undefined>> {
    return this.#together(tx, items, async (input) => {
      const row = (await tx.query(this.#recording(input, false))).rows[0];
      return row ? { result: application(row), events: this.#recordingEvents(input) } : { result: undefined, events: [] };
    });
  }

  #recordingEvents(input: IssuanceAtOnce): NewEvent[] {
    return [...input.statusChanges.map((c) => statusEvent(this.#options, c)), ...input.audits.map((a) => auditEvent(this.#options, a))];
  }

  #recording(input: IssuanceAtOnce, withEvents: boolean): pg.QueryConfig {
    const values: unknown[] = [input.applicationId, 'ISSUING', 'ISSUED', this.#options.clock.now()];
    const when = 'EXISTS (SELECT 1 FROM moved)';
    const parts = [
      // States as parameters, as in #approval.
      `moved AS (
         UPDATE applications SET state = $3::text, updated_at = $4 WHERE id = $1 AND state = $2::text
         RETURNING ${APPLICATION_COLUMNS.join(', ')})`,
      cardInsert(input.card, values, 'moved'),
      ...certificateInserts(this.#options.vault, input.certificates, values, when),
    ];
    if (input.idempotency) parts.push(idempotencyCompletion(input.idempotency, values, when));
    if (!withEvents) return prepared(`WITH ${parts.join(',\n')}\nSELECT m.* FROM moved m`, values);
    parts.push(eventsWhen(this.#recordingEvents(input), values, when));
    return prepared(`WITH ${parts.join(',\n')}\nSELECT m.*, (SELECT count(*) FROM outbox_notified) AS outbox_notified FROM moved m`, values);
  }

  async principalByCertificate(certificateSha256: string): Promise<PrincipalRecord | undefined> {
    const { rows } = await this.#query(
      `SELECT p.* FROM principal_certificates c JOIN principals p ON p.id = c.principal_id WHERE c.certificate_sha256 = $1 AND c.not_after > now()`,
      [certificateSha256],
    );
    const r = rows[0];
    return r ? { id: r.id, kind: r.kind, role: r.role ?? undefined, office: r.office ?? undefined, status: r.status } : undefined;
  }

  async applicationsInState(state: ApplicationState, before: Date, limit: number): Promise<ApplicationRecord[]> {
    const { rows } = await this.#query(`SELECT * FROM applications WHERE state = $1 AND updated_at < $2 ORDER BY updated_at LIMIT $3`, [state, before, limit]);
    return rows.map(application);
  }

  async certificatesHeld(serials: readonly string[]): Promise<Set<string>> {
    if (serials.length === 0) return new Set();
    const { rows } = await this.#query(`SELECT serial_hex FROM certificates WHERE serial_hex = ANY($1::text[])`, [serials]);
    return new Set(rows.map((r) => r.serial_hex as string));
  }

  /**
   * Runs `work` unless another replica runs the same job now (a session advisory lock on a
   * dedicated connection); returns undefined when it was skipped.
   */
  async exclusively<T>(job: string, work: () => Promise<T>): Promise<T | undefined> {
    const client = await this.#options.pool.connect();
    try {
      const { rows } = await client.query(`SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS locked`, [`ra.job:${job}`]);
      if (!rows[0].locked) return undefined;
      try {
        return await work();
      } finally {
        await client.query(`SELECT pg_advisory_unlock(hashtextextended($1, 0))`, [`ra.job:${job}`]);
      }
    } finally {
      client.release();
    }
  }

  /**
   * Key rotation and legacy rows: re-seals rows under the active keys, a batch at a time. Rows
   * sealed under an old key stay readable meanwhile (each carries its key id).
   */
  async resealBatch(limit: number): Promise<number> {
    const { pool, vault } = this.#options;
    let done = 0;
    const active = vault.lookupHash('x').keyId;
    const subscribers = await pool.query(`SELECT * FROM subscribers WHERE pd_key_id <> $1 OR lookup_key_id <> $2 LIMIT $3`, [vault.activeKeyId, active, limit]);
    for (const row of subscribers.rows) {
      const open = (field: 'nationalId' | 'name' | 'birthDate' | 'email', c: Buffer) => vault.open(field, row.id, { keyId: row.pd_key_id, ciphertext: c });
      const nationalId = open('nationalId', row.national_id_sealed);
      const seal = (field: 'nationalId' | 'name' | 'birthDate' | 'email', value: string) => vault.seal(field, row.id, value).ciphertext;
      const lookup = vault.lookupHash(nationalId);
      await pool.query(
        `UPDATE subscribers SET pd_key_id = $2, national_id_sealed = $3, name_sealed = $4, birth_date_sealed = $5, email_sealed = $6, lookup_key_id = $7, national_id_lookup = $8
          WHERE id = $1 AND pd_key_id = $9 AND lookup_key_id = $10`,
        [row.id, vault.activeKeyId, seal('nationalId', nationalId), seal('name', open('name', row.name_sealed)), seal('birthDate', open('birthDate', row.birth_date_sealed)),
          row.email_sealed ? seal('email', open('email', row.email_sealed)) : null, lookup.keyId, lookup.hash, row.pd_key_id, row.lookup_key_id],
      );
      done++;
    }
    const certificates = await pool.query(`SELECT serial_hex, certificate_der, certificate_sealed, pd_key_id FROM certificates WHERE certificate_der IS NOT NULL OR pd_key_id <> $1 LIMIT $2`, [vault.activeKeyId, limit]);
    for (const row of certificates.rows) {
      const der: Buffer = row.certificate_der ?? vault.openBytes('certificate', row.serial_hex, { keyId: row.pd_key_id, ciphertext: row.certificate_sealed });
      const sealed = vault.seal('certificate', row.serial_hex, der);
      await pool.query(`UPDATE certificates SET certificate_der = NULL, certificate_sealed = $2, pd_key_id = $3 WHERE serial_hex = $1`, [row.serial_hex, sealed.ciphertext, sealed.keyId]);
      done++;
    }
    return done;
  }
}

class Reads implements RegistryReads {
  constructor(
    protected readonly db: pg.Pool | Tx,
    protected readonly options: PostgresRegistryOptions,
  ) {}

  /** Outside a transaction, a database that cannot be reached is UNAVAILABLE (503), not an internal error. */
  protected async query(text: string | pg.QueryConfig, params: unknown[] = []): Promise<pg.QueryResult> {
    try {
      return await (typeof text === 'string' ? this.db.query(text, params) : this.db.query(text));
    } catch (err) {
      throw toDatabaseError(err, 'registry read');
    }
  }

  async getApplication(id: string, options: { forUpdate?: boolean } = {}): Promise<ApplicationRecord | undefined> {
    if (!isUuid(id)) return undefined;
    const { rows } = await this.query(`SELECT * FROM applications WHERE id = $1${options.forUpdate ? ' FOR UPDATE' : ''}`, [id]);
    return rows[0] ? application(rows[0]) : undefined;
  }

  async getApplicationWithSubscriber(id: string): Promise<{ application: ApplicationRecord; subscriber: SubscriberRecord } | undefined> {
    if (!isUuid(id)) return undefined;
    // Named (decision 0040): two primary-key look-ups. Columns named, never *, so that a column
    // added by a migration under a running replica does not change the prepared result.
    const { rows } = await this.query(
      prepared(
        `SELECT ${APPLICATION_COLUMNS.map((c) => `a.${c}`).join(', ')}, ${SUBSCRIBER_COLUMNS.map((c) => `s.${c} AS "subscriber.${c}"`).join(', ')}
           FROM applications a JOIN subscribers s ON s.id = a.subscriber_id WHERE a.id = $1`,
        [id],
      ),
    );
    const row = rows[0];
    return row ? { application: application(row), subscriber: subscriberOfRow(row) } : undefined;
  }

  async listApplications(filter: ApplicationFilter, page: PageRequest): Promise<Page<ApplicationRecord>> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.office) where.push(`office = $${params.push(filter.office)}`);
    if (filter.state) where.push(`state = $${params.push(filter.state)}`);
    if (filter.subscriberId) where.push(`subscriber_id = $${params.push(isUuid(filter.subscriberId) ? filter.subscriberId : '00000000-0000-0000-0000-000000000000')}`);
    return keysetPage((text, params) => this.query(text, params), 'applications', 'created_at', 'id::text', where, params, page, application);
  }

  async getCard(cardNumber: string, options: { forUpdate?: boolean } = {}): Promise<CardRecord | undefined> {
    const { rows } = await this.query(`SELECT * FROM cards WHERE card_number = $1${options.forUpdate ? ' FOR UPDATE' : ''}`, [cardNumber]);
    return rows[0] ? card(rows[0]) : undefined;
  }

  async cardsOfSubscriber(subscriberId: string, options: { forUpdate?: boolean } = {}): Promise<CardRecord[]> {
    const { rows } = await this.query(`SELECT * FROM cards WHERE subscriber_id = $1 ORDER BY created_at${options.forUpdate ? ' FOR UPDATE' : ''}`, [subscriberId]);
    return rows.map(card);
  }

  async getCertificate(serialHex: string): Promise<CertificateRecord | undefined> {
    const { rows } = await this.query(`SELECT * FROM certificates WHERE serial_hex = $1`, [serialHex]);
    return rows[0] ? this.#certificate(rows[0]) : undefined;
  }

  async certificatesOfCard(cardNumber: string, options: { forUpdate?: boolean } = {}): Promise<CertificateRecord[]> {
    const { rows } = await this.query(`SELECT * FROM certificates WHERE card_number = $1 ORDER BY created_at, key_slot${options.forUpdate ? ' FOR UPDATE' : ''}`, [cardNumber]);
    return rows.map((r) => this.#certificate(r));
  }

  async listCertificates(filter: CertificateFilter, page: PageRequest): Promise<Page<CertificateRecord>> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.cardNumber) where.push(`card_number = $${params.push(filter.cardNumber)}`);
    if (filter.status) where.push(`status = $${params.push(filter.status)}`);
    if (filter.office) where.push(`card_number IN (SELECT card_number FROM cards WHERE office = $${params.push(filter.office)})`);
    return keysetPage((text, params) => this.query(text, params), 'certificates', 'created_at', 'serial_hex', where, params, page, (r) => this.#certificate(r));
  }

  async listStatuses(page: PageRequest, issuerKeyId?: string): Promise<Page<CertificateRecord>> {
    const params: unknown[] = [];
    const where = issuerKeyId ? [`issuer_key_id = $${params.push(issuerKeyId)}`] : [];
    if (page.pageToken) where.push(`serial_hex > $${params.push(decodeToken(page.pageToken)[0])}`);
    const { rows } = await this.query(
      `SELECT serial_hex, issuer_key_id, profile, card_number, application_id, key_slot, status, reason, revocation_time, invalidity_date, not_before, not_after, created_at, updated_at
         FROM certificates ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY serial_hex LIMIT ${page.limit}`,
      params,
    );
    const items = rows.map((r) => certificateRecord(r, Buffer.alloc(0)));
    return { items, ...(rows.length === page.limit ? { nextPageToken: encodeToken([rows[rows.length - 1].serial_hex]) } : {}) };
  }

  async getSubscriber(id: string, options: { forUpdate?: boolean } = {}): Promise<SubscriberRecord | undefined> {
    if (!isUuid(id)) return undefined;
    const { rows } = await this.query(`SELECT * FROM subscribers WHERE id = $1${options.forUpdate ? ' FOR UPDATE' : ''}`, [id]);
    return rows[0] ? subscriber(rows[0]) : undefined;
  }

  async getApproval(id: string, options: { forUpdate?: boolean } = {}): Promise<ApprovalRecord | undefined> {
    if (!isUuid(id)) return undefined;
    const { rows } = await this.query(`SELECT * FROM approval_requests WHERE id = $1${options.forUpdate ? ' FOR UPDATE' : ''}`, [id]);
    return rows[0] ? approval(rows[0]) : undefined;
  }

  async listApprovals(filter: ApprovalFilter, page: PageRequest): Promise<Page<ApprovalRecord>> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.office) where.push(`office = $${params.push(filter.office)}`);
    if (filter.state) where.push(`state = $${params.push(filter.state)}`);
    return keysetPage((text, params) => this.query(text, params), 'approval_requests', 'created_at', 'id::text', where, params, page, approval);
  }

  async getCursor(name: string): Promise<string | undefined> {
    const { rows } = await this.query(`SELECT value FROM cursors WHERE name = $1`, [name]);
    return rows[0]?.value;
  }

  #certificate(row: Record<string, unknown>): CertificateRecord {
    const der = row.certificate_der
      ? (row.certificate_der as Buffer)
      : this.options.vault.openBytes('certificate', row.serial_hex as string, { keyId: row.pd_key_id as string, ciphertext: row.certificate_sealed as Buffer });
    return certificateRecord(row, der);
  }
}

/**
 * Runs `work` in one transaction of a registry transaction type, then appends the outbox events
 * it recorded (status and audit) in one statement before COMMIT: they commit with the work or not
 * at all, and the producers' head rows are locked only for the end of the transaction.
 */
export function registryTransaction<T, X extends Transaction>(pool: pg.Pool, open: (tx: Tx) => X, work: (tx: X) => Promise<T>): Promise<T> {
  return withTransaction(pool, async (tx) => {
    const transaction = open(tx);
    const result = await work(transaction);
    await transaction.appendRecordedEvents();
    return result;
  });
}

export class Transaction extends Reads implements RegistryTx {
  /** Status and audit events recorded so far, appended at the end (see registryTransaction). */
  readonly #events: NewEvent[] = [];

  constructor(
    protected readonly tx: Tx,
    options: PostgresRegistryOptions,
  ) {
    super(tx, options);
  }

  /** Appends the events recorded in this transaction to the outbox; called once, before COMMIT. */
  async appendRecordedEvents(): Promise<void> {
    const events = this.#events.splice(0);
    await appendEvents(this.tx, events);
  }

  async claimIdempotency(scope: string, key: string, operation: string, fingerprint: Buffer): Promise<IdempotencyClaim> {
    const inserted = await this.tx.query(prepared(`INSERT INTO idempotency_keys (scope, key, operation, fingerprint) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, [scope, key, operation, fingerprint]));
    if (inserted.rowCount === 1) return { kind: 'new' };
    // The other holder of the key has committed (the INSERT waited for it): read what it left.
    const { rows } = await this.tx.query(`SELECT operation, fingerprint, result, completed_at FROM idempotency_keys WHERE scope = $1 AND key = $2 FOR UPDATE`, [scope, key]);
    const row = rows[0];
    if (!row) throw new PkiError('UNAVAILABLE', 'idempotency: the key was released while being claimed; retry');
    if (row.operation !== operation || !(row.fingerprint as Buffer).equals(fingerprint)) return { kind: 'conflict', operation: row.operation };
    return row.completed_at ? { kind: 'done', result: row.result } : { kind: 'in-progress' };
  }

  async completeIdempotency(scope: string, key: string, result: unknown): Promise<void> {
    await this.tx.query(prepared(`UPDATE idempotency_keys SET result = $3, completed_at = now() WHERE scope = $1 AND key = $2`, [scope, key, JSON.stringify(result)]));
  }

  async insertSubscriber(s: SubscriberRecord): Promise<void> {
    await this.tx.query(
      `INSERT INTO subscribers (id, person_ref, lookup_key_id, national_id_lookup, pd_key_id, national_id_sealed, name_sealed, birth_date_sealed, email_sealed,
         id_kind, gender, publication_consent, subscriber_code_hash, status, office, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
      [s.id, s.personRef, s.lookup.keyId, s.lookup.hash, s.sealed.keyId, s.sealed.nationalId, s.sealed.name, s.sealed.birthDate, s.sealed.email ?? null,
        s.idKind, s.gender, s.publicationConsent, s.subscriberCodeHash, s.status, s.office, s.createdAt],
    );
  }

  async findSubscriberByLookup(hashes: Array<{ keyId: string; hash: Buffer }>, options: { forUpdate?: boolean } = {}): Promise<SubscriberRecord | undefined> {
    const { rows } = await this.tx.query(
      `SELECT * FROM subscribers WHERE (lookup_key_id, national_id_lookup) IN (SELECT * FROM unnest($1::text[], $2::bytea[]))${options.forUpdate ? ' FOR UPDATE' : ''}`,
      [hashes.map((h) => h.keyId), hashes.map((h) => h.hash)],
    );
    return rows[0] ? subscriber(rows[0]) : undefined;
  }


  async updateSubscriberCodeAttempts(id: string, state: CodeAttemptState): Promise<void> {
    await this.tx.query(`UPDATE subscribers SET code_failures = $2, code_lockouts = $3, code_locked_until = $4 WHERE id = $1`, [id, state.failures, state.lockouts, state.lockedUntil ?? null]);
  }

  async replaceSubscriberCodeHash(id: string, previous: string, next: string): Promise<boolean> {
    const { rowCount } = await this.tx.query(`UPDATE subscribers SET subscriber_code_hash = $3 WHERE id = $1 AND subscriber_code_hash = $2`, [id, previous, next]);
    return rowCount === 1;
  }

  async updateSubscriberStatus(id: string, status: SubscriberStatus): Promise<void> {
    await this.tx.query(`UPDATE subscribers SET status = $2 WHERE id = $1`, [id, status]);
  }

  async insertApplication(a: ApplicationRecord): Promise<void> {
    await this.tx.query(
      `INSERT INTO applications (id, kind, state, subscriber_id, card_number, replaces_card, subject_serial, office, created_by, decided_by, signing_spki, encryption_spki,
         signing_spki_sha256, encryption_spki_sha256, not_after, reason, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`,
      [a.id, a.kind, a.state, a.subscriberId, a.cardNumber, a.replacesCard ?? null, a.subjectSerial, a.office, a.createdBy, a.decidedBy ?? null, a.signingSpki, a.encryptionSpki,
        sha256(a.signingSpki), sha256(a.encryptionSpki), a.notAfter ?? null, a.reason ?? null, a.createdAt, a.updatedAt],
    );
  }


  async updateApplication(id: string, changes: { state: ApplicationState; reason?: string; decidedBy?: string }): Promise<void> {
    await this.tx.query(`UPDATE applications SET state = $2, reason = COALESCE($3, reason), decided_by = COALESCE($4, decided_by), updated_at = $5 WHERE id = $1`, [
      id, changes.state, changes.reason ?? null, changes.decidedBy ?? null, this.options.clock.now(),
    ]);
  }

  async transitionApplicationWithSubscriber(
    id: string,
    from: ApplicationState,
    changes: { state: ApplicationState; decidedBy?: string },
  ): Promise<{ application: ApplicationRecord; subscriber: SubscriberRecord } | undefined> {
    if (!isUuid(id)) return undefined;
    // Planned per call: the transactional way, for what the one-statement approval
    // (approveAtOnce) leaves, is not the hot path. The subscriber comes along for the issuance
    // that follows (its columns named apart from the application's).
    const { rows } = await this.tx.query(
      `UPDATE applications a SET state = $3, decided_by = COALESCE($4, a.decided_by), updated_at = $5
         FROM subscribers s WHERE a.id = $1 AND a.state = $2 AND s.id = a.subscriber_id
       RETURNING a.*, ${SUBSCRIBER_COLUMNS.map((c) => `s.${c} AS "subscriber.${c}"`).join(', ')}`,
      [id, from, changes.state, changes.decidedBy ?? null, this.options.clock.now()],
    );
    const row = rows[0];
    return row ? { application: application(row), subscriber: subscriberOfRow(row) } : undefined;
  }

  async recordIssuance(input: {
    applicationId: string;
    card?: CardRecord;
    lockCard?: string;
    certificates: readonly CertificateRecord[];
    idempotency?: { scope: string; key: string; result: unknown };
  }): Promise<ApplicationRecord | undefined> {
    if (!isUuid(input.applicationId)) return undefined;
    // The move first, planned per call (see transitionApplicationWithSubscriber): the row lock
    // orders this run against a concurrent one, and a loser changes nothing.
    const { rows } = await this.tx.query(`UPDATE applications SET state = $3, updated_at = $4 WHERE id = $1 AND state = $2 RETURNING *`, [
      input.applicationId, 'ISSUING', 'ISSUED', this.options.clock.now(),
    ]);
    if (!rows[0]) return undefined;
    // Planned per call (extensions are few): a generic plan made while cards is small could be a sequential scan.
    if (input.lockCard !== undefined) await this.tx.query('SELECT 1 FROM cards WHERE card_number = $1 FOR UPDATE', [input.lockCard]);
    // Then everything else in one round trip, a named statement: inserts, and an update of
    // idempotency_keys by its primary key (its only index), have one plan whatever the tables hold.
    const values: unknown[] = [];
    const parts: string[] = [];
    if (input.card) parts.push(cardInsert(input.card, values));
    parts.push(...certificateInserts(this.options.vault, input.certificates, values));
    if (input.idempotency) parts.push(idempotencyCompletion(input.idempotency, values));
    await this.tx.query(prepared(`WITH ${parts.join(',\n')}\nSELECT`, values));
    return application(rows[0]);
  }

  async openApplications(subscriberId: string): Promise<ApplicationRecord[]> {
    const { rows } = await this.tx.query(`SELECT * FROM applications WHERE subscriber_id = $1 AND state IN ('SUBMITTED', 'PENDING_APPROVAL', 'ISSUING') ORDER BY created_at`, [subscriberId]);
    return rows.map(application);
  }

  async keysInUse(spkis: Buffer[]): Promise<boolean> {
    const hashes = spkis.map(sha256);
    const { rowCount } = await this.tx.query(
      `SELECT 1 FROM cards WHERE signing_spki_sha256 = ANY($1) OR encryption_spki_sha256 = ANY($1)
       UNION ALL
       SELECT 1 FROM applications WHERE state IN ('SUBMITTED', 'PENDING_APPROVAL', 'ISSUING') AND (signing_spki_sha256 = ANY($1) OR encryption_spki_sha256 = ANY($1))
       LIMIT 1`,
      [hashes],
    );
    return (rowCount ?? 0) > 0;
  }

  async cardNumberTaken(cardNumber: string): Promise<boolean> {
    const { rowCount } = await this.tx.query(
      `SELECT 1 FROM cards WHERE card_number = $1 UNION ALL SELECT 1 FROM applications WHERE card_number = $1 AND kind <> 'EXTENSION' AND state NOT IN ('REJECTED', 'FAILED') LIMIT 1`,
      [cardNumber],
    );
    return (rowCount ?? 0) > 0;
  }

  async subjectSerialTaken(subjectSerial: string): Promise<boolean> {
    const { rowCount } = await this.tx.query(`SELECT 1 FROM cards WHERE subject_serial = $1 UNION ALL SELECT 1 FROM applications WHERE subject_serial = $1 LIMIT 1`, [subjectSerial]);
    return (rowCount ?? 0) > 0;
  }

  async updateCard(cardNumber: string, changes: { status?: CardStatus; activatedAt?: Date; extended?: boolean }): Promise<void> {
    await this.tx.query(`UPDATE cards SET status = COALESCE($2, status), activated_at = COALESCE($3, activated_at), extended = COALESCE($4, extended) WHERE card_number = $1`, [
      cardNumber, changes.status ?? null, changes.activatedAt ?? null, changes.extended ?? null,
    ]);
  }

  async insertCertificate(c: CertificateRecord): Promise<void> {
    await this.insertCertificates([c]);
  }

  async insertCertificates(certificates: readonly CertificateRecord[]): Promise<void> {
    if (certificates.length === 0) return;
    const values: unknown[] = [];
    const parts = certificateInserts(this.options.vault, certificates, values);
    // One round trip for the certificates and their first history rows.
    await this.tx.query(prepared(`WITH ${parts.join(',\n')}\nSELECT`, values));
  }

  async certificatesOfApplication(applicationId: string): Promise<CertificateRecord[]> {
    const { rows } = await this.tx.query(`SELECT serial_hex FROM certificates WHERE application_id = $1`, [applicationId]);
    return Promise.all(rows.map(async (r) => (await this.getCertificate(r.serial_hex))!));
  }

  async updateCertificateStatus(serialHex: string, change: { status: CertificateStatus; reason?: StatusReason; revocationTime?: Date; invalidityDate?: Date; at: Date; by: string }): Promise<void> {
    await this.tx.query(
      `WITH changed AS (
         UPDATE certificates SET status = $2, reason = $3, revocation_time = $4, invalidity_date = $5, updated_at = $6 WHERE serial_hex = $1 RETURNING serial_hex)
       INSERT INTO certificate_status_history (serial_hex, status, reason, revocation_time, invalidity_date, changed_at, changed_by)
       SELECT serial_hex, $2, $3, $4, $5, $6, $7 FROM changed`,
      [serialHex, change.status, change.reason ?? null, change.revocationTime ?? null, change.invalidityDate ?? null, change.at, change.by],
    );
  }

  async recordStatusChange(change: StatusChange): Promise<void> {
    this.#events.push(statusEvent(this.options, change));
  }

  async audit(record: AuditRecord): Promise<void> {
    this.#events.push(auditEvent(this.options, record));
  }

  async insertApproval(a: ApprovalRecord): Promise<void> {
    await this.tx.query(
      `INSERT INTO approval_requests (id, operation, payload, state, office, requested_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [a.id, a.operation, JSON.stringify(a.payload), a.state, a.office, a.requestedBy, a.createdAt, a.expiresAt],
    );
  }


  async updateApproval(id: string, changes: { state: ApprovalState; decidedBy?: string; decidedAt?: Date; comment?: string }): Promise<void> {
    await this.tx.query(`UPDATE approval_requests SET state = $2, decided_by = COALESCE($3, decided_by), decided_at = COALESCE($4, decided_at), comment = COALESCE($5, comment) WHERE id = $1`, [
      id, changes.state, changes.decidedBy ?? null, changes.decidedAt ?? null, changes.comment ?? null,
    ]);
  }

  async pendingApprovalsExpiredBy(now: Date, limit: number): Promise<ApprovalRecord[]> {
    const { rows } = await this.tx.query(`SELECT * FROM approval_requests WHERE state = 'PENDING' AND expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED`, [now, limit]);
    return rows.map(approval);
  }

  async getHouseholdEvent(eventId: string, options: { forUpdate?: boolean } = {}): Promise<HouseholdEventRecord | undefined> {
    const { rows } = await this.tx.query(`SELECT * FROM household_events WHERE event_id = $1${options.forUpdate ? ' FOR UPDATE' : ''}`, [eventId]);
    const r = rows[0];
    return r ? { eventId: r.event_id, sender: r.sender, kind: r.kind, fingerprint: r.fingerprint, personRef: r.person_ref, occurredAt: r.occurred_at, result: r.result } : undefined;
  }

  async insertHouseholdEvent(e: HouseholdEventRecord): Promise<void> {
    await this.tx.query(`INSERT INTO household_events (event_id, sender, kind, fingerprint, person_ref, occurred_at, result) VALUES ($1, $2, $3, $4, $5, $6, $7)`, [
      e.eventId, e.sender, e.kind, e.fingerprint, e.personRef, e.occurredAt, JSON.stringify(e.result),
    ]);
  }

  async setCursor(name: string, value: string): Promise<void> {
    await this.tx.query(`INSERT INTO cursors (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = $2, updated_at = now()`, [name, value]);
  }
}

function isUuid(value: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value);
}

function encodeToken(parts: string[]): string {
  return Buffer.from(JSON.stringify(parts)).toString('base64url');
}

function decodeToken(token: string): string[] {
  try {
    const parts: unknown = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (Array.isArray(parts) && parts.length > 0 && parts.every((p) => typeof p === 'string' && p.length < 100)) return parts as string[];
  } catch {
    // fall through
  }
  throw new PkiError('INVALID_ARGUMENT', 'list: pageToken is not one this service returned');
}

/** Keyset pagination by (time column, id), oldest first; the token carries the last row's pair. */
async function keysetPage<T>(
  query: (text: string, params: unknown[]) => Promise<pg.QueryResult>,
  table: string,
  timeColumn: string,
  idExpression: string,
  where: string[],
  params: unknown[],
  page: PageRequest,
  map: (row: Record<string, unknown>) => T,
): Promise<Page<T>> {
  const conditions = [...where];
  if (page.pageToken) {
    const [time, id] = decodeToken(page.pageToken);
    if (!id || Number.isNaN(Date.parse(time!))) throw new PkiError('INVALID_ARGUMENT', 'list: pageToken is not one this service returned');
    conditions.push(`(${timeColumn}, ${idExpression}) > ($${params.push(time)}::timestamptz, $${params.push(id)})`);
  }
  const { rows } = await query(
    `SELECT *, to_char(${timeColumn} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS page_time, ${idExpression} AS page_id
       FROM ${table} ${conditions.length ? `WHERE ${conditions.join(' AND ')}` : ''} ORDER BY ${timeColumn}, ${idExpression} LIMIT ${page.limit}`,
    params,
  );
  const last = rows[rows.length - 1];
  return { items: rows.map(map), ...(rows.length === page.limit && last ? { nextPageToken: encodeToken([last.page_time, last.page_id]) } : {}) };
}

function optionalDate(value: unknown): Date | undefined {
  return value instanceof Date ? value : undefined;
}

/** The columns {@link subscriber} reads (named where a statement returns them next to another table's). */
const SUBSCRIBER_COLUMNS = [
  'id', 'person_ref', 'lookup_key_id', 'national_id_lookup', 'pd_key_id', 'national_id_sealed', 'name_sealed', 'birth_date_sealed', 'email_sealed', 'id_kind', 'gender',
  'publication_consent', 'subscriber_code_hash', 'code_failures', 'code_lockouts', 'code_locked_until', 'status', 'office', 'created_at',
] as const;

/** The subscriber of a row that carries its columns as "subscriber.<column>" beside another table's. */
function subscriberOfRow(row: Record<string, unknown>): SubscriberRecord {
  return subscriber(Object.fromEntries(SUBSCRIBER_COLUMNS.map((c) => [c, row[`subscriber.${c}`]])));
}

const APPLICATION_COLUMNS = [
  'id', 'kind', 'state', 'subscriber_id', 'card_number', 'replaces_card', 'subject_serial', 'office', 'created_by', 'decided_by', 'signing_spki', 'encryption_spki',
  'not_after', 'reason', 'created_at', 'updated_at',
] as const;

function subscriber(r: Record<string, unknown>): SubscriberRecord {
  return {
    id: r.id as string,
    personRef: r.person_ref as string,
    lookup: { keyId: r.lookup_key_id as string, hash: r.national_id_lookup as Buffer },
    sealed: {
      keyId: r.pd_key_id as string,
      nationalId: r.national_id_sealed as Buffer,
      name: r.name_sealed as Buffer,
      birthDate: r.birth_date_sealed as Buffer,
      ...(r.email_sealed ? { email: r.email_sealed as Buffer } : {}),
    },
    idKind: r.id_kind as SubscriberRecord['idKind'],
    gender: r.gender as SubscriberRecord['gender'],
    publicationConsent: r.publication_consent as boolean,
    subscriberCodeHash: r.subscriber_code_hash as string,
    codeAttempts: { failures: r.code_failures as number, lockouts: r.code_lockouts as number, lockedUntil: optionalDate(r.code_locked_until) },
    status: r.status as SubscriberStatus,
    office: r.office as string,
    createdAt: r.created_at as Date,
  };
}

/**
 * The WITH part that inserts a card, numbering its parameters on from `values`; with `from`, one
 * row per row of that relation of the statement (none when it is empty).
 */
function cardInsert(c: CardRecord, values: unknown[], from?: string): string {
  const columns: Array<[unknown, string]> = [
    [c.cardNumber, 'text'], [c.subscriberId, 'uuid'], [c.subjectSerial, 'text'], [c.status, 'text'], [c.office, 'text'], [c.activatedAt ?? null, 'timestamptz'],
    [c.extended, 'boolean'], [c.signingSpki, 'bytea'], [c.encryptionSpki, 'bytea'], [sha256(c.signingSpki), 'bytea'], [sha256(c.encryptionSpki), 'bytea'],
    [c.keysCreatedAt, 'timestamptz'], [c.originalNotAfter, 'timestamptz'], [c.createdAt, 'timestamptz'],
  ];
  const list = columns.map(([v, type]) => `$${values.push(v)}::${type}`).join(', ');
  return `card AS (
           INSERT INTO cards (card_number, subscriber_id, subject_serial, status, office, activated_at, extended, signing_spki, encryption_spki, signing_spki_sha256,
             encryption_spki_sha256, keys_created_at, original_not_after, created_at)
           ${from ? `SELECT ${list} FROM ${from}` : `VALUES (${list})`})`;
}

/**
 * The WITH parts that insert certificates (sealed: their DER carries the subject's name) and
 * their first history rows, numbering their parameters on from `values`; with `when`, only if
 * that condition holds.
 */
function certificateInserts(vault: PersonalDataVault, certificates: readonly CertificateRecord[], values: unknown[], when?: string): string[] {
  const column = <V>(value: (c: CertificateRecord) => V) => certificates.map(value);
  const sealed = certificates.map((c) => vault.seal('certificate', c.serialHex, c.certificateDer));
  const arrays: Array<[unknown[], string]> = [
    [column((c) => c.serialHex), 'text'], [column((c) => c.issuerKeyId), 'text'], [column((c) => c.profile), 'text'], [column((c) => c.status), 'text'],
    [column((c) => c.notBefore), 'timestamptz'], [column((c) => c.notAfter), 'timestamptz'], [sealed.map((s) => s.ciphertext), 'bytea'], [sealed.map((s) => s.keyId), 'text'],
    [column((c) => c.cardNumber ?? null), 'text'], [column((c) => c.applicationId ?? null), 'uuid'], [column((c) => c.keySlot), 'text'], [column((c) => c.reason ?? null), 'text'],
    [column((c) => c.revocationTime ?? null), 'timestamptz'], [column((c) => c.invalidityDate ?? null), 'timestamptz'], [column((c) => c.createdAt), 'timestamptz'],
    [column((c) => c.updatedAt), 'timestamptz'], [column((c) => c.deviceId ?? null), 'uuid'], [column((c) => c.systemId ?? null), 'text'],
  ];
  const unnest = arrays.map(([array, type]) => `$${values.push(array)}::${type}[]`).join(', ');
  return [
    `certificate AS (
       INSERT INTO certificates (serial_hex, issuer_key_id, profile, status, not_before, not_after, certificate_sealed, pd_key_id, card_number, application_id, key_slot,
         reason, revocation_time, invalidity_date, created_at, updated_at, device_id, system_id)
       SELECT * FROM unnest(${unnest})${when ? ` WHERE ${when}` : ''}
       RETURNING serial_hex, status, reason, revocation_time, created_at)`,
    `history AS (
       INSERT INTO certificate_status_history (serial_hex, status, reason, revocation_time, changed_at, changed_by)
       SELECT serial_hex, status, reason, revocation_time, created_at, 'issuance' FROM certificate)`,
  ];
}

function application(r: Record<string, unknown>): ApplicationRecord {
  const a: ApplicationRecord = {
    id: r.id as string,
    kind: r.kind as ApplicationRecord['kind'],
    state: r.state as ApplicationState,
    subscriberId: r.subscriber_id as string,
    cardNumber: r.card_number as string,
    subjectSerial: r.subject_serial as string,
    office: r.office as string,
    createdBy: r.created_by as string,
    signingSpki: r.signing_spki as Buffer,
    encryptionSpki: r.encryption_spki as Buffer,
    createdAt: r.created_at as Date,
    updatedAt: r.updated_at as Date,
  };
  if (r.replaces_card) a.replacesCard = r.replaces_card as string;
  if (r.not_after) a.notAfter = r.not_after as Date;
  if (r.reason) a.reason = r.reason as string;
  if (r.decided_by) a.decidedBy = r.decided_by as string;
  return a;
}

function card(r: Record<string, unknown>): CardRecord {
  const c: CardRecord = {
    cardNumber: r.card_number as string,
    subscriberId: r.subscriber_id as string,
    subjectSerial: r.subject_serial as string,
    status: r.status as CardStatus,
    office: r.office as string,
    extended: r.extended as boolean,
    signingSpki: r.signing_spki as Buffer,
    encryptionSpki: r.encryption_spki as Buffer,
    keysCreatedAt: r.keys_created_at as Date,
    originalNotAfter: r.original_not_after as Date,
    createdAt: r.created_at as Date,
  };
  if (r.activated_at) c.activatedAt = r.activated_at as Date;
  return c;
}

function certificateRecord(r: Record<string, unknown>, der: Buffer): CertificateRecord {
  const c: CertificateRecord = {
    serialHex: r.serial_hex as string,
    issuerKeyId: r.issuer_key_id as string,
    profile: r.profile as string,
    keySlot: r.key_slot as CertificateRecord['keySlot'],
    status: r.status as CertificateStatus,
    notBefore: r.not_before as Date,
    notAfter: r.not_after as Date,
    certificateDer: der,
    createdAt: r.created_at as Date,
    updatedAt: r.updated_at as Date,
  };
  if (r.card_number) c.cardNumber = r.card_number as string;
  if (r.application_id) c.applicationId = r.application_id as string;
  if (r.device_id) c.deviceId = r.device_id as string;
  if (r.system_id) c.systemId = r.system_id as string;
  if (r.reason) c.reason = r.reason as StatusReason;
  if (r.revocation_time) c.revocationTime = r.revocation_time as Date;
  if (r.invalidity_date) c.invalidityDate = r.invalidity_date as Date;
  return c;
}

function approval(r: Record<string, unknown>): ApprovalRecord {
  const a: ApprovalRecord = {
    id: r.id as string,
    operation: r.operation as ApprovalRecord['operation'],
    payload: r.payload as ApprovalRecord['payload'],
    state: r.state as ApprovalState,
    office: r.office as string,
    requestedBy: r.requested_by as string,
    createdAt: r.created_at as Date,
    expiresAt: r.expires_at as Date,
  };
  if (r.decided_by) a.decidedBy = r.decided_by as string;
  if (r.decided_at) a.decidedAt = r.decided_at as Date;
  if (r.comment) a.comment = r.comment as string;
  return a;
}
