import type { Pool, PoolClient } from 'pg';
import { PkiError } from '@pki/kit';
import { withTransaction, type Tx } from '@pki/db';
import { acceptEventOnce } from '@pki/outbox';
import { appendAuditEvent, AuditOutcome, serviceActor, type AuditActor, type AuditChannel } from '@pki/audit-events';
import { nextCrlNumber } from '@pki/x509';
import type { RevocationChange } from '../../domain/status-change';
import type { CrlKind, CrlRecord, CrlStore, DeltaEntry, EntryFilter, EntrySnapshot, KnownIssuer, LeaseClaim, RegenerationRequest } from '../../ports/crl-store';

const CONSUMER = 'crl';


interface CrlRow {
  id: string;
  issuer_key_id: string;
  scope: string;
  kind: CrlKind;
  crl_number: string;
  base_crl_number: string | null;
  this_update: Date;
  next_update: Date;
  entries: string;
  size: string | null;
  snapshot_seq: string;
  published_at: Date | null;
  generation_ms: number | null;
}

const CRL_COLUMNS = `id::text, issuer_key_id, scope, kind, crl_number::text, base_crl_number::text, this_update, next_update, entries::text, size::text, snapshot_seq::text, published_at, generation_ms`;

function recordOf(r: CrlRow): CrlRecord {
  return {
    id: r.id,
    issuerKeyId: r.issuer_key_id,
    scope: r.scope,
    kind: r.kind,
    crlNumber: BigInt(r.crl_number),
    baseCrlNumber: r.base_crl_number === null ? undefined : BigInt(r.base_crl_number),
    thisUpdate: r.this_update,
    nextUpdate: r.next_update,
    entries: Number(r.entries),
    size: Number(r.size ?? 0),
    snapshotSeq: BigInt(r.snapshot_seq),
    publishedAt: r.published_at ?? undefined,
    generationMs: r.generation_ms ?? undefined,
  };
}

/** The crl service's records in its PostgreSQL schema (migrations/003_crl.sql). */
export class PostgresCrlStore implements CrlStore {
  readonly #pool: Pool;
  readonly #audit: AuditChannel;
  readonly #actor: AuditActor;
  readonly #leaseIdleMs: number;

  /** `leaseSeconds`: the generator lease's length; a transaction holding the lease row may not idle longer. */
  constructor(pool: Pool, audit: AuditChannel, serviceIdentity: string, leaseSeconds = 30) {
    this.#pool = pool;
    this.#audit = audit;
    this.#actor = serviceActor(serviceIdentity);
    this.#leaseIdleMs = Math.max(1_000, Math.round(leaseSeconds * 1_000));
  }

  get pool(): Pool {
    return this.#pool;
  }

  async saveIssuers(issuers: readonly KnownIssuer[]): Promise<void> {
    await withTransaction(this.#pool, async (tx) => {
      for (const i of issuers) {
        const { rows } = await tx.query(`SELECT crl_partitions FROM issuers WHERE key_id = $1`, [i.keyId]);
        // The partition count is fixed for the life of a generation: a different answer later is a
        // signer misconfiguration, and following it would move certificates to other CRLs.
        if (rows[0] && rows[0].crl_partitions !== i.crlPartitions) {
          throw new PkiError('FAILED_PRECONDITION', `save issuers: generation ${i.keyId} had ${rows[0].crl_partitions} CRL partitions and is now reported with ${i.crlPartitions}; keeping the recorded count`);
        }
        await tx.query(
          `INSERT INTO issuers (key_id, role, certificate_der, crl_partitions, crl_base_url, not_after) VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (key_id) DO UPDATE SET crl_base_url = coalesce(issuers.crl_base_url, EXCLUDED.crl_base_url), seen_at = now()`,
          [i.keyId, i.role, i.certificateDer, i.crlPartitions, i.crlBaseUrl, i.notAfter],
        );
        const scopes = i.role === 'ROOT' ? ['arl'] : ['full', ...Array.from({ length: i.crlPartitions ?? 0 }, (_, p) => `p${p}`)];
        await tx.query(`INSERT INTO crl_scopes (issuer_key_id, scope) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING`, [i.keyId, scopes]);
      }
    });
  }

  async issuers(): Promise<KnownIssuer[]> {
    const { rows } = await this.#pool.query(`SELECT key_id, role, certificate_der, crl_partitions, crl_base_url, not_after FROM issuers ORDER BY seen_at, key_id`);
    return rows.map((r) => ({ keyId: r.key_id, role: r.role, certificateDer: r.certificate_der, crlPartitions: r.crl_partitions, crlBaseUrl: r.crl_base_url, notAfter: r.not_after }));
  }

  async applyStatusChange(event: { producer: string; seq: number }, change: RevocationChange, partitions: number | undefined): Promise<'applied' | 'duplicate' | 'stale' | 'ignored'> {
    return withTransaction(this.#pool, async (tx) => {
      if (!(await acceptEventOnce(tx, CONSUMER, event))) return 'duplicate';
      return this.#apply(tx, change, partitions);
    });
  }

  /** Keeps an event of a generation not known yet (recorded as applied: the stream moves on). */
  async parkStatusEvent(event: { producer: string; seq: number; payload: Uint8Array }, issuerKeyId: string): Promise<'parked' | 'duplicate'> {
    return withTransaction(this.#pool, async (tx) => {
      if (!(await acceptEventOnce(tx, CONSUMER, event))) return 'duplicate';
      await tx.query(`INSERT INTO parked_status_events (producer, seq, issuer_key_id, payload) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, [event.producer, event.seq, issuerKeyId, Buffer.from(event.payload)]);
      return 'parked';
    });
  }

  /** Applies, in order, the parked events of generations now known; returns how many. */
  async applyParkedEvents(changeOf: (payload: Buffer) => RevocationChange): Promise<number> {
    const { rows } = await this.#pool.query(
      `SELECT p.producer, p.seq::text, p.payload, i.crl_partitions FROM parked_status_events p JOIN issuers i ON i.key_id = p.issuer_key_id ORDER BY p.producer, p.seq`,
    );
    for (const r of rows) {
      await withTransaction(this.#pool, async (tx) => {
        const gone = await tx.query(`DELETE FROM parked_status_events WHERE producer = $1 AND seq = $2`, [r.producer, r.seq]);
        if (gone.rowCount === 1) await this.#apply(tx, changeOf(r.payload), r.crl_partitions);
      });
    }
    return rows.length;
  }

  async #apply(tx: Tx, change: RevocationChange, partitions: number | undefined): Promise<'applied' | 'stale' | 'ignored'> {
    {
      if (change.kind === 'ignored' || change.kind === 'rejected') return 'ignored';
      const { rows } = await tx.query(
        `SELECT status, entry_der, not_after, revocation_time, changed_at FROM revocations WHERE issuer_key_id = $1 AND serial = $2 FOR UPDATE`,
        [change.issuerKeyId, change.serial],
      );
      const current = rows[0];
      // Events of one certificate come in order; an older one (a replay from elsewhere) changes nothing.
      if (current && current.changed_at > change.changedAt) return 'stale';
      if (change.kind === 'unlisted' && (!current || current.status === 'VALID')) return 'ignored';
      if (partitions === undefined) throw new PkiError('FAILED_PRECONDITION', `apply status change: CA generation ${change.issuerKeyId} is not known yet`);
      const partition = Number(BigInt(`0x${change.serial.toString('hex')}`) % BigInt(partitions));
      const seq = BigInt((await tx.query(`UPDATE change_counter SET value = value + 1 RETURNING value::text`)).rows[0].value);
      await tx.query(
        `INSERT INTO revocation_history (issuer_key_id, change_seq, serial, was_status, was_entry_der, was_not_after, was_revocation_time) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        [change.issuerKeyId, seq.toString(), change.serial, current?.status ?? null, current?.entry_der ?? null, current?.not_after ?? null, current?.revocation_time ?? null],
      );
      if (change.kind === 'listed') {
        await tx.query(
          `INSERT INTO revocations (issuer_key_id, serial, partition, status, revocation_time, reason, invalidity_date, not_after, entry_der, change_seq, changed_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
           ON CONFLICT (issuer_key_id, serial) DO UPDATE SET status = EXCLUDED.status, revocation_time = EXCLUDED.revocation_time, reason = EXCLUDED.reason,
             invalidity_date = EXCLUDED.invalidity_date, not_after = EXCLUDED.not_after, entry_der = EXCLUDED.entry_der, change_seq = EXCLUDED.change_seq, changed_at = EXCLUDED.changed_at`,
          [change.issuerKeyId, change.serial, partition, change.status, change.revocationTime, change.reason, change.invalidityDate ?? null, change.notAfter, change.entryDer, seq.toString(), change.changedAt],
        );
      } else {
        await tx.query(`UPDATE revocations SET status = 'VALID', entry_der = NULL, change_seq = $3, changed_at = $4 WHERE issuer_key_id = $1 AND serial = $2`, [
          change.issuerKeyId,
          change.serial,
          seq.toString(),
          change.changedAt,
        ]);
      }
      await tx.query(`UPDATE crl_scopes SET changed_seq = $3 WHERE issuer_key_id = $1 AND scope = ANY($2::text[])`, [change.issuerKeyId, ['full', `p${partition}`], seq.toString()]);
      await tx.query(`SELECT pg_notify('pki_crl_changes', $1)`, [change.issuerKeyId]);
      return 'applied';
    }
  }

  async claimLease(holder: string, leaseSeconds: number, current: LeaseClaim | undefined): Promise<LeaseClaim | undefined> {
    // clock_timestamp(), not now(): the lease is about the moment of the statement.
    if (current) {
      const renewed = await this.#pool.query(
        `UPDATE generator_lease SET expires_at = clock_timestamp() + make_interval(secs => $3) WHERE holder = $1 AND token = $2 AND expires_at > clock_timestamp() RETURNING token::text`,
        [holder, current.token.toString(), leaseSeconds],
      );
      if (renewed.rows[0]) return current;
    }
    const taken = await this.#pool.query(
      `UPDATE generator_lease SET holder = $1, token = token + 1, expires_at = clock_timestamp() + make_interval(secs => $2)
        WHERE holder IS NULL OR expires_at IS NULL OR expires_at <= clock_timestamp() RETURNING token::text`,
      [holder, leaseSeconds],
    );
    return taken.rows[0] ? { holder, token: BigInt(taken.rows[0].token) } : undefined;
  }

  async releaseLease(claim: LeaseClaim): Promise<void> {
    await this.#pool.query(`UPDATE generator_lease SET expires_at = NULL, holder = NULL WHERE holder = $1 AND token = $2`, [claim.holder, claim.token.toString()]);
  }

  /** FAILED_PRECONDITION unless `claim` still holds the lease; keeps the lease row locked until the transaction ends. */
  async #assertLease(tx: Tx, claim: LeaseClaim, operation: string): Promise<void> {
    // A holder frozen inside this transaction (stopped, paused, cut off) would keep the lease row
    // locked, and no other pod could ever take the lease over. PostgreSQL ends a transaction left
    // idle longer than the lease: by then the holder has lost the lease anyway.
    await tx.query(`SET LOCAL idle_in_transaction_session_timeout = ${this.#leaseIdleMs}`);
    const { rows } = await tx.query(`SELECT holder, token::text, expires_at > clock_timestamp() AS valid FROM generator_lease FOR UPDATE`);
    const lease = rows[0];
    if (!lease || lease.holder !== claim.holder || lease.token !== claim.token.toString() || !lease.valid) {
      throw new PkiError('FAILED_PRECONDITION', `${operation}: this generator no longer holds the lease (token ${claim.token})`);
    }
  }

  async reserveNumber(claim: LeaseClaim, issuerKeyId: string, scope: string, now: Date, atLeast?: bigint): Promise<bigint> {
    return withTransaction(this.#pool, async (tx) => {
      await this.#assertLease(tx, claim, 'reserve CRL number');
      const { rows } = await tx.query(`SELECT last_number::text AS last FROM crl_scopes WHERE issuer_key_id = $1 AND scope = $2 FOR UPDATE`, [issuerKeyId, scope]);
      if (!rows[0]) throw new PkiError('NOT_FOUND', `reserve CRL number: no scope ${scope} for ${issuerKeyId}`);
      let last = BigInt(rows[0].last);
      if (atLeast !== undefined && atLeast > last) last = atLeast;
      const number = nextCrlNumber(last === 0n ? undefined : last, now);
      await tx.query(`UPDATE crl_scopes SET last_number = $3 WHERE issuer_key_id = $1 AND scope = $2`, [issuerKeyId, scope, number.toString()]);
      return number;
    });
  }

  async openSnapshot(filter: EntryFilter, batchEntries: number): Promise<EntrySnapshot> {
    const client = await this.#pool.connect();
    let released = false;
    const release = async (err?: Error) => {
      if (released) return;
      released = true;
      await client.query(err ? 'ROLLBACK' : 'COMMIT').catch(() => undefined);
      client.release(err);
    };
    try {
      // One snapshot for the count, the length and every batch: the CRL lists exactly one state.
      // The count and length (a pass over the entries) run on a second connection that shares
      // the snapshot, while the first batch is already being read on this one.
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const exported = (await client.query(`SELECT pg_export_snapshot() AS snapshot, value::text FROM change_counter`)).rows[0];
      const seq = BigInt(exported.value);
      const partitionClause = filter.partition === undefined ? '' : 'AND partition = $4';
      const params: unknown[] = [filter.issuerKeyId, filter.expiredBefore, filter.revokedBy];
      if (filter.partition !== undefined) params.push(filter.partition);
      const where = `issuer_key_id = $1 AND status <> 'VALID' AND not_after > $2 AND revocation_time <= $3 ${partitionClause}`;
      const next = params.length + 1;
      const batchSql = `SELECT string_agg(entry_der, ''::bytea ORDER BY sort_key) AS der, count(*)::int AS n, (array_agg(sort_key ORDER BY sort_key DESC))[1] AS last_key
                          FROM (SELECT sort_key, entry_der FROM revocations WHERE ${where} AND sort_key > $${next}::bytea ORDER BY sort_key LIMIT $${next + 1}) b`;
      const fetch = (after: Buffer) => client.query<{ der: Buffer; n: number; last_key: Buffer }>(batchSql, [...params, after, batchEntries]);
      const first = fetch(Buffer.alloc(0));
      first.catch(() => undefined);
      const totals = await withTransaction(
        this.#pool,
        async (tx) => {
          await tx.query(`SET TRANSACTION SNAPSHOT '${String(exported.snapshot).replace(/[^0-9A-Fa-f-]/g, '')}'`);
          return (await tx.query(`SELECT count(*)::text AS n, coalesce(sum(octet_length(entry_der)), 0)::text AS len FROM revocations WHERE ${where}`, params)).rows[0];
        },
        { isolation: 'repeatable read', readOnly: true },
      );
      const count = Number(totals.n);
      const length = Number(totals.len);
      async function* batches(): AsyncIterable<Buffer> {
        // One batch ahead: the database prepares the next while this one travels.
        let pending = first;
        for (;;) {
          const row = (await pending).rows[0];
          if (!row || row.n === 0) return;
          pending = row.n < batchEntries ? Promise.resolve({ rows: [] } as never) : fetch(row.last_key);
          yield row.der;
        }
      }
      return { seq, count, length, batches, close: () => release() };
    } catch (err) {
      await release(err as Error);
      throw err;
    }
  }

  async deltaEntries(issuerKeyId: string, base: { snapshotSeq: bigint; thisUpdate: Date; expiredBefore: Date }, now: { thisUpdate: Date; expiredBefore: Date }): Promise<{ seq: bigint; entries: DeltaEntry[] }> {
    return withTransaction(
      this.#pool,
      async (tx) => {
        const seq = BigInt((await tx.query(`SELECT value::text FROM change_counter`)).rows[0].value);
        const listedAt = (status: string | null, notAfter: Date | null, revoked: Date | null, at: { thisUpdate: Date; expiredBefore: Date }) =>
          status !== null && status !== 'VALID' && notAfter !== null && revoked !== null && notAfter > at.expiredBefore && revoked <= at.thisUpdate;
        const entries: DeltaEntry[] = [];
        const decide = (serial: Buffer, nowRow: { status: string; entry_der: Buffer | null; not_after: Date; revocation_time: Date | null }, baseRow: { status: string | null; entry_der: Buffer | null; not_after: Date | null; revocation_time: Date | null }) => {
          const inNow = listedAt(nowRow.status, nowRow.not_after, nowRow.revocation_time, now);
          const inBase = listedAt(baseRow.status, baseRow.not_after, baseRow.revocation_time, base);
          if (inNow && (!inBase || !nowRow.entry_der!.equals(baseRow.entry_der!))) entries.push({ serial, entryDer: nowRow.entry_der! });
          else if (!inNow && inBase) entries.push({ serial, removedRevocationTime: baseRow.revocation_time! });
        };
        // Changed since the base: the base listed the state before the first change after it.
        const changed = await tx.query(
          `SELECT r.serial, r.status, r.entry_der, r.not_after, r.revocation_time, h.was_status, h.was_entry_der, h.was_not_after, h.was_revocation_time
             FROM revocations r
             JOIN LATERAL (SELECT * FROM revocation_history h WHERE h.issuer_key_id = r.issuer_key_id AND h.serial = r.serial AND h.change_seq > $2 ORDER BY h.change_seq LIMIT 1) h ON true
            WHERE r.issuer_key_id = $1 AND r.change_seq > $2`,
          [issuerKeyId, base.snapshotSeq.toString()],
        );
        for (const r of changed.rows) decide(r.serial, r, { status: r.was_status, entry_der: r.was_entry_der, not_after: r.was_not_after, revocation_time: r.was_revocation_time });
        // Unchanged, but time moved them: expired past the grace period, or a revocation dated after the base took effect.
        const moved = await tx.query(
          `SELECT serial, status, entry_der, not_after, revocation_time FROM revocations
            WHERE issuer_key_id = $1 AND status <> 'VALID' AND change_seq <= $2
              AND ((not_after > $3 AND not_after <= $4) OR (revocation_time > $5 AND revocation_time <= $6))`,
          [issuerKeyId, base.snapshotSeq.toString(), base.expiredBefore, now.expiredBefore, base.thisUpdate, now.thisUpdate],
        );
        for (const r of moved.rows) decide(r.serial, r, r);
        return { seq, entries };
      },
      { isolation: 'repeatable read', readOnly: true },
    );
  }

  async scopeChanges(issuerKeyId: string): Promise<Map<string, bigint>> {
    const { rows } = await this.#pool.query(`SELECT scope, changed_seq::text FROM crl_scopes WHERE issuer_key_id = $1`, [issuerKeyId]);
    return new Map(rows.map((r) => [r.scope as string, BigInt(r.changed_seq)]));
  }

  async beginCrl(claim: LeaseClaim, record: Omit<CrlRecord, 'id' | 'size' | 'publishedAt' | 'generationMs'>): Promise<string> {
    const { rows } = await this.#pool.query(
      `INSERT INTO crls (issuer_key_id, scope, kind, crl_number, base_crl_number, this_update, next_update, entries, snapshot_seq, state, holder, lease_token)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'BUILDING', $10, $11) RETURNING id::text`,
      [
        record.issuerKeyId,
        record.scope,
        record.kind,
        record.crlNumber.toString(),
        record.baseCrlNumber?.toString() ?? null,
        record.thisUpdate,
        record.nextUpdate,
        record.entries,
        record.snapshotSeq.toString(),
        claim.holder,
        claim.token.toString(),
      ],
    );
    return rows[0].id;
  }

  async writeChunk(crlId: string, seq: number, data: Buffer): Promise<void> {
    await this.#pool.query(`INSERT INTO crl_chunks (crl_id, seq, data) VALUES ($1, $2, $3)`, [crlId, seq, data]);
  }

  async publishCrl(claim: LeaseClaim, crlId: string, final: { header: Buffer; trailer: Buffer; lastSeq: number; size: number; tbsSha256: Buffer; generationMs: number }, audit: Record<string, string>): Promise<void> {
    await withTransaction(this.#pool, async (tx) => {
      await this.#assertLease(tx, claim, 'publish CRL');
      const { rows } = await tx.query(`SELECT issuer_key_id, scope, crl_number::text FROM crls WHERE id = $1 AND state = 'BUILDING' FOR UPDATE`, [crlId]);
      const crl = rows[0];
      if (!crl) throw new PkiError('FAILED_PRECONDITION', `publish CRL: CRL ${crlId} is not being built`);
      // RFC 5280 §5.2.3: never a number at or below one already published in the scope.
      const above = await tx.query(`SELECT max(crl_number)::text AS max FROM crls WHERE issuer_key_id = $1 AND scope = $2 AND state = 'PUBLISHED'`, [crl.issuer_key_id, crl.scope]);
      if (above.rows[0].max !== null && BigInt(above.rows[0].max) >= BigInt(crl.crl_number)) {
        throw new PkiError('FAILED_PRECONDITION', `publish CRL: ${crl.scope} number ${crl.crl_number} is not above the published ${above.rows[0].max}`);
      }
      await tx.query(`INSERT INTO crl_chunks (crl_id, seq, data) VALUES ($1, 0, $2), ($1, $3, $4)`, [crlId, final.header, final.lastSeq, final.trailer]);
      await tx.query(`UPDATE crls SET state = 'PUBLISHED', published_at = clock_timestamp(), size = $2, tbs_sha256 = $3, generation_ms = $4 WHERE id = $1`, [
        crlId,
        final.size,
        final.tbsSha256,
        final.generationMs,
      ]);
      await appendAuditEvent(tx, this.#audit, {
        action: 'crl.publish',
        outcome: AuditOutcome.SUCCESS,
        actor: this.#actor,
        objects: [{ type: 'crl', id: `${crl.issuer_key_id}/${crl.scope}/${crl.crl_number}` }, { type: 'issuer', id: crl.issuer_key_id }],
        attributes: { ...audit, leaseToken: claim.token.toString(), tbsSha256: final.tbsSha256.toString('hex'), size: String(final.size) },
      });
    });
  }

  async latest(issuerKeyId?: string): Promise<CrlRecord[]> {
    const { rows } = await this.#pool.query<CrlRow>(
      `SELECT DISTINCT ON (issuer_key_id, scope, kind) ${CRL_COLUMNS} FROM crls WHERE state = 'PUBLISHED' ${issuerKeyId ? 'AND issuer_key_id = $1' : ''}
        ORDER BY issuer_key_id, scope, kind, crl_number DESC`,
      issuerKeyId ? [issuerKeyId] : [],
    );
    return rows.map(recordOf);
  }

  async find(issuerKeyId: string, scope: string, kind: CrlKind, crlNumber?: bigint): Promise<CrlRecord | undefined> {
    const { rows } = await this.#pool.query<CrlRow>(
      `SELECT ${CRL_COLUMNS} FROM crls WHERE state = 'PUBLISHED' AND issuer_key_id = $1 AND scope = $2 AND kind = $3 ${crlNumber === undefined ? '' : 'AND crl_number = $4'}
        ORDER BY crl_number DESC LIMIT 1`,
      crlNumber === undefined ? [issuerKeyId, scope, kind] : [issuerKeyId, scope, kind, crlNumber.toString()],
    );
    return rows[0] ? recordOf(rows[0]) : undefined;
  }

  async history(issuerKeyId: string): Promise<CrlRecord[]> {
    const { rows } = await this.#pool.query<CrlRow>(`SELECT ${CRL_COLUMNS} FROM crls WHERE state = 'PUBLISHED' AND issuer_key_id = $1 ORDER BY scope, crl_number DESC`, [issuerKeyId]);
    return rows.map(recordOf);
  }

  async chunks(crlId: string): Promise<Array<{ seq: number; length: number }>> {
    const { rows } = await this.#pool.query(`SELECT seq, octet_length(data) AS length FROM crl_chunks WHERE crl_id = $1 ORDER BY seq`, [crlId]);
    return rows.map((r) => ({ seq: r.seq, length: r.length }));
  }

  async chunk(crlId: string, seq: number): Promise<Buffer> {
    const { rows } = await this.#pool.query(`SELECT data FROM crl_chunks WHERE crl_id = $1 AND seq = $2`, [crlId, seq]);
    if (!rows[0]) throw new PkiError('NOT_FOUND', `read CRL: chunk ${seq} of CRL ${crlId} is gone (pruned)`);
    return rows[0].data;
  }

  async prune(retentionSeconds: number, issuerKeyId: string, base: { snapshotSeq: bigint; expiredBefore: Date } | undefined): Promise<void> {
    // Unfinished builds of a generator that died or lost its lease.
    await this.#pool.query(`DELETE FROM crls WHERE issuer_key_id = $1 AND state = 'BUILDING' AND started_at < clock_timestamp() - interval '1 hour'`, [issuerKeyId]);
    // Superseded CRLs past retention; the latest of each scope and kind stays whatever its age.
    await this.#pool.query(
      `DELETE FROM crls c WHERE issuer_key_id = $1 AND state = 'PUBLISHED' AND published_at < clock_timestamp() - make_interval(secs => $2)
          AND EXISTS (SELECT 1 FROM crls n WHERE n.issuer_key_id = c.issuer_key_id AND n.scope = c.scope AND n.kind = c.kind AND n.state = 'PUBLISHED' AND n.crl_number > c.crl_number)`,
      [issuerKeyId, retentionSeconds],
    );
    if (base) {
      // Before-images and resumed or expired rows that the latest base no longer needs for its deltas.
      await this.#pool.query(`DELETE FROM revocation_history WHERE issuer_key_id = $1 AND change_seq <= $2`, [issuerKeyId, base.snapshotSeq.toString()]);
      await this.#pool.query(`DELETE FROM revocations WHERE issuer_key_id = $1 AND change_seq <= $2 AND (status = 'VALID' OR not_after <= $3)`, [issuerKeyId, base.snapshotSeq.toString(), base.expiredBefore]);
    }
  }

  async pendingRegenerations(): Promise<RegenerationRequest[]> {
    const { rows } = await this.#pool.query(`SELECT id::text, issuer_key_id, kind, partition FROM regeneration_requests WHERE state = 'PENDING' ORDER BY id LIMIT 100`);
    return rows.map((r) => ({ id: r.id, issuerKeyId: r.issuer_key_id, kind: r.kind, partition: r.partition ?? undefined }));
  }

  async finishRegeneration(id: string, outcome: { crlNumber: bigint } | { error: string }): Promise<void> {
    await this.#pool.query(`UPDATE regeneration_requests SET state = $2, crl_number = $3, error = $4, done_at = clock_timestamp() WHERE id = $1 AND state = 'PENDING'`, [
      id,
      'crlNumber' in outcome ? 'DONE' : 'FAILED',
      'crlNumber' in outcome ? outcome.crlNumber.toString() : null,
      'error' in outcome ? outcome.error : null,
    ]);
  }
}

export type { PoolClient };
