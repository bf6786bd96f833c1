import type pg from 'pg';
import type { Clock } from '@pki/kit';
import { toDatabaseError, withTransaction, type Tx } from '@pki/db';
import { appendAuditEvent, AuditActorType, AuditOutcome } from '@pki/audit-events';
import { acceptEventOnce } from '@pki/outbox';
import type { CardReads, CardStore, CardStoreTx } from '../../ports/card-store';
import type { CardState } from '../../domain/card-states';
import type { AuditActor, AuditRecord, BindingChallenge, CardRecord, DeviceRecord, IdempotencyClaim, PersonalisationRecord, TransitionRecord } from '../../domain/model';

export interface PostgresCardStoreOptions {
  pool: pg.Pool;
  clock: Clock;
  /** Outbox producer of card-mgmt's audit events. */
  auditProducer: string;
}

const ACTOR_TYPE = { officer: AuditActorType.OFFICER, citizen: AuditActorType.CITIZEN, service: AuditActorType.SERVICE } as const;

/** card-mgmt's card register on PostgreSQL (its own schema), audit events in the same transactions. */
export class PostgresCardStore implements CardStore {
  readonly #options: PostgresCardStoreOptions;
  readonly reads: CardReads;

  constructor(options: PostgresCardStoreOptions) {
    this.#options = options;
    this.reads = new Reads(options.pool);
  }

  transaction<T>(work: (tx: CardStoreTx) => Promise<T>): Promise<T> {
    return withTransaction(this.#options.pool, (tx) => work(new Transaction(tx, this.#options)));
  }
}

function card(r: Record<string, unknown>): CardRecord {
  return {
    cardNumber: r.card_number as string,
    chipSerial: r.chip_serial as string,
    attestationKey: r.attestation_key as Buffer,
    batchId: r.batch_id as string,
    state: r.state as CardState,
    office: r.office as string,
    ...(r.subscriber_id ? { subscriberId: r.subscriber_id as string } : {}),
    ...(r.replaces_card ? { replacesCard: r.replaces_card as string } : {}),
    ...(r.replaced_by ? { replacedBy: r.replaced_by as string } : {}),
    ...(r.signing_serial ? { signingSerial: r.signing_serial as string } : {}),
    ...(r.encryption_serial ? { encryptionSerial: r.encryption_serial as string } : {}),
    ...(r.signing_certificate ? { signingCertificate: r.signing_certificate as Buffer } : {}),
    ...(r.token_serial ? { tokenSerial: r.token_serial as string } : {}),
    updatedAt: r.updated_at as Date,
    createdAt: r.created_at as Date,
  };
}

function transition(r: Record<string, unknown>): TransitionRecord {
  const actor: AuditActor =
    r.actor_type === 'officer'
      ? { type: 'officer', id: r.actor_id as string, office: (r.actor_office as string) ?? '', role: (r.actor_role as string) ?? '' }
      : { type: r.actor_type as 'citizen' | 'service', id: r.actor_id as string };
  return {
    cardNumber: r.card_number as string,
    action: r.action as TransitionRecord['action'],
    ...(r.from_state ? { fromState: r.from_state as CardState } : {}),
    toState: r.to_state as CardState,
    ...(r.from_office ? { fromOffice: r.from_office as string } : {}),
    toOffice: r.to_office as string,
    actor,
    ...(r.reason ? { reason: r.reason as string } : {}),
    at: r.at as Date,
  };
}

function personalisation(r: Record<string, unknown>): PersonalisationRecord {
  return {
    id: r.id as string,
    cardNumber: r.card_number as string,
    kind: r.kind as 'NEW' | 'REPLACEMENT',
    ...(r.replaces_card ? { replacesCard: r.replaces_card as string } : {}),
    subscriberId: r.subscriber_id as string,
    office: r.office as string,
    officerId: r.officer_id as string,
    officerCertificateSha256: r.officer_cert as string,
    challenge: r.challenge as Buffer,
    state: r.state as PersonalisationRecord['state'],
    ...(r.failure ? { failure: r.failure as string } : {}),
    ...(r.result ? { result: r.result } : {}),
    ...(r.signing_csr ? { request: { signingCsr: r.signing_csr as string, encryptionCsr: r.encryption_csr as string, tokenSerial: r.token_serial as string } } : {}),
    createdAt: r.created_at as Date,
    updatedAt: r.updated_at as Date,
  };
}

class Reads implements CardReads {
  constructor(private readonly pool: pg.Pool) {}

  async #query(text: string, params: unknown[] = []): Promise<pg.QueryResult> {
    try {
      return await this.pool.query(text, params);
    } catch (err) {
      throw toDatabaseError(err, 'card register read');
    }
  }

  async getCard(cardNumber: string): Promise<CardRecord | undefined> {
    const { rows } = await this.#query(`SELECT * FROM cards WHERE card_number = $1`, [cardNumber]);
    return rows[0] ? card(rows[0]) : undefined;
  }

  async transitionsOf(cardNumber: string): Promise<TransitionRecord[]> {
    const { rows } = await this.#query(`SELECT * FROM card_transitions WHERE card_number = $1 ORDER BY id`, [cardNumber]);
    return rows.map(transition);
  }

  async inventory(office?: string): Promise<Array<{ office: string; state: CardState; count: number }>> {
    const { rows } = await this.#query(
      `SELECT office, state, count(*)::int AS count FROM cards WHERE ($1::text IS NULL OR office = $1) GROUP BY office, state ORDER BY office, state`,
      [office ?? null],
    );
    return rows.map((r) => ({ office: r.office, state: r.state, count: r.count }));
  }

  async transitionsBetween(from: Date, to: Date): Promise<TransitionRecord[]> {
    const { rows } = await this.#query(`SELECT * FROM card_transitions WHERE at >= $1 AND at < $2 ORDER BY id`, [from, to]);
    return rows.map(transition);
  }

  async positionsAt(before: Date): Promise<Array<{ cardNumber: string; state: CardState; office: string }>> {
    const { rows } = await this.#query(
      `SELECT DISTINCT ON (card_number) card_number, to_state, to_office FROM card_transitions WHERE at < $1 ORDER BY card_number, id DESC`,
      [before],
    );
    return rows.map((r) => ({ cardNumber: r.card_number, state: r.to_state, office: r.to_office }));
  }

  async getPersonalisation(id: string): Promise<PersonalisationRecord | undefined> {
    const { rows } = await this.#query(`SELECT * FROM personalisations WHERE id = $1`, [id]);
    return rows[0] ? personalisation(rows[0]) : undefined;
  }

  async devicesOfSubscriber(subscriberId: string): Promise<DeviceRecord[]> {
    const { rows } = await this.#query(`SELECT * FROM devices WHERE subscriber_id = $1 ORDER BY created_at, id`, [subscriberId]);
    return rows.map(device);
  }

  async getDevice(id: string): Promise<DeviceRecord | undefined> {
    const { rows } = await this.#query(`SELECT * FROM devices WHERE id = $1`, [id]);
    return rows[0] ? device(rows[0]) : undefined;
  }

  async getChallenge(id: string): Promise<BindingChallenge | undefined> {
    const { rows } = await this.#query(`SELECT * FROM binding_challenges WHERE id = $1`, [id]);
    const r = rows[0];
    return r ? { id: r.id, cardNumber: r.card_number, challenge: r.challenge, expiresAt: r.expires_at, ...(r.used_at ? { usedAt: r.used_at } : {}), createdAt: r.created_at } : undefined;
  }

  async completedIdempotency(scope: string, key: string): Promise<{ operation: string; fingerprint: Buffer; result: unknown } | undefined> {
    const { rows } = await this.#query(`SELECT operation, fingerprint, result FROM idempotency_keys WHERE scope = $1 AND key = $2 AND completed_at IS NOT NULL`, [scope, key]);
    return rows[0] ? { operation: rows[0].operation, fingerprint: rows[0].fingerprint, result: rows[0].result } : undefined;
  }
}

function device(r: Record<string, unknown>): DeviceRecord {
  return {
    id: r.id as string,
    subscriberId: r.subscriber_id as string,
    cardNumber: r.card_number as string,
    name: r.name as string,
    publicKey: r.public_key as Buffer,
    state: r.state as DeviceRecord['state'],
    ...(r.serial_hex ? { serialHex: r.serial_hex as string } : {}),
    createdAt: r.created_at as Date,
    updatedAt: r.updated_at as Date,
  };
}

const CARD_COLUMNS: Record<string, string> = {
  state: 'state',
  office: 'office',
  subscriberId: 'subscriber_id',
  replacesCard: 'replaces_card',
  replacedBy: 'replaced_by',
  signingSerial: 'signing_serial',
  encryptionSerial: 'encryption_serial',
  signingCertificate: 'signing_certificate',
  tokenSerial: 'token_serial',
  updatedAt: 'updated_at',
};

class Transaction implements CardStoreTx {
  constructor(
    private readonly tx: Tx,
    private readonly options: PostgresCardStoreOptions,
  ) {}

  async claimIdempotency(scope: string, key: string, operation: string, fingerprint: Buffer): Promise<IdempotencyClaim> {
    const inserted = await this.tx.query(`INSERT INTO idempotency_keys (scope, key, operation, fingerprint) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, [scope, key, operation, fingerprint]);
    if (inserted.rowCount === 1) return { kind: 'new' };
    const { rows } = await this.tx.query(`SELECT operation, fingerprint, result, completed_at FROM idempotency_keys WHERE scope = $1 AND key = $2 FOR UPDATE`, [scope, key]);
    const row = rows[0];
    if (!row) return { kind: 'in-progress' };
    if (row.operation !== operation || !(row.fingerprint as Buffer).equals(fingerprint)) return { kind: 'conflict', operation: row.operation };
    return row.completed_at ? { kind: 'done', result: row.result } : { kind: 'in-progress' };
  }

  async completeIdempotency(scope: string, key: string, result: unknown): Promise<void> {
    await this.tx.query(`UPDATE idempotency_keys SET result = $3, completed_at = now() WHERE scope = $1 AND key = $2`, [scope, key, JSON.stringify(result ?? null)]);
  }

  async batchExists(batchId: string): Promise<boolean> {
    const { rowCount } = await this.tx.query(`SELECT 1 FROM card_batches WHERE id = $1`, [batchId]);
    return (rowCount ?? 0) > 0;
  }

  async insertBatch(b: { id: string; supplier: string; cardCount: number; receivedAt: Date; receivedBy: string }): Promise<void> {
    await this.tx.query(`INSERT INTO card_batches (id, supplier, card_count, received_at, received_by) VALUES ($1, $2, $3, $4, $5)`, [b.id, b.supplier, b.cardCount, b.receivedAt, b.receivedBy]);
  }

  async existingCards(cardNumbers: readonly string[], chipSerials: readonly string[]): Promise<{ cardNumbers: string[]; chipSerials: string[] }> {
    const numbers = await this.tx.query(`SELECT card_number FROM cards WHERE card_number = ANY($1::text[]) ORDER BY card_number`, [cardNumbers]);
    const chips = await this.tx.query(`SELECT chip_serial FROM cards WHERE chip_serial = ANY($1::text[]) ORDER BY chip_serial`, [chipSerials]);
    return { cardNumbers: numbers.rows.map((r) => r.card_number), chipSerials: chips.rows.map((r) => r.chip_serial) };
  }

  async insertCard(c: CardRecord): Promise<void> {
    await this.tx.query(`INSERT INTO cards (card_number, chip_serial, attestation_key, batch_id, state, office, updated_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, [
      c.cardNumber,
      c.chipSerial,
      c.attestationKey,
      c.batchId,
      c.state,
      c.office,
      c.updatedAt,
      c.createdAt,
    ]);
  }

  async getCard(cardNumber: string, options: { forUpdate?: boolean } = {}): Promise<CardRecord | undefined> {
    const { rows } = await this.tx.query(`SELECT * FROM cards WHERE card_number = $1${options.forUpdate ? ' FOR UPDATE' : ''}`, [cardNumber]);
    return rows[0] ? card(rows[0]) : undefined;
  }

  async updateCard(cardNumber: string, patch: Partial<CardRecord>): Promise<void> {
    const sets: string[] = [];
    const values: unknown[] = [cardNumber];
    for (const [field, value] of Object.entries(patch)) {
      const column = CARD_COLUMNS[field];
      if (!column) continue;
      values.push(value ?? null);
      sets.push(`${column} = $${values.length}`);
    }
    if (sets.length > 0) await this.tx.query(`UPDATE cards SET ${sets.join(', ')} WHERE card_number = $1`, values);
  }

  async recordTransition(t: TransitionRecord): Promise<void> {
    const officer = t.actor.type === 'officer' ? t.actor : undefined;
    await this.tx.query(
      `INSERT INTO card_transitions (card_number, action, from_state, to_state, from_office, to_office, actor_type, actor_id, actor_office, actor_role, reason, at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
      [t.cardNumber, t.action, t.fromState ?? null, t.toState, t.fromOffice ?? null, t.toOffice, t.actor.type, t.actor.id, officer?.office ?? null, officer?.role ?? null, t.reason ?? null, t.at],
    );
  }

  async audit(record: AuditRecord): Promise<void> {
    const actor = record.actor;
    await appendAuditEvent(this.tx, { producer: this.options.auditProducer, clock: this.options.clock }, {
      action: record.action,
      outcome: record.outcome === 'SUCCESS' ? AuditOutcome.SUCCESS : AuditOutcome.FAILURE,
      actor: { type: ACTOR_TYPE[actor.type], id: actor.id, ...(actor.type === 'officer' ? { office: actor.office, role: actor.role } : {}) },
      objects: record.objects,
      ...(record.reason ? { reason: record.reason } : {}),
      ...(record.attributes ? { attributes: record.attributes } : {}),
    });
  }

  async insertPersonalisation(p: PersonalisationRecord): Promise<void> {
    await this.tx.query(
      `INSERT INTO personalisations (id, card_number, kind, replaces_card, subscriber_id, office, officer_id, officer_cert, challenge, state, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
      [p.id, p.cardNumber, p.kind, p.replacesCard ?? null, p.subscriberId, p.office, p.officerId, p.officerCertificateSha256, p.challenge, p.state, p.createdAt, p.updatedAt],
    );
  }

  async getPersonalisation(id: string, options: { forUpdate?: boolean } = {}): Promise<PersonalisationRecord | undefined> {
    const { rows } = await this.tx.query(`SELECT * FROM personalisations WHERE id = $1${options.forUpdate ? ' FOR UPDATE' : ''}`, [id]);
    return rows[0] ? personalisation(rows[0]) : undefined;
  }

  async insertChallenge(c: BindingChallenge): Promise<void> {
    await this.tx.query(`INSERT INTO binding_challenges (id, card_number, challenge, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)`, [c.id, c.cardNumber, c.challenge, c.expiresAt, c.createdAt]);
  }

  async useChallenge(id: string, at: Date): Promise<BindingChallenge | undefined> {
    const { rows } = await this.tx.query(`UPDATE binding_challenges SET used_at = $2 WHERE id = $1 AND used_at IS NULL RETURNING *`, [id, at]);
    const r = rows[0];
    return r ? { id: r.id, cardNumber: r.card_number, challenge: r.challenge, expiresAt: r.expires_at, usedAt: r.used_at, createdAt: r.created_at } : undefined;
  }

  async devicesOfSubscriber(subscriberId: string, options: { forUpdate?: boolean } = {}): Promise<DeviceRecord[]> {
    const { rows } = await this.tx.query(`SELECT * FROM devices WHERE subscriber_id = $1 ORDER BY created_at, id${options.forUpdate ? ' FOR UPDATE' : ''}`, [subscriberId]);
    return rows.map(device);
  }

  async deviceWithKey(publicKey: Buffer): Promise<DeviceRecord | undefined> {
    const { rows } = await this.tx.query(`SELECT * FROM devices WHERE public_key = $1`, [publicKey]);
    return rows[0] ? device(rows[0]) : undefined;
  }

  async insertDevice(d: DeviceRecord): Promise<void> {
    await this.tx.query(`INSERT INTO devices (id, subscriber_id, card_number, name, public_key, state, serial_hex, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, [
      d.id, d.subscriberId, d.cardNumber, d.name, d.publicKey, d.state, d.serialHex ?? null, d.createdAt, d.updatedAt,
    ]);
  }

  async getDevice(id: string, options: { forUpdate?: boolean } = {}): Promise<DeviceRecord | undefined> {
    const { rows } = await this.tx.query(`SELECT * FROM devices WHERE id = $1${options.forUpdate ? ' FOR UPDATE' : ''}`, [id]);
    return rows[0] ? device(rows[0]) : undefined;
  }

  async updateDevice(id: string, patch: Partial<Pick<DeviceRecord, 'state' | 'serialHex' | 'updatedAt'>>): Promise<void> {
    await this.tx.query(`UPDATE devices SET state = COALESCE($2, state), serial_hex = COALESCE($3, serial_hex), updated_at = COALESCE($4, updated_at) WHERE id = $1`, [id, patch.state ?? null, patch.serialHex ?? null, patch.updatedAt ?? null]);
  }

  async acceptEventOnce(consumer: string, event: { producer: string; seq: number }): Promise<boolean> {
    return acceptEventOnce(this.tx, consumer, event);
  }

  async deviceWithSerial(serialHex: string): Promise<DeviceRecord | undefined> {
    const { rows } = await this.tx.query(`SELECT * FROM devices WHERE serial_hex = $1 FOR UPDATE`, [serialHex]);
    return rows[0] ? device(rows[0]) : undefined;
  }

  async cardWithSigningSerial(serialHex: string): Promise<CardRecord | undefined> {
    const { rows } = await this.tx.query(`SELECT * FROM cards WHERE signing_serial = $1 FOR UPDATE`, [serialHex]);
    return rows[0] ? card(rows[0]) : undefined;
  }

  async updatePersonalisation(id: string, patch: Partial<Pick<PersonalisationRecord, 'state' | 'failure' | 'result' | 'updatedAt' | 'request'>>): Promise<void> {
    await this.tx.query(
      `UPDATE personalisations SET state = COALESCE($2, state), failure = COALESCE($3, failure), result = COALESCE($4, result), updated_at = COALESCE($5, updated_at),
         signing_csr = COALESCE($6, signing_csr), encryption_csr = COALESCE($7, encryption_csr), token_serial = COALESCE($8, token_serial) WHERE id = $1`,
      [id, patch.state ?? null, patch.failure ?? null, patch.result === undefined ? null : JSON.stringify(patch.result), patch.updatedAt ?? null,
        patch.request?.signingCsr ?? null, patch.request?.encryptionCsr ?? null, patch.request?.tokenSerial ?? null],
    );
  }
}
