import type { Pool } from 'pg';
import { withTransaction, type Tx } from '@pki/db';
import { acceptEventOnce } from '@pki/outbox';
import type { CertificateState } from '../../domain/certificate-status';

/** A row of the store as the responder reads it back. */
export interface StoredCertificate extends CertificateState {
  responseSha1?: Buffer;
  responseSha256?: Buffer;
  signedSeq?: number;
  changeId: number;
}

/** Pre-produced responses for one certificate, for the status they say. */
export interface SignedResponses {
  serialHex: string;
  statusSeq: number;
  responseSha1?: Buffer;
  responseSha256?: Buffer;
  thisUpdate: Date;
  nextUpdate: Date;
  refreshAt: Date;
}

/**
 * A PostgreSQL snapshot (pg_current_snapshot): transaction ids from `xmax` on had not started,
 * those in `running` were in progress; every other id below `xmax` had completed. Ids as decimal
 * text (xid8: 64 bits, never wrapping).
 */
export interface TransactionSnapshot {
  xmin: string;
  xmax: string;
  running: string[];
}

/** `xmin:xmax:xip,xip,...` as pg_snapshot's text form writes it. */
export function parseSnapshot(text: string): TransactionSnapshot {
  const match = /^(\d+):(\d+):([\d,]*)$/.exec(text);
  if (!match) throw new Error(`not a pg_snapshot: ${text}`);
  return { xmin: match[1]!, xmax: match[2]!, running: match[3] ? match[3].split(',') : [] };
}

/** The NOTIFY channel on which a write of responses wakes every pod's change follower. */
export const CHANGES_CHANNEL = 'ocsp_certificate_changes';

const COLUMNS = `serial_hex, issuer_key_id, status, revocation_time, reason, not_after, status_producer, status_seq, changed_at,
  response_sha1, response_sha256, signed_seq, change_id`;

function rowToCertificate(row: Record<string, unknown>): StoredCertificate {
  return {
    serialHex: row.serial_hex as string,
    issuerKeyId: row.issuer_key_id as string,
    status: row.status as CertificateState['status'],
    ...(row.revocation_time ? { revocationTime: row.revocation_time as Date } : {}),
    reason: Number(row.reason),
    notAfter: row.not_after as Date,
    statusProducer: row.status_producer as string,
    statusSeq: Number(row.status_seq),
    changedAt: row.changed_at as Date,
    ...(row.response_sha1 ? { responseSha1: row.response_sha1 as Buffer } : {}),
    ...(row.response_sha256 ? { responseSha256: row.response_sha256 as Buffer } : {}),
    ...(row.signed_seq !== null && row.signed_seq !== undefined ? { signedSeq: Number(row.signed_seq) } : {}),
    changeId: Number(row.change_id),
  };
}

/**
 * The responder's store in PostgreSQL (ocsp schema): certificate statuses from the events, the
 * responses signed for them, and the CA generations. Shared by every pod.
 */
export class StatusStore {
  constructor(private readonly pool: Pool) {}

  /**
   * Applies one status event exactly once (the consumer position commits with the change): a
   * newer status replaces an older one and makes the row due for signing at once; an older or
   * repeated one changes nothing. Returns the row as it now stands, and whether it changed.
   */
  async applyStatus(consumer: string, event: { producer: string; seq: number }, state: CertificateState): Promise<{ applied: boolean; current?: StoredCertificate }> {
    return withTransaction(this.pool, async (tx) => {
      if (!(await acceptEventOnce(tx, consumer, event))) return { applied: false };
      const { rows } = await tx.query(
        `INSERT INTO certificates (serial_hex, issuer_key_id, status, revocation_time, reason, not_after, status_producer, status_seq, changed_at, refresh_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())
         ON CONFLICT (serial_hex) DO UPDATE SET
           issuer_key_id = EXCLUDED.issuer_key_id, status = EXCLUDED.status, revocation_time = EXCLUDED.revocation_time,
           reason = EXCLUDED.reason, not_after = EXCLUDED.not_after, status_producer = EXCLUDED.status_producer,
           status_seq = EXCLUDED.status_seq, changed_at = EXCLUDED.changed_at, refresh_at = now(),
           change_id = nextval('certificate_change_ids'), change_xid = pg_current_xact_id()
         -- Events of one producer arrive in order; across producers (a new ra deployment), the later change wins.
         WHERE (certificates.status_producer = EXCLUDED.status_producer AND certificates.status_seq < EXCLUDED.status_seq)
            OR (certificates.status_producer <> EXCLUDED.status_producer AND certificates.changed_at < EXCLUDED.changed_at)
         RETURNING ${COLUMNS}`,
        [state.serialHex, state.issuerKeyId, state.status, state.revocationTime ?? null, state.reason, state.notAfter, state.statusProducer, state.statusSeq, state.changedAt],
      );
      if (rows[0]) await tx.query(`SELECT pg_notify($1, '')`, [CHANGES_CHANNEL]);
      return rows[0] ? { applied: true, current: rowToCertificate(rows[0]) } : { applied: false };
    });
  }

  /** Stores responses signed for a status, unless the status moved on meanwhile. */
  async saveResponses(signed: readonly SignedResponses[], tx?: Tx): Promise<number> {
    if (signed.length === 0) return 0;
    const run = async (client: Pick<Tx, 'query'>) => {
      const result = await client.query(
        `UPDATE certificates c SET response_sha1 = s.sha1, response_sha256 = s.sha256, signed_seq = s.seq, this_update = s.this_update,
                next_update = s.next_update, refresh_at = s.refresh_at, change_id = nextval('certificate_change_ids'), change_xid = pg_current_xact_id()
           FROM unnest($1::text[], $2::bigint[], $3::bytea[], $4::bytea[], $5::timestamptz[], $6::timestamptz[], $7::timestamptz[])
                AS s(serial_hex, seq, sha1, sha256, this_update, next_update, refresh_at)
          WHERE c.serial_hex = s.serial_hex AND c.status_seq = s.seq`,
        [
          signed.map((s) => s.serialHex),
          signed.map((s) => s.statusSeq),
          signed.map((s) => s.responseSha1 ?? null),
          signed.map((s) => s.responseSha256 ?? null),
          signed.map((s) => s.thisUpdate),
          signed.map((s) => s.nextUpdate),
          signed.map((s) => s.refreshAt),
        ],
      );
      await client.query(`SELECT pg_notify($1, '')`, [CHANGES_CHANNEL]);
      return result.rowCount ?? 0;
    };
    return tx ? run(tx) : withTransaction(this.pool, run);
  }

  /**
   * Claims up to `limit` rows due for signing (FOR UPDATE SKIP LOCKED: pods share the work without
   * signing a row twice) and hands them to `sign` inside the transaction, whose results are saved
   * before it commits. Rows past the expired-certificate policy lose their responses instead; their
   * serials are given to `sign` too (`expired`), for the caller to drop them at once.
   */
  async signDue(limit: number, retentionDays: number, sign: (rows: StoredCertificate[], tx: Tx, expired: string[]) => Promise<SignedResponses[]>): Promise<number> {
    return withTransaction(this.pool, async (tx) => {
      const cleared = await tx.query<{ serial_hex: string }>(
        `UPDATE certificates SET response_sha1 = NULL, response_sha256 = NULL, signed_seq = NULL, refresh_at = 'infinity',
                change_id = nextval('certificate_change_ids'), change_xid = pg_current_xact_id()
          WHERE serial_hex IN (SELECT serial_hex FROM certificates WHERE refresh_at <= now() AND not_after < now() - make_interval(days => $1)
                               ORDER BY refresh_at LIMIT $2 FOR UPDATE SKIP LOCKED)
          RETURNING serial_hex`,
        [retentionDays, limit],
      );
      const expired = cleared.rows.map((r) => r.serial_hex);
      const { rows } = await tx.query(
        `SELECT ${COLUMNS} FROM certificates WHERE refresh_at <= now() ORDER BY refresh_at LIMIT $1 FOR UPDATE SKIP LOCKED`,
        [limit],
      );
      if (rows.length === 0 && expired.length === 0) return 0;
      const signed = await sign(rows.map(rowToCertificate), tx, expired);
      await this.saveResponses(signed, tx);
      return rows.length;
    });
  }

  /** Postpones rows that could not be signed (issuer without responder, signer refusing), so the updater moves on. */
  async postpone(serials: readonly string[], until: Date): Promise<void> {
    if (serials.length === 0) return;
    await this.pool.query(`UPDATE certificates SET refresh_at = $2 WHERE serial_hex = ANY($1::text[])`, [serials, until]);
  }

  /** Rows changed after `changeId`, oldest change first. */
  async changesSince(changeId: number, limit: number): Promise<StoredCertificate[]> {
    const { rows } = await this.pool.query(`SELECT ${COLUMNS} FROM certificates WHERE change_id > $1 ORDER BY change_id LIMIT $2`, [changeId, limit]);
    return rows.map(rowToCertificate);
  }
  /** Where the database's transactions stand now (pg_current_snapshot): see {@link committedBetween}. */
  async snapshot(): Promise<TransactionSnapshot> {
    const { rows } = await this.pool.query<{ s: string }>(`SELECT pg_current_snapshot()::text AS s`);
    return parseSnapshot(rows[0]!.s);
  }

  /**
   * The rows last changed by the transactions that completed between two snapshots, a page at a
   * time in (transaction, serial) order after `after`: those running at `earlier` and not at
   * `later` first, one transaction at a time, then those that started in between and are no longer
   * running (an index range). Every committed change falls in exactly one such window, in whatever
   * order its change number was taken; a row changed again since appears with its later change.
   * Each page is an ordered index scan, however many rows a transaction changed.
   */
  async committedBetween(earlier: TransactionSnapshot, later: TransactionSnapshot, limit: number, after?: { xid: string; serialHex: string }): Promise<Array<StoredCertificate & { changeXid: string }>> {
    const finished = earlier.running.filter((x) => !later.running.includes(x)).sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1));
    const out: Array<StoredCertificate & { changeXid: string }> = [];
    const page = (rows: Array<Record<string, unknown>>) => out.push(...rows.map((r) => ({ ...rowToCertificate(r), changeXid: r.change_xid as string })));
    for (const xid of finished) {
      if (out.length >= limit) return out;
      if (after && BigInt(xid) < BigInt(after.xid)) continue;
      const from = after && after.xid === xid ? after.serialHex : '';
      const { rows } = await this.pool.query(
        `SELECT ${COLUMNS}, change_xid::text AS change_xid FROM certificates WHERE change_xid = $1::xid8 AND serial_hex > $2 ORDER BY serial_hex LIMIT $3`,
        [xid, from, limit - out.length],
      );
      page(rows);
    }
    if (out.length >= limit) return out;
    // Started after `earlier` (ids from its xmax on) and no longer running at `later`. (Ids of the
    // finished transactions are all below earlier.xmax, so the two parts never overlap.)
    const inRange = after !== undefined && BigInt(after.xid) >= BigInt(earlier.xmax) ? after : { xid: earlier.xmax, serialHex: '' };
    const { rows } = await this.pool.query(
      `SELECT ${COLUMNS}, change_xid::text AS change_xid FROM certificates
        WHERE (change_xid, serial_hex) > ($1::xid8, $2::text) AND change_xid < $3::xid8 AND change_xid <> ALL($4::xid8[])
        ORDER BY change_xid, serial_hex LIMIT $5`,
      [inRange.xid, inRange.serialHex, later.xmax, later.running, limit - out.length],
    );
    page(rows);
    return out;
  }


  async find(serials: readonly string[]): Promise<StoredCertificate[]> {
    const { rows } = await this.pool.query(`SELECT ${COLUMNS} FROM certificates WHERE serial_hex = ANY($1::text[])`, [serials]);
    return rows.map(rowToCertificate);
  }

  async saveIssuers(issuers: ReadonlyArray<{ keyId: string; certificateDer: Uint8Array; responderCertificateDer?: Uint8Array }>): Promise<void> {
    for (const i of issuers) {
      await this.pool.query(
        `INSERT INTO issuers (key_id, certificate_der, ocsp_responder_certificate) VALUES ($1, $2, $3)
         ON CONFLICT (key_id) DO UPDATE SET certificate_der = EXCLUDED.certificate_der, ocsp_responder_certificate = EXCLUDED.ocsp_responder_certificate, updated_at = now()`,
        [i.keyId, Buffer.from(i.certificateDer), i.responderCertificateDer?.length ? Buffer.from(i.responderCertificateDer) : null],
      );
    }
  }

  async loadIssuers(): Promise<Array<{ keyId: string; certificateDer: Buffer; responderCertificateDer?: Buffer }>> {
    const { rows } = await this.pool.query(`SELECT key_id, certificate_der, ocsp_responder_certificate FROM issuers ORDER BY key_id`);
    return rows.map((r) => ({ keyId: r.key_id, certificateDer: r.certificate_der, ...(r.ocsp_responder_certificate ? { responderCertificateDer: r.ocsp_responder_certificate } : {}) }));
  }
}
