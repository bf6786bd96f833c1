import { createHash, createPublicKey, type KeyObject, verify } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Pool, PoolClient } from 'pg';
import { appendAuditEvents, AuditActorType, AuditOutcome } from '@pki/audit-events';
import type { Clock } from '@pki/kit';
import { appendEvents } from '@pki/outbox';
import { Topics } from '@pki/proto';
import { encodeStatusChange, type PersonalDataVault, type VaultKeys } from '@pki/ra';
import * as der from './der';
import {
  type CertificateStatus,
  ExportError,
  fileSha256,
  HEADERS,
  LEGACY_CARD_STATES,
  LEGACY_STATUSES,
  type LegacyStatus,
  type Manifest,
  type ManifestEntry,
  parseLegacyTime,
  type Reason,
  REASON_BY_CODE,
  readLines,
  readManifest,
  STATUS_MAP,
} from './format';
import type { Progress } from './progress';
import { buildReport, type ReconciliationReport } from './report';
import { type CertificateLine, CertificateBatchPreparer, type PreparedBatch } from './certificate-batch';
import { StageWorkers } from './worker-pool';
import { type PreparedSubscribers, SubscriberBatchPreparer, type SubscriberLine } from './subscriber-batch';
import { uuidOf } from './uuid';

/**
 * The importer. Three phases, each restartable:
 *
 * 1. Stage (validate): every file is read once, checked against the manifest, every record
 *    parsed and every certificate verified against its old issuer; certificates and personal data
 *    are sealed as ra seals them (decision 0021) before they leave this process, and land in the
 *    importer's own schema `legacy_import` in ra's database. The whole phase is ONE transaction:
 *    an export with any error commits nothing (the errors are reported with their file and line),
 *    and a kill during it leaves nothing either. Nothing of ra's or card-mgmt's tables is touched
 *    before the whole export has been validated (decision 0030).
 * 2. Reconcile: set-based SQL decides each certificate's final status (the legacy CRL is
 *    authoritative for revocation) and records every disagreement with the rule applied.
 * 3. Apply: subscribers, cards and certificates go into ra, and cards into card-mgmt, in batches;
 *    each batch commits with its checkpoint (and, in ra, its status events in the outbox and an
 *    audit event), so a kill at any point resumes after the last committed batch, and inserts
 *    that find their row already there change nothing (a second run imports nothing twice).
 */
export interface ImportTargets {
  /** ra's database, search_path ra's schema. */
  ra: Pool;
  raSchema: string;
  vault: PersonalDataVault;
  /** The vault's key material, for the worker threads that seal in parallel (without it, sealing stays in this thread). */
  vaultKeys?: VaultKeys;
  /** ra's outbox producers (its config's events.producer and events.auditProducer). */
  statusProducer: string;
  auditProducer: string;
  /** card-mgmt's database, search_path card-mgmt's schema. */
  cardMgmt: Pool;
  cardMgmtSchema: string;
  /** ca-signer's database: the old generations must already be issuer generations there (the ceremony's import-legacy). */
  caSigner?: Pool;
}

export interface ImportOptions {
  dir: string;
  dryRun?: boolean;
  batchSize?: number;
  clock: Clock;
  progress?: Progress;
  /** Stops after this many applied batches (operators: a partial run to watch; tests). */
  maxBatches?: number;
  /** Connections that apply each of ra's stages side by side (default 2: one per core of a small database host). */
  lanes?: number;
  /** The card centre's code for cards without a holder. */
  cardCentre?: string;
}

export interface ImportResult {
  ok: boolean;
  exportId: string;
  errors: Array<{ location: string; problem: string }>;
  report?: ReconciliationReport;
  /** Rows written by this run (0 everywhere for a second run, and for a dry run). */
  written: { subscribers: number; raCards: number; certificates: number; events: number; cardMgmtCards: number };
  phase: 'REFUSED' | 'DRY_RUN' | 'PARTIAL' | 'DONE';
  /** Seconds spent per phase by this run (for the runbook's planning and the benchmark). */
  timings?: Record<string, number>;
}

const MAX_ERRORS = 50;
/** Below every subscriber id (ids are name-based version 8 UUIDs, never nil): the first batch's lower bound. */
const NIL_UUID = '00000000-0000-0000-0000-000000000000';
const STAGING = 'legacy_import';

interface Generation {
  generation: string;
  keyId: string;
  key: KeyObject;
  certificateDer: Buffer;
  crlThisUpdate: Date;
  line: number;
}

export async function importLegacyExport(targets: ImportTargets, options: ImportOptions): Promise<ImportResult> {
  const manifest = await readManifest(options.dir).catch((err: unknown) => err);
  const written = { subscribers: 0, raCards: 0, certificates: 0, events: 0, cardMgmtCards: 0 };
  if (manifest instanceof ExportError) return { ok: false, exportId: '', errors: [{ location: manifest.location, problem: manifest.problem }], written, phase: 'REFUSED' };
  if (!(manifest as Manifest).files) throw manifest;
  const m = manifest as Manifest;
  const timings: Record<string, number> = {};
  let mark = performance.now();
  const lap = (name: string) => {
    const now = performance.now();
    timings[name] = Math.round(now - mark) / 1000;
    mark = now;
  };
  const manifestSha256 = await fileSha256(join(options.dir, 'MANIFEST'));
  await ensureStagingSchema(targets.ra);
  await ensureProgressTable(targets.cardMgmt);

  const run = await targets.ra.query(`SELECT phase, manifest_sha256 FROM ${STAGING}.runs WHERE export_id = $1`, [m.exportId]);
  const stagingIntact = async (pool: Pool, exportId: string) =>
    (await pool.query(`SELECT staged_certificates = (SELECT count(*) FROM ${STAGING}.certificates WHERE export_id = $1) AS ok FROM ${STAGING}.runs WHERE export_id = $1`, [exportId])).rows[0]?.ok === true;
  const existing = run.rows[0] as { phase: string; manifest_sha256: string } | undefined;
  if (existing && existing.manifest_sha256 !== manifestSha256) {
    return { ok: false, exportId: m.exportId, errors: [{ location: 'MANIFEST', problem: `export ${m.exportId} was staged from another manifest (its files changed since): refusing to mix them` }], written, phase: 'REFUSED' };
  }
  // The staging tables are UNLOGGED (no WAL for a copy that is re-made from the export at will):
  // a database crash empties them. A run staged before such a crash is staged again; what was
  // already applied stays, and is not applied twice (every insert is ON CONFLICT DO NOTHING).
  const restage = existing !== undefined && !(await stagingIntact(targets.ra, m.exportId));
  if (!existing || options.dryRun || restage) {
    const client = await targets.ra.connect();
    try {
      await client.query('BEGIN');
      // One long transaction of set-based statements: no statement timeout, and room to sort in memory.
      await client.query("SET LOCAL statement_timeout = 0; SET LOCAL work_mem = '64MB'");
      const errors = await stage(client, targets, options, m, manifestSha256);
      lap('validateAndStage');
      if (errors.length > 0) {
        await client.query('ROLLBACK');
        return { ok: false, exportId: m.exportId, errors, written, phase: 'REFUSED' };
      }
      await reconcile(client, m.exportId);
      lap('reconcile');
      const report = await buildReport(client, m.exportId, options.dryRun ? 'DRY_RUN' : 'STAGED');
      lap('report');
      if (options.dryRun) {
        await client.query('ROLLBACK');
        return { ok: true, exportId: m.exportId, errors: [], report, written, phase: 'DRY_RUN', timings };
      }
      await client.query(
        `UPDATE ${STAGING}.runs SET phase = 'STAGED', staged_certificates = (SELECT count(*) FROM ${STAGING}.certificates WHERE export_id = $1), updated_at = now() WHERE export_id = $1`,
        [m.exportId],
      );
      await client.query('COMMIT');
      lap('commitStaging');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      if (err instanceof ExportError) return { ok: false, exportId: m.exportId, errors: [{ location: err.location, problem: err.problem }], written, phase: 'REFUSED' };
      throw err;
    } finally {
      client.release();
    }
  }
  const preflight = await checkIssuersInCaSigner(targets, m.exportId);
  if (preflight.length > 0) return { ok: false, exportId: m.exportId, errors: preflight, written, phase: 'REFUSED' };

  const finished = await apply(targets, options, m.exportId, written);
  lap('apply');
  const report = await buildReport(targets.ra, m.exportId, finished ? 'DONE' : 'PARTIAL');
  lap('finalReport');
  if (finished) await targets.ra.query(`UPDATE ${STAGING}.runs SET phase = 'DONE', report = $2, updated_at = now() WHERE export_id = $1`, [m.exportId, JSON.stringify(report.summary)]);
  return { ok: true, exportId: m.exportId, errors: [], report, written, phase: finished ? 'DONE' : 'PARTIAL', timings };
}

async function ensureStagingSchema(pool: Pool): Promise<void> {
  // The importer's own schema: staging rows, the run's checkpoints and its disagreements. It
  // holds no personal data in clear (fields are sealed before they are staged).
  await pool.query(`
    CREATE SCHEMA IF NOT EXISTS ${STAGING};
    CREATE TABLE IF NOT EXISTS ${STAGING}.runs (
      export_id text PRIMARY KEY, manifest_sha256 text NOT NULL, phase text NOT NULL, stage text NOT NULL DEFAULT 'subscribers',
      staged_certificates integer, report jsonb, started_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now());
    CREATE TABLE IF NOT EXISTS ${STAGING}.generations (
      export_id text NOT NULL, generation text NOT NULL, key_id text NOT NULL, crl_this_update timestamptz NOT NULL, certificate_der bytea NOT NULL, PRIMARY KEY (export_id, generation));
    CREATE UNLOGGED TABLE IF NOT EXISTS ${STAGING}.certificates (
      export_id text NOT NULL, serial_hex text NOT NULL, generation text NOT NULL, issuer_key_id text NOT NULL, not_before timestamptz NOT NULL, not_after timestamptz NOT NULL,
      subject_serial text, spki bytea NOT NULL, der_sha256 bytea NOT NULL, sealed bytea NOT NULL, pd_key_id text NOT NULL, line integer NOT NULL, PRIMARY KEY (export_id, serial_hex));
    CREATE UNLOGGED TABLE IF NOT EXISTS ${STAGING}.status (
      export_id text NOT NULL, serial_hex text NOT NULL, legacy_status text NOT NULL, status_time timestamptz NOT NULL, line integer NOT NULL, PRIMARY KEY (export_id, serial_hex));
    CREATE UNLOGGED TABLE IF NOT EXISTS ${STAGING}.status_lines (
      export_id text NOT NULL, serial_hex text NOT NULL, legacy_status text NOT NULL, status_time timestamptz NOT NULL, line integer NOT NULL);
    CREATE UNLOGGED TABLE IF NOT EXISTS ${STAGING}.crl_entries (
      export_id text NOT NULL, serial_hex text NOT NULL, generation text NOT NULL, revocation_time timestamptz NOT NULL, reason_code smallint, PRIMARY KEY (export_id, serial_hex));
    CREATE UNLOGGED TABLE IF NOT EXISTS ${STAGING}.subscribers (
      export_id text NOT NULL, subscriber_id uuid NOT NULL, person_ref text NOT NULL, lookup_key_id text NOT NULL, national_id_lookup bytea NOT NULL, pd_key_id text NOT NULL,
      national_id_sealed bytea NOT NULL, name_sealed bytea NOT NULL, birth_date_sealed bytea NOT NULL, email_sealed bytea, id_kind text NOT NULL, gender text NOT NULL,
      publication_consent boolean NOT NULL, code_hash text NOT NULL, office text NOT NULL, location text NOT NULL, PRIMARY KEY (export_id, subscriber_id));
    CREATE UNLOGGED TABLE IF NOT EXISTS ${STAGING}.subscriber_ids (
      export_id text NOT NULL, legacy_id text NOT NULL, subscriber_id uuid NOT NULL, PRIMARY KEY (export_id, legacy_id));
    CREATE UNLOGGED TABLE IF NOT EXISTS ${STAGING}.cards (
      export_id text NOT NULL, card_number text NOT NULL, legacy_subscriber_id text NOT NULL, legacy_state text NOT NULL, office text NOT NULL,
      sign_serial text NOT NULL, keyx_serial text NOT NULL, issued_at timestamptz NOT NULL, line integer NOT NULL, PRIMARY KEY (export_id, card_number));
    CREATE INDEX IF NOT EXISTS certificates_by_line ON ${STAGING}.certificates (export_id, line);
    CREATE UNLOGGED TABLE IF NOT EXISTS ${STAGING}.card_keys (
      export_id text NOT NULL, card_number text NOT NULL, subscriber_id uuid NOT NULL, sign_spki bytea NOT NULL, keyx_spki bytea NOT NULL, subject_serial text,
      not_after timestamptz NOT NULL, sign_status text NOT NULL, keyx_status text NOT NULL, PRIMARY KEY (export_id, card_number));
    CREATE UNLOGGED TABLE IF NOT EXISTS ${STAGING}.final (
      export_id text NOT NULL, serial_hex text NOT NULL, status text NOT NULL, reason text, revocation_time timestamptz, card_number text, key_slot text NOT NULL,
      PRIMARY KEY (export_id, serial_hex));
    CREATE TABLE IF NOT EXISTS ${STAGING}.lanes (
      export_id text NOT NULL, stage text NOT NULL, lane integer NOT NULL, high text, position text NOT NULL, done boolean NOT NULL DEFAULT false,
      batches integer NOT NULL DEFAULT 0, updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (export_id, stage, lane));
    CREATE TABLE IF NOT EXISTS ${STAGING}.disagreements (
      export_id text NOT NULL, kind text NOT NULL, subject text NOT NULL, location text NOT NULL, detail text NOT NULL, rule text NOT NULL);
    CREATE INDEX IF NOT EXISTS disagreements_by_export ON ${STAGING}.disagreements (export_id, kind);
  `);
}

async function ensureProgressTable(pool: Pool): Promise<void> {
  await pool.query(`CREATE SCHEMA IF NOT EXISTS ${STAGING};
    CREATE TABLE IF NOT EXISTS ${STAGING}.progress (export_id text PRIMARY KEY, position text NOT NULL, batches integer NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())`);
}

// --- phase 1: stage -----------------------------------------------------------------------------

class Errors {
  readonly list: Array<{ location: string; problem: string }> = [];
  add(location: string, problem: string): void {
    if (this.list.length < MAX_ERRORS) this.list.push({ location, problem });
  }
  get full(): boolean {
    return this.list.length >= MAX_ERRORS;
  }
}

/** Multi-row INSERT through unnest(): one round trip and one plan per batch. */
async function insertRows(client: PoolClient, table: string, columns: Array<[string, string]>, rows: unknown[][], conflict = 'ON CONFLICT DO NOTHING'): Promise<number> {
  if (rows.length === 0) return 0;
  const params = columns.map((_, c) => rows.map((r) => r[c]));
  const result = await client.query(
    `INSERT INTO ${STAGING}.${table} (${columns.map(([n]) => n).join(', ')}) SELECT * FROM unnest(${columns.map(([, t], i) => `$${i + 1}::${t}[]`).join(', ')}) ${conflict}`,
    params,
  );
  return result.rowCount ?? 0;
}

async function stage(client: PoolClient, targets: ImportTargets, options: ImportOptions, m: Manifest, manifestSha256: string): Promise<Array<{ location: string; problem: string }>> {
  const errors = new Errors();
  const exportId = m.exportId;
  const dir = options.dir;
  const progress = options.progress;
  const entries = (kind: ManifestEntry['kind']) => m.files.filter((f) => f.kind === kind);
  const one = (kind: ManifestEntry['kind']) => {
    const found = entries(kind);
    if (found.length !== 1) throw new ExportError('MANIFEST', `expected exactly one ${kind} file, found ${found.length}`);
    return found[0]!;
  };
  const binary = async (entry: ManifestEntry): Promise<Buffer> => {
    const bytes = await readFile(join(dir, entry.file)).catch(() => undefined);
    if (!bytes) throw new ExportError(entry.file, 'missing or unreadable');
    if (createHash('sha256').update(bytes).digest('hex') !== entry.sha256) throw new ExportError(entry.file, 'SHA-256 differs from the manifest (file cut short or altered)');
    return bytes;
  };
  const byFile = new Map(m.files.map((f) => [f.file, f]));
  const hashed = async function* (entry: ManifestEntry, header: readonly string[]) {
    const hash = createHash('sha256');
    yield* readLines(join(dir, entry.file), entry, header, hash);
    if (hash.digest('hex') !== entry.sha256) throw new ExportError(entry.file, 'SHA-256 differs from the manifest (file altered)');
  };

  for (const table of ['generations', 'certificates', 'status_lines', 'status', 'crl_entries', 'subscribers', 'subscriber_ids', 'cards', 'card_keys', 'final', 'disagreements']) {
    await client.query(`DELETE FROM ${STAGING}.${table} WHERE export_id = $1`, [exportId]);
  }
  // A re-staged run keeps its apply checkpoint: batches already committed are skipped again.
  await client.query(
    `INSERT INTO ${STAGING}.runs (export_id, manifest_sha256, phase) VALUES ($1, $2, 'STAGING') ON CONFLICT (export_id) DO UPDATE SET phase = 'STAGING', updated_at = now()`,
    [exportId, manifestSha256],
  );
  const disagree = (rows: unknown[][]) =>
    insertRows(client, 'disagreements', [['export_id', 'text'], ['kind', 'text'], ['subject', 'text'], ['location', 'text'], ['detail', 'text'], ['rule', 'text']], rows, '');

  // --- generations: CA certificates and the last CRL of each ---
  const generations = new Map<string, Generation>();
  const rootEntry = byFile.get('ca/ROOT.cer');
  const root = rootEntry ? await binary(rootEntry) : undefined;
  const rootKey = root ? createPublicKey({ key: der.readCertificate(root).spki, format: 'der', type: 'spki' }) : undefined;
  for await (const { line, fields } of hashed(one('generations'), HEADERS.generations)) {
    const [generation, caFile, crlFile] = fields as [string, string, string, string];
    const where = `generations.tsv:${line}`;
    const caEntry = byFile.get(caFile);
    const crlEntry = byFile.get(crlFile);
    if (!caEntry || caEntry.kind !== 'ca-certificate') throw new ExportError(where, `${caFile} is not a CA certificate listed in the manifest`);
    if (!crlEntry || crlEntry.kind !== 'crl') throw new ExportError(where, `${crlFile} is not a CRL listed in the manifest`);
    const caDer = await binary(caEntry);
    let ca: der.CertificateFields;
    try {
      ca = der.readCertificate(caDer);
    } catch (err) {
      throw new ExportError(caFile, `not a DER certificate (${(err as Error).message})`);
    }
    if (rootKey && !verify('sha256', ca.tbs, rootKey, ca.signature)) throw new ExportError(caFile, 'its signature does not verify against the legacy root (ca/ROOT.cer)');
    const keyId = der.subjectKeyId(caDer);
    if (!keyId) throw new ExportError(caFile, 'no subjectKeyIdentifier: generations sharing one DN are told apart by it');
    const key = createPublicKey({ key: ca.spki, format: 'der', type: 'spki' });
    const crlDer = await binary(crlEntry);
    let crl: ReturnType<typeof der.readCrlLazily>;
    try {
      crl = der.readCrlLazily(crlDer);
    } catch (err) {
      throw new ExportError(crlFile, `not a DER CRL (${(err as Error).message})`);
    }
    if (crl.authorityKeyId !== undefined && crl.authorityKeyId !== keyId) {
      throw new ExportError(crlFile, `issued by key ${crl.authorityKeyId}, not by generation ${generation} (${keyId}): a CRL from another issuer`);
    }
    if (!crl.issuer.equals(readSubject(caDer)) || !verify('sha256', crl.tbs, key, crl.signature)) {
      throw new ExportError(crlFile, `not signed by generation ${generation}'s key: a CRL from another issuer`);
    }
    generations.set(generation, { generation, keyId, key, certificateDer: caDer, crlThisUpdate: crl.thisUpdate, line });
    await client.query(`INSERT INTO ${STAGING}.generations (export_id, generation, key_id, crl_this_update, certificate_der) VALUES ($1, $2, $3, $4, $5)`, [exportId, generation, keyId, crl.thisUpdate, caDer]);
    // The entries are read as they are staged, 10,000 at a time (a CRL may list hundreds of thousands).
    let part: unknown[][] = [];
    const flushEntries = async () => {
      const inserted = await insertRows(client, 'crl_entries', [['export_id', 'text'], ['serial_hex', 'text'], ['generation', 'text'], ['revocation_time', 'timestamptz'], ['reason_code', 'smallint']], part);
      if (inserted !== part.length) throw new ExportError(crlFile, 'lists a serial twice, or a serial another generation\'s CRL lists');
      part = [];
    };
    try {
      for (const e of crl.entries) {
        part.push([exportId, e.serialHex, generation, e.revocationDate, e.reasonCode ?? null]);
        if (part.length >= 10_000) await flushEntries();
      }
    } catch (err) {
      if (err instanceof der.DerError) throw new ExportError(crlFile, `not a DER CRL (${err.message})`);
      throw err;
    }
    await flushEntries();
  }

  // --- certificates: parse, verify against the old issuer, seal ---
  const certEntry = one('certificates');
  const total = m.files.filter((f) => f.encoding !== 'binary').reduce((n, f) => n + f.records, 0);
  progress?.start('validate and stage', total);
  // Batches of lines go to worker threads (one per core) for the CPU work; this thread reads,
  // inserts and keeps at most `DEPTH` batches in flight, so memory stays bounded.
  const issuerKeys = [...generations.values()].map((g) => ({ keyId: g.keyId, generation: g.generation, spki: Buffer.from(g.key.export({ format: 'der', type: 'spki' })) }));
  const workers = targets.vaultKeys && StageWorkers.available() ? new StageWorkers(targets.vaultKeys, issuerKeys, exportId, options.clock.now()) : undefined;
  try {
    const inline = new CertificateBatchPreparer(issuerKeys, targets.vault, exportId);
    const DEPTH = 3;
    const queue: Array<Promise<PreparedBatch>> = [];
    let lines: CertificateLine[] = [];
    const insertPrepared = async (prepared: PreparedBatch) => {
      for (const e of prepared.errors) errors.add(e.location, e.problem);
      const rows = prepared.rows;
      const found: unknown[][] = prepared.duplicates.map((d) => [exportId, 'duplicate-certificate', d.serialHex, `certificates.txt:${d.line}`, `the same certificate as line ${d.firstLine}`, 'imported once']);
      if (errors.list.length > 0) return; // nothing will be kept: spare the database
      const inserted = await client.query(
        `INSERT INTO ${STAGING}.certificates (export_id, serial_hex, generation, issuer_key_id, not_before, not_after, subject_serial, spki, der_sha256, sealed, pd_key_id, line)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[], $7::text[], $8::bytea[], $9::bytea[], $10::bytea[], $11::text[], $12::int[])
         ON CONFLICT DO NOTHING RETURNING serial_hex`,
        Array.from({ length: 12 }, (_, c) => rows.map((r) => r[c])),
      );
      if (inserted.rowCount !== rows.length) {
        // Serials staged by an earlier batch: the same certificate again is a duplicate, another certificate under the same serial is an error.
        const fresh = new Set(inserted.rows.map((r: { serial_hex: string }) => r.serial_hex));
        const again = rows.filter((r) => !fresh.has(r[1] as string));
        const { rows: earlier } = await client.query(`SELECT serial_hex, der_sha256, line FROM ${STAGING}.certificates WHERE export_id = $1 AND serial_hex = ANY($2)`, [exportId, again.map((r) => r[1])]);
        const known = new Map(earlier.map((r: { serial_hex: string; der_sha256: Buffer; line: number }) => [r.serial_hex, r]));
        for (const r of again) {
          const first = known.get(r[1] as string)!;
          if ((first.der_sha256 as Buffer).equals(r[8] as Buffer)) found.push([exportId, 'duplicate-certificate', r[1], `certificates.txt:${r[11]}`, `the same certificate as line ${first.line}`, 'imported once']);
          else errors.add(`certificates.txt:${r[11]}`, `serial ${r[1]} is also line ${first.line}, with another certificate`);
        }
      }
      await disagree(found);
    };
    const dispatch = () => {
      const batchLines = lines;
      lines = [];
      queue.push(workers ? workers.prepare(batchLines) : Promise.resolve().then(() => inline.prepare(batchLines)));
    };
    try {
      for await (const { line, fields } of hashed(certEntry, HEADERS.certificates)) {
        progress?.tick();
        lines.push({ line, serial: fields[0]!, b64: fields[1]! });
        if (lines.length >= 2000) {
          dispatch();
          if (queue.length >= DEPTH) await insertPrepared(await queue.shift()!);
          if (errors.full) break;
        }
      }
      if (lines.length > 0) dispatch();
      while (queue.length > 0) await insertPrepared(await queue.shift()!);
    } finally {
      await Promise.allSettled(queue);
    }

    // --- status table ---
    // Every line is staged as it is (an append, no index), and the winners and the duplicates are
    // picked once at the end, set-based: looking each batch up against everything staged before it
    // was quadratic in the export's size.
    let statusRows: unknown[][] = [];
    const flushStatus = async () => {
      const rows = statusRows;
      statusRows = [];
      if (errors.list.length > 0) return; // nothing will be kept: spare the database
      await insertRows(client, 'status_lines', [['export_id', 'text'], ['serial_hex', 'text'], ['legacy_status', 'text'], ['status_time', 'timestamptz'], ['line', 'int']], rows, '');
    };
    for await (const { line, fields } of hashed(one('status'), HEADERS.status)) {
      progress?.tick();
      const [serial, status, time] = fields as [string, string, string];
      const where = `status.tsv:${line}`;
      if (!(LEGACY_STATUSES as readonly string[]).includes(status)) {
        errors.add(where, `unknown status value '${status}' (expected one of ${LEGACY_STATUSES.join(', ')})`);
        if (errors.full) break;
        continue;
      }
      const at = parseLegacyTime(time);
      if (!at) {
        errors.add(where, `status_time '${time}' is not YYYY/MM/DD HH:MM:SS`);
        continue;
      }
      if (!/^[0-9a-f]{1,40}$/.test(serial)) {
        errors.add(where, 'serial must be lower-case hex');
        continue;
      }
      statusRows.push([exportId, serial, status, at, line]);
      if (statusRows.length >= 5000) await flushStatus();
    }
    if (!errors.full) await flushStatus();
    if (errors.list.length === 0) {
      // A serial twice: the later change wins (the table is a log the old system appended to);
      // every later line of a serial is reported against its first line.
      await client.query(
        `INSERT INTO ${STAGING}.status (export_id, serial_hex, legacy_status, status_time, line)
         SELECT DISTINCT ON (serial_hex) export_id, serial_hex, legacy_status, status_time, line FROM ${STAGING}.status_lines WHERE export_id = $1
         ORDER BY serial_hex, status_time DESC, line DESC`,
        [exportId],
      );
      await client.query(
        `INSERT INTO ${STAGING}.disagreements (export_id, kind, subject, location, detail, rule)
         SELECT export_id, 'duplicate-status', serial_hex, 'status.tsv:' || line, 'also line ' || first_line, 'the later status time wins'
           FROM (SELECT export_id, serial_hex, line, min(line) OVER (PARTITION BY serial_hex) AS first_line FROM ${STAGING}.status_lines WHERE export_id = $1) l
          WHERE line <> first_line`,
        [exportId],
      );
    }

    // --- subscribers: personal data validated, then sealed with ra's keys before staging ---
    // Like the certificates: batches sealed in the worker threads, inserted here in file order (so
    // the first of two lines with one national ID is the one kept, as in a single-threaded run).
    const inlineSubscribers = new SubscriberBatchPreparer(targets.vault, options.clock.now());
    const insertSubscribers = async ({ rows, ids, errors: problems }: PreparedSubscribers) => {
      for (const e of problems) errors.add(e.location, e.problem);
      if (errors.list.length > 0 || rows.length === 0) return; // nothing will be kept: spare the database
      const inserted = await client.query(
        `INSERT INTO ${STAGING}.subscribers (export_id, subscriber_id, person_ref, lookup_key_id, national_id_lookup, pd_key_id, national_id_sealed, name_sealed, birth_date_sealed,
           email_sealed, id_kind, gender, publication_consent, code_hash, office, location)
         SELECT DISTINCT ON (subscriber_id) $1::text, subscriber_id, person_ref, lookup_key_id, national_id_lookup, pd_key_id, national_id_sealed, name_sealed, birth_date_sealed,
           email_sealed, id_kind, gender, publication_consent, code_hash, office, location
         FROM unnest($2::uuid[], $3::text[], $4::text[], $5::bytea[], $6::text[], $7::bytea[], $8::bytea[], $9::bytea[], $10::bytea[], $11::text[], $12::text[],
           $13::boolean[], $14::text[], $15::text[], $16::text[]) WITH ORDINALITY AS t(subscriber_id, person_ref, lookup_key_id, national_id_lookup, pd_key_id, national_id_sealed,
           name_sealed, birth_date_sealed, email_sealed, id_kind, gender, publication_consent, code_hash, office, location, n)
         ORDER BY subscriber_id, n
         ON CONFLICT DO NOTHING RETURNING subscriber_id, location`,
        [exportId, ...Array.from({ length: 15 }, (_, c) => rows.map((r) => r[c]))],
      );
      const kept = new Set(inserted.rows.map((r: { location: string }) => r.location));
      const merged = rows.filter((r) => !kept.has(r[14] as string));
      if (merged.length) {
        const { rows: firsts } = await client.query(`SELECT subscriber_id, location FROM ${STAGING}.subscribers WHERE export_id = $1 AND subscriber_id = ANY($2::uuid[])`, [exportId, merged.map((r) => r[0])]);
        const firstOf = new Map(firsts.map((f: { subscriber_id: string; location: string }) => [f.subscriber_id, f.location]));
        await disagree(merged.map((r) => [exportId, 'duplicate-subscriber', r[1], r[14], `the same national ID as ${firstOf.get(r[0] as string)}`, 'merged into one subscriber; both legacy ids lead to it']));
      }
      const idInserted = await insertRows(client, 'subscriber_ids', [['export_id', 'text'], ['legacy_id', 'text'], ['subscriber_id', 'uuid']], ids.map(([legacy, id]) => [exportId, legacy, id]));
      if (idInserted !== ids.length) errors.add('subscribers', 'a legacy subscriber id is used twice');
    };
    const pendingSubscribers: Array<Promise<PreparedSubscribers>> = [];
    let subscriberLines: SubscriberLine[] = [];
    const dispatchSubscribers = () => {
      const batch = subscriberLines;
      subscriberLines = [];
      pendingSubscribers.push(workers ? workers.prepareSubscribers(batch) : Promise.resolve().then(() => inlineSubscribers.prepare(batch)));
    };
    try {
      reading: for (const entry of entries('subscribers')) {
        for await (const { line, fields } of hashed(entry, HEADERS.subscribers)) {
          progress?.tick();
          subscriberLines.push({ where: `${entry.file}:${line}`, fields });
          if (subscriberLines.length >= 2000) {
            dispatchSubscribers();
            if (pendingSubscribers.length >= DEPTH) await insertSubscribers(await pendingSubscribers.shift()!);
            if (errors.full) break reading;
          }
        }
      }
      if (subscriberLines.length > 0 && !errors.full) dispatchSubscribers();
      while (pendingSubscribers.length > 0) await insertSubscribers(await pendingSubscribers.shift()!);
    } finally {
      await Promise.allSettled(pendingSubscribers);
    }
  } finally {
    await workers?.close();
  }

  // --- cards ---
  let cardRows: unknown[][] = [];
  const flushCards = async () => {
    const inserted = await insertRows(
      client,
      'cards',
      [['export_id', 'text'], ['card_number', 'text'], ['legacy_subscriber_id', 'text'], ['legacy_state', 'text'], ['office', 'text'], ['sign_serial', 'text'], ['keyx_serial', 'text'], ['issued_at', 'timestamptz'], ['line', 'int']],
      cardRows,
    );
    if (inserted !== cardRows.length) errors.add('cards.tsv', 'a card number is listed twice');
    cardRows = [];
  };
  for await (const { line, fields } of hashed(one('cards'), HEADERS.cards)) {
    progress?.tick();
    const where = `cards.tsv:${line}`;
    const [cardNumber, legacyId, state, office, sign, keyx, issued] = fields as [string, string, string, string, string, string, string];
    const at = parseLegacyTime(issued);
    if (!/^[A-Z0-9]{8,32}$/.test(cardNumber)) errors.add(where, 'card_number must be 8-32 capital letters or digits');
    else if (!(LEGACY_CARD_STATES as readonly string[]).includes(state)) errors.add(where, `unknown card state '${state}' (expected one of ${LEGACY_CARD_STATES.join(', ')})`);
    else if (!at) errors.add(where, `issued_at '${issued}' is not YYYY/MM/DD HH:MM:SS`);
    else cardRows.push([exportId, cardNumber, legacyId, state, office, sign, keyx, at, line]);
    if (errors.full) break;
    if (cardRows.length >= 5000) await flushCards();
  }
  if (!errors.full) await flushCards();
  progress?.done();
  return errors.list;
}

/** The subject Name's DER of a certificate (a CRL's issuer must be it). */
function readSubject(certificate: Buffer): Buffer {
  const outer = der.readElement(certificate, 0);
  const fields = der.children(certificate, der.children(certificate, outer)[0]!);
  const subject = fields[fields[0]!.tag === 0xa0 ? 5 : 4]!;
  return certificate.subarray(subject.start, subject.end);
}

export { uuidOf };

// --- phase 2: reconcile -------------------------------------------------------------------------

/** SQL for the rules; every rule also writes its disagreement rows (decision 0030 lists them). */
async function reconcile(client: PoolClient, exportId: string): Promise<void> {
  const statusCase = (column: string, part: 'status' | 'reason') =>
    `CASE ${column} ${LEGACY_STATUSES.map((s) => `WHEN '${s}' THEN ${part === 'status' ? `'${STATUS_MAP[s].status}'` : STATUS_MAP[s].reason ? `'${STATUS_MAP[s].reason}'` : 'NULL'}`).join(' ')} END`;
  const reasonOf = `CASE e.reason_code ${[...REASON_BY_CODE].map(([code, name]) => `WHEN ${code} THEN '${name}'`).join(' ')} ELSE 'unspecified' END`;
  const q = (sql: string) => client.query(sql, [exportId]);
  // Statistics for the rows just staged (in this transaction): without them the planner takes the
  // staging tables for empty and joins them by nested loops, quadratic in the export's size.
  await client.query(`ANALYZE ${STAGING}.certificates, ${STAGING}.status, ${STAGING}.crl_entries, ${STAGING}.cards, ${STAGING}.subscriber_ids, ${STAGING}.generations`);
  // Which card and key slot each certificate belongs to; a card whose subscriber is missing keeps its certificates without the link.
  await q(`
    INSERT INTO ${STAGING}.final (export_id, serial_hex, status, reason, revocation_time, card_number, key_slot)
    SELECT c.export_id, c.serial_hex,
      CASE
        WHEN e.serial_hex IS NOT NULL THEN CASE WHEN e.reason_code = 6 THEN 'SUSPENDED' ELSE 'REVOKED' END
        WHEN s.serial_hex IS NOT NULL AND s.status_time > g.crl_this_update THEN ${statusCase('s.legacy_status', 'status')}
        ELSE 'VALID' END,
      CASE
        WHEN e.serial_hex IS NOT NULL THEN ${reasonOf}
        WHEN s.serial_hex IS NOT NULL AND s.status_time > g.crl_this_update THEN ${statusCase('s.legacy_status', 'reason')}
        END,
      CASE
        WHEN e.serial_hex IS NOT NULL THEN e.revocation_time
        WHEN s.serial_hex IS NOT NULL AND s.status_time > g.crl_this_update AND ${statusCase('s.legacy_status', 'status')} <> 'VALID' THEN s.status_time
        END,
      CASE WHEN si.subscriber_id IS NOT NULL THEN k.card_number END,
      coalesce(k.slot, 'SIGN')
    FROM ${STAGING}.certificates c
    JOIN ${STAGING}.generations g ON g.export_id = c.export_id AND g.generation = c.generation
    LEFT JOIN ${STAGING}.crl_entries e ON e.export_id = c.export_id AND e.serial_hex = c.serial_hex
    LEFT JOIN ${STAGING}.status s ON s.export_id = c.export_id AND s.serial_hex = c.serial_hex
    LEFT JOIN (SELECT DISTINCT ON (serial_hex) * FROM (
                 SELECT card_number, legacy_subscriber_id, sign_serial AS serial_hex, 'SIGN' AS slot FROM ${STAGING}.cards WHERE export_id = $1
                 UNION ALL SELECT card_number, legacy_subscriber_id, keyx_serial, 'KEYX' FROM ${STAGING}.cards WHERE export_id = $1) slots
               ORDER BY serial_hex, card_number) k ON k.serial_hex = c.serial_hex
    LEFT JOIN ${STAGING}.subscriber_ids si ON si.export_id = c.export_id AND si.legacy_id = k.legacy_subscriber_id
    WHERE c.export_id = $1`);
  await client.query(`ANALYZE ${STAGING}.final`);
  await q(`
    INSERT INTO ${STAGING}.disagreements (export_id, kind, subject, location, detail, rule)
    SELECT c.export_id, 'status-vs-crl', c.serial_hex, 'status.tsv:' || s.line,
      'status table: ' || s.legacy_status || ' at ' || to_char(s.status_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') || '; ' || c.generation || ' CRL: ' ||
        CASE WHEN e.serial_hex IS NULL THEN 'not listed' ELSE 'listed (reason ' || coalesce(e.reason_code::text, 'none') || ')' END,
      CASE WHEN e.serial_hex IS NULL AND s.status_time > g.crl_this_update THEN 'changed after the last CRL: the status table is newer and is kept'
           ELSE 'the legacy CRL is authoritative for revocation' END
    FROM ${STAGING}.certificates c
    JOIN ${STAGING}.generations g ON g.export_id = c.export_id AND g.generation = c.generation
    JOIN ${STAGING}.status s ON s.export_id = c.export_id AND s.serial_hex = c.serial_hex
    LEFT JOIN ${STAGING}.crl_entries e ON e.export_id = c.export_id AND e.serial_hex = c.serial_hex
    WHERE c.export_id = $1 AND (
      (e.serial_hex IS NULL AND ${statusCase('s.legacy_status', 'status')} <> 'VALID') OR
      (e.serial_hex IS NOT NULL AND ${statusCase('s.legacy_status', 'status')} <> CASE WHEN e.reason_code = 6 THEN 'SUSPENDED' ELSE 'REVOKED' END))`);
  await q(`
    INSERT INTO ${STAGING}.disagreements (export_id, kind, subject, location, detail, rule)
    SELECT c.export_id, 'missing-status', c.serial_hex, 'certificates.txt:' || c.line, 'no row in the status table', 'status from the CRL (valid when not listed)'
    FROM ${STAGING}.certificates c WHERE c.export_id = $1 AND NOT EXISTS (SELECT 1 FROM ${STAGING}.status s WHERE s.export_id = c.export_id AND s.serial_hex = c.serial_hex)`);
  await q(`
    INSERT INTO ${STAGING}.disagreements (export_id, kind, subject, location, detail, rule)
    SELECT s.export_id, 'status-without-certificate', s.serial_hex, 'status.tsv:' || s.line, 'no such certificate in the export', 'ignored'
    FROM ${STAGING}.status s WHERE s.export_id = $1 AND NOT EXISTS (SELECT 1 FROM ${STAGING}.final c WHERE c.export_id = s.export_id AND c.serial_hex = s.serial_hex)`);
  await q(`
    INSERT INTO ${STAGING}.disagreements (export_id, kind, subject, location, detail, rule)
    SELECT e.export_id, 'crl-entry-without-certificate', e.serial_hex, 'crl/' || e.generation || '.crl', 'listed on the CRL, absent from the certificates', 'reported; cannot be answered for without the certificate'
    FROM ${STAGING}.crl_entries e WHERE e.export_id = $1 AND NOT EXISTS (SELECT 1 FROM ${STAGING}.final c WHERE c.export_id = e.export_id AND c.serial_hex = e.serial_hex)`);
  await q(`
    INSERT INTO ${STAGING}.disagreements (export_id, kind, subject, location, detail, rule)
    SELECT k.export_id, 'missing-subscriber', k.card_number, 'cards.tsv:' || k.line, 'subscriber ' || k.legacy_subscriber_id || ' is not in the subscriber files',
      'certificates imported with their status and without a card link; the card goes to card-mgmt without a holder'
    FROM ${STAGING}.cards k WHERE k.export_id = $1 AND NOT EXISTS (SELECT 1 FROM ${STAGING}.subscriber_ids si WHERE si.export_id = k.export_id AND si.legacy_id = k.legacy_subscriber_id)`);
  await q(`
    INSERT INTO ${STAGING}.disagreements (export_id, kind, subject, location, detail, rule)
    SELECT k.export_id, 'card-certificate-missing', k.card_number, 'cards.tsv:' || k.line, 'a certificate of the card is not in the export', 'card not imported'
    FROM ${STAGING}.cards k
    LEFT JOIN ${STAGING}.final s ON s.export_id = k.export_id AND s.serial_hex = k.sign_serial
    LEFT JOIN ${STAGING}.final x ON x.export_id = k.export_id AND x.serial_hex = k.keyx_serial
    WHERE k.export_id = $1 AND (s.serial_hex IS NULL OR x.serial_hex IS NULL)`);
  // Such a card is not imported: its certificate that is there goes in without the card link.
  await q(`
    UPDATE ${STAGING}.final f SET card_number = NULL
      FROM ${STAGING}.disagreements d
     WHERE d.export_id = $1 AND d.kind = 'card-certificate-missing' AND f.export_id = $1 AND f.card_number = d.subject`);
  // What ra's cards need from their two certificates, gathered once by hash joins and stored in
  // card order: the apply then reads it sequentially instead of looking up two certificates per
  // card at random in the (wide, larger than memory) staged certificates.
  await q(`
    INSERT INTO ${STAGING}.card_keys (export_id, card_number, subscriber_id, sign_spki, keyx_spki, subject_serial, not_after, sign_status, keyx_status)
    SELECT k.export_id, k.card_number, si.subscriber_id, sc.spki, xc.spki, sc.subject_serial, sc.not_after, sf.status, xf.status
      FROM ${STAGING}.cards k
      JOIN ${STAGING}.subscriber_ids si ON si.export_id = k.export_id AND si.legacy_id = k.legacy_subscriber_id
      JOIN ${STAGING}.certificates sc ON sc.export_id = k.export_id AND sc.serial_hex = k.sign_serial
      JOIN ${STAGING}.certificates xc ON xc.export_id = k.export_id AND xc.serial_hex = k.keyx_serial
      JOIN ${STAGING}.final sf ON sf.export_id = k.export_id AND sf.serial_hex = k.sign_serial
      JOIN ${STAGING}.final xf ON xf.export_id = k.export_id AND xf.serial_hex = k.keyx_serial
     WHERE k.export_id = $1
     ORDER BY k.card_number`);
  await client.query(`ANALYZE ${STAGING}.card_keys`);
}

// --- preflight: the generations must exist in ca-signer -------------------------------------------

async function checkIssuersInCaSigner(targets: ImportTargets, exportId: string): Promise<Array<{ location: string; problem: string }>> {
  if (!targets.caSigner) return [];
  const { rows: generations } = await targets.ra.query(`SELECT generation, key_id FROM ${STAGING}.generations WHERE export_id = $1 ORDER BY generation`, [exportId]);
  const { rows: issuers } = await targets.caSigner.query(`SELECT key_id FROM issuers WHERE key_id = ANY($1)`, [generations.map((g: { key_id: string }) => g.key_id)]);
  const known = new Set(issuers.map((i: { key_id: string }) => i.key_id));
  return generations
    .filter((g: { key_id: string }) => !known.has(g.key_id))
    .map((g: { generation: string; key_id: string }) => ({
      location: 'generations.tsv',
      problem: `generation ${g.generation} (key ${g.key_id}) is not an issuer generation in ca-signer: import its key first (pki ceremony import-legacy), or OCSP and CRLs for its certificates would have no signer`,
    }));
}

// --- phase 3: apply -----------------------------------------------------------------------------

type Stage = 'subscribers' | 'ra-cards' | 'certificates' | 'card-mgmt' | 'done';

/** What one batch of a stage did: the last key it covered (undefined: its lane is finished). */
interface BatchResult {
  last: string | undefined;
  rows: number;
  audit: Record<string, string>;
}

/**
 * One of ra's apply stages: its keyset (the staging table's primary key after export_id) and the
 * batch that writes the rows with keys in (position, high] into ra.
 */
interface RaStage {
  name: 'subscribers' | 'ra-cards' | 'certificates';
  next: Stage;
  table: string;
  key: string;
  count: number;
  batch(tx: PoolClient, position: string, high: string | null): Promise<BatchResult>;
}

async function apply(targets: ImportTargets, options: ImportOptions, exportId: string, written: ImportResult['written']): Promise<boolean> {
  const batchSize = options.batchSize ?? 5000;
  const lanes = Math.max(1, options.lanes ?? 2);
  const actor = { type: AuditActorType.SERVICE, id: `migration:${exportId}` };
  let applied = 0;
  const stop = () => options.maxBatches !== undefined && applied >= options.maxBatches;
  const { rows } = await targets.ra.query(`SELECT stage FROM ${STAGING}.runs WHERE export_id = $1`, [exportId]);
  let stage = rows[0]!.stage as Stage;
  const counts = await targets.ra.query(
    `SELECT (SELECT count(*) FROM ${STAGING}.subscribers WHERE export_id = $1)::int AS s, (SELECT count(*) FROM ${STAGING}.cards WHERE export_id = $1)::int AS k, (SELECT count(*) FROM ${STAGING}.certificates WHERE export_id = $1)::int AS c`,
    [exportId],
  );
  const c0 = counts.rows[0] as { s: number; k: number; c: number };
  options.progress?.start('import', c0.s + 2 * c0.k + c0.c);

  /** A batch whose statement answers (last, n, inserted): the row count goes to `written[counter]`. */
  const countedBatch = async (tx: PoolClient, sql: string, params: unknown[], counter: 'subscribers' | 'raCards', auditKey: string): Promise<BatchResult> => {
    const { rows: result } = await tx.query(sql, params);
    const r = result[0] as { last: string | null; n: number; inserted: number };
    written[counter] += r.inserted;
    return { last: r.last ?? undefined, rows: r.n, audit: { [auditKey]: String(r.inserted) } };
  };

  const stages: RaStage[] = [
    {
      name: 'subscribers', next: 'ra-cards', table: 'subscribers', key: 'subscriber_id', count: c0.s,
      batch: (tx, position, high) =>
        countedBatch(
          tx,
          `WITH batch AS (SELECT * FROM ${STAGING}.subscribers WHERE export_id = $1 AND subscriber_id > $2::uuid AND ($4::uuid IS NULL OR subscriber_id <= $4::uuid) ORDER BY subscriber_id LIMIT $3),
                ins AS (INSERT INTO subscribers (id, person_ref, lookup_key_id, national_id_lookup, pd_key_id, national_id_sealed, name_sealed, birth_date_sealed, email_sealed,
                          id_kind, gender, publication_consent, subscriber_code_hash, status, office, created_at)
                        SELECT subscriber_id, person_ref, lookup_key_id, national_id_lookup, pd_key_id, national_id_sealed, name_sealed, birth_date_sealed, email_sealed,
                          id_kind, gender, publication_consent, code_hash, 'ACTIVE', office, now() FROM batch
                        ON CONFLICT DO NOTHING RETURNING 1)
           SELECT (SELECT subscriber_id::text FROM batch ORDER BY subscriber_id DESC LIMIT 1) AS last, (SELECT count(*) FROM batch)::int AS n, (SELECT count(*) FROM ins)::int AS inserted`,
          [exportId, position || NIL_UUID, batchSize, high],
          'subscribers',
          'subscribers',
        ),
    },
    {
      name: 'ra-cards', next: 'certificates', table: 'card_keys', key: 'card_number', count: c0.k,
      batch: (tx, position, high) =>
        countedBatch(
          tx,
          `WITH batch AS (
             SELECT k.card_number, k.office, k.issued_at, ck.subscriber_id, ck.sign_spki, ck.keyx_spki, ck.subject_serial, ck.not_after, ck.sign_status, ck.keyx_status
               FROM ${STAGING}.card_keys ck
               JOIN ${STAGING}.cards k ON k.export_id = ck.export_id AND k.card_number = ck.card_number
              WHERE ck.export_id = $1 AND ck.card_number > $2 AND ($4::text IS NULL OR ck.card_number <= $4) ORDER BY ck.card_number LIMIT $3),
           ins AS (
             INSERT INTO cards (card_number, subscriber_id, subject_serial, status, office, activated_at, extended, signing_spki, encryption_spki, signing_spki_sha256, encryption_spki_sha256,
               keys_created_at, original_not_after, created_at)
             SELECT card_number, subscriber_id, coalesce(subject_serial, 'L' || card_number),
               CASE WHEN sign_status = 'REVOKED' AND keyx_status = 'REVOKED' THEN 'REVOKED' WHEN 'SUSPENDED' IN (sign_status, keyx_status) THEN 'SUSPENDED' ELSE 'ACTIVE' END,
               office, issued_at, false, sign_spki, keyx_spki, sha256(sign_spki), sha256(keyx_spki), issued_at, not_after, issued_at FROM batch
             ON CONFLICT DO NOTHING RETURNING 1)
           SELECT (SELECT max(card_number) FROM batch) AS last, (SELECT count(*) FROM batch)::int AS n, (SELECT count(*) FROM ins)::int AS inserted`,
          [exportId, position, batchSize, high],
          'raCards',
          'cards',
        ),
    },
    {
      name: 'certificates', next: 'card-mgmt', table: 'certificates', key: 'line', count: c0.c,
      async batch(tx, position, high) {
        // In line order, which is the staged rows' physical order: the sealed certificates are read
        // sequentially. final.card_number is set only for a card that ra-cards imported (reconcile
        // clears the others).
        const { rows: inserted } = await tx.query(
          `WITH batch AS (
             SELECT c.serial_hex, c.line, c.issuer_key_id, c.not_before, c.not_after, c.sealed, c.pd_key_id, f.status, f.reason, f.revocation_time, f.key_slot, f.card_number
               FROM ${STAGING}.certificates c JOIN ${STAGING}.final f ON f.export_id = c.export_id AND f.serial_hex = c.serial_hex
              WHERE c.export_id = $1 AND c.line > $2::int AND ($5::int IS NULL OR c.line <= $5::int) ORDER BY c.line LIMIT $3),
           ins AS (
             INSERT INTO certificates (serial_hex, issuer_key_id, profile, status, not_before, not_after, certificate_sealed, pd_key_id, card_number, key_slot, reason, revocation_time, created_at, updated_at)
             SELECT serial_hex, issuer_key_id, CASE key_slot WHEN 'KEYX' THEN 'citizen-encryption' ELSE 'citizen-signing' END, status, not_before, not_after, sealed, pd_key_id, card_number, key_slot,
               reason, revocation_time, not_before, now() FROM batch
             ON CONFLICT DO NOTHING RETURNING serial_hex, issuer_key_id, profile, status, not_before, not_after, reason, revocation_time),
           history AS (
             INSERT INTO certificate_status_history (serial_hex, status, reason, revocation_time, changed_at, changed_by)
             SELECT serial_hex, 'VALID', NULL, NULL, not_before, 'legacy-issuance' FROM ins
             UNION ALL
             SELECT serial_hex, status, reason, revocation_time, revocation_time, 'legacy:' || $4 FROM ins WHERE status <> 'VALID')
           SELECT (SELECT max(line)::text FROM batch) AS last, (SELECT count(*) FROM batch)::int AS n, (SELECT coalesce(json_agg(ins), '[]') FROM ins) AS inserted`,
          [exportId, position || '0', batchSize, exportId, high],
        );
        const r = inserted[0] as { last: string | null; n: number; inserted: Array<{ serial_hex: string; issuer_key_id: string; profile: string; status: CertificateStatus; not_before: string; not_after: string; reason: Reason | null; revocation_time: string | null }> };
        const now = options.clock.now();
        // One status event per certificate imported: ocsp and crl learn the old certificates as they learn new ones.
        await appendEvents(
          tx,
          r.inserted.map((c) => ({
            producer: targets.statusProducer,
            topic: Topics.certificateStatus,
            key: c.serial_hex,
            payload: encodeStatusChange({
              serialHex: c.serial_hex,
              issuerKeyId: c.issuer_key_id,
              status: c.status,
              changedAt: c.revocation_time ? new Date(c.revocation_time) : now,
              notBefore: new Date(c.not_before),
              notAfter: new Date(c.not_after),
              ...(c.revocation_time ? { revocationTime: new Date(c.revocation_time) } : {}),
              ...(c.reason ? { reason: c.reason } : {}),
              profile: c.profile,
            }),
          })),
        );
        written.certificates += r.inserted.length;
        written.events += r.inserted.length;
        return { last: r.last ?? undefined, rows: r.n, audit: { certificates: String(r.inserted.length), statusEvents: String(r.inserted.length) } };
      },
    },
  ];

  /**
   * A stage's keys split into `lanes` ranges of about equal size, each applied by its own
   * connection (so PostgreSQL works on both cores), each with its own checkpoint: a lane killed
   * mid-way resumes after its last committed batch. The ranges are fixed the first time the stage
   * starts and reused on resume.
   */
  const lanesOf = async (s: RaStage): Promise<Array<{ lane: number; high: string | null; position: string; done: boolean }>> => {
    const existing = await targets.ra.query(`SELECT lane, high, position, done FROM ${STAGING}.lanes WHERE export_id = $1 AND stage = $2 ORDER BY lane`, [exportId, s.name]);
    if (existing.rows.length > 0) return existing.rows;
    const bounds: string[] = [];
    for (let i = 1; i < lanes && s.count > lanes * batchSize; i++) {
      const { rows: b } = await targets.ra.query(`SELECT ${s.key}::text AS k FROM ${STAGING}.${s.table} WHERE export_id = $1 ORDER BY ${s.key} OFFSET $2 LIMIT 1`, [exportId, Math.floor((s.count * i) / lanes)]);
      if (b[0] && b[0].k !== bounds[bounds.length - 1]) bounds.push(b[0].k as string);
    }
    const planned = [...bounds, null].map((high, lane) => ({ lane, high, position: lane === 0 ? '' : bounds[lane - 1]! }));
    // Every lane in one statement: a run killed between two lanes' rows would resume with the
    // first lane only, its range ending at the bound, and the keys above it never applied.
    await targets.ra.query(
      `INSERT INTO ${STAGING}.lanes (export_id, stage, lane, high, position) SELECT $1, $2, * FROM unnest($3::int[], $4::text[], $5::text[]) ON CONFLICT DO NOTHING`,
      [exportId, s.name, planned.map((l) => l.lane), planned.map((l) => l.high), planned.map((l) => l.position)],
    );
    return (await targets.ra.query(`SELECT lane, high, position, done FROM ${STAGING}.lanes WHERE export_id = $1 AND stage = $2 ORDER BY lane`, [exportId, s.name])).rows;
  };

  const runLane = async (s: RaStage, lane: { lane: number; high: string | null; position: string }): Promise<boolean> => {
    let position = lane.position;
    while (!stop()) {
      applied++;
      const client = await targets.ra.connect();
      let result: BatchResult;
      try {
        await client.query('BEGIN');
        // A batch lost in a crash after COMMIT returned is simply applied again on resume (its
        // checkpoint went with it), so the importer need not wait for each WAL flush.
        await client.query('SET LOCAL statement_timeout = 0; SET LOCAL synchronous_commit = off');
        result = await s.batch(client, position, lane.high);
        if (result.last !== undefined) {
          await appendAuditEvents(client, { producer: targets.auditProducer, clock: options.clock }, [
            { action: 'migration.import', outcome: AuditOutcome.SUCCESS, actor, objects: [{ type: 'export', id: exportId }], attributes: { stage: s.name, lane: String(lane.lane), ...result.audit } },
          ]);
        }
        await client.query(`UPDATE ${STAGING}.lanes SET position = coalesce($4, position), done = $4 IS NULL, batches = batches + 1, updated_at = now() WHERE export_id = $1 AND stage = $2 AND lane = $3`, [
          exportId, s.name, lane.lane, result.last ?? null,
        ]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
      options.progress?.tick(result.rows);
      if (result.last === undefined) return true;
      position = result.last;
    }
    return false;
  };

  const raChain = async (): Promise<boolean> => {
    for (const s of stages) {
      if (stage !== s.name) continue;
      const open = (await lanesOf(s)).filter((l) => !l.done);
      const finished = await Promise.all(open.map((l) => runLane(s, l)));
      if (!finished.every(Boolean)) return false;
      await targets.ra.query(`UPDATE ${STAGING}.runs SET stage = $2, phase = 'APPLYING', updated_at = now() WHERE export_id = $1`, [exportId, s.next]);
      stage = s.next;
    }
    return stage === 'card-mgmt' || stage === 'done';
  };

  // card-mgmt's cards come from the staging tables only (no row of ra's is needed), so they go in
  // beside ra's stages on their own connection. Their checkpoint lives in card-mgmt's database,
  // committed with each batch.
  const cardMgmt = async (): Promise<boolean> => {
    const batchId = `LEGACY-${exportId}`.slice(0, 64);
    const { rows: p } = await targets.cardMgmt.query(`SELECT position FROM ${STAGING}.progress WHERE export_id = $1`, [exportId]);
    let cmPosition = (p[0]?.position as string | undefined) ?? '';
    while (!stop()) {
      const { rows: cards } = await targets.ra.query(
        `SELECT k.card_number, k.legacy_state, k.office, k.sign_serial, k.keyx_serial, k.issued_at, si.subscriber_id, sf.status AS sign_status, xf.status AS keyx_status
           FROM ${STAGING}.cards k
           LEFT JOIN ${STAGING}.subscriber_ids si ON si.export_id = k.export_id AND si.legacy_id = k.legacy_subscriber_id
           JOIN ${STAGING}.final sf ON sf.export_id = k.export_id AND sf.serial_hex = k.sign_serial
           JOIN ${STAGING}.final xf ON xf.export_id = k.export_id AND xf.serial_hex = k.keyx_serial
          WHERE k.export_id = $1 AND k.card_number > $2 ORDER BY k.card_number LIMIT $3`,
        [exportId, cmPosition, batchSize],
      );
      if (cards.length === 0) return true;
      applied++;
      const client = await targets.cardMgmt.connect();
      try {
        await client.query('BEGIN');
        await client.query(`INSERT INTO card_batches (id, supplier, card_count, received_at, received_by) VALUES ($1, 'legacy CA centre', 1, now(), $2) ON CONFLICT DO NOTHING`, [batchId, actor.id]);
        type CardRow = { card_number: string; legacy_state: string; office: string; sign_serial: string; keyx_serial: string; issued_at: Date; subscriber_id: string | null; sign_status: string; keyx_status: string };
        const stateOf = (k: CardRow) =>
          k.legacy_state === 'DESTROYED' ? 'DESTROYED' : k.sign_status === 'REVOKED' && k.keyx_status === 'REVOKED' ? 'REVOKED' : [k.sign_status, k.keyx_status].includes('SUSPENDED') ? 'SUSPENDED' : 'ACTIVATED';
        const rows = cards as CardRow[];
        const { rows: inserted } = await client.query(
          `WITH ins AS (
             INSERT INTO cards (card_number, chip_serial, attestation_key, batch_id, state, office, subscriber_id, signing_serial, encryption_serial, updated_at, created_at)
             SELECT card_number, 'legacy:' || card_number, '\\x'::bytea, $1, state, office, subscriber_id, sign, keyx, now(), issued
               FROM unnest($2::text[], $3::text[], $4::text[], $5::uuid[], $6::text[], $7::text[], $8::timestamptz[]) AS t(card_number, state, office, subscriber_id, sign, keyx, issued)
             ON CONFLICT DO NOTHING RETURNING card_number, state, office)
           INSERT INTO card_transitions (card_number, action, from_state, to_state, from_office, to_office, actor_type, actor_id, reason, at)
           SELECT card_number, 'legacy-import', NULL, state, NULL, office, 'service', $9, 'migrated from the legacy CA centre', now() FROM ins RETURNING card_number`,
          [batchId, rows.map((k) => k.card_number), rows.map(stateOf), rows.map((k) => k.office), rows.map((k) => k.subscriber_id), rows.map((k) => k.sign_serial), rows.map((k) => k.keyx_serial), rows.map((k) => k.issued_at), actor.id],
        );
        cmPosition = rows[rows.length - 1]!.card_number;
        await client.query(
          `INSERT INTO ${STAGING}.progress (export_id, position, batches) VALUES ($1, $2, 1) ON CONFLICT (export_id) DO UPDATE SET position = $2, batches = ${STAGING}.progress.batches + 1, updated_at = now()`,
          [exportId, cmPosition],
        );
        await client.query('COMMIT');
        written.cardMgmtCards += inserted.length;
        options.progress?.tick(rows.length);
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    }
    return false;
  };

  if (stage !== 'done') {
    const [raDone, cardMgmtDone] = await Promise.all([raChain(), cardMgmt()]);
    if (raDone && cardMgmtDone) {
      await targets.ra.query(`UPDATE ${STAGING}.runs SET stage = 'done', updated_at = now() WHERE export_id = $1`, [exportId]);
      stage = 'done';
    }
  }
  options.progress?.done();
  return stage === 'done';
}

export type { LegacyStatus };
