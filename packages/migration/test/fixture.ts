import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { createLogger, parseConfig } from '@pki/kit';
import { createPool } from '@pki/db';
import { inboxMigration, migrateServiceSchema } from '@pki/outbox';
import { createTestDatabase } from '@pki/testing';
import { MIGRATIONS_DIRECTORY as RA_MIGRATIONS } from '../../../services/ra/src/app';
import { MIGRATIONS_DIRECTORY as CARD_MGMT_MIGRATIONS } from '../../../services/card-mgmt/src/app';
import { migrationConfigSchema } from '../src/config';
import { targetsFrom } from '../src/cli';
import * as der from '../src/der';
import { type CertificateStatus, fileSha256, formatManifest, parseLegacyTime, readManifest, type LegacyStatus, type Reason, REASON_BY_CODE, STATUS_MAP } from '../src/format';
import type { ImportTargets } from '../src/importer';

export const CLI = resolve(__dirname, '..', 'dist', 'cli.js');

/** Shared sealing keys: every target built from one `keys` folder seals and finds people alike. */
export async function createKeys(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const name of ['pd-1', 'lookup-1', 'reference']) {
    files[name] = join(dir, `${name}.key`);
    await writeFile(files[name], randomBytes(32).toString('base64'), { mode: 0o600 });
  }
  return files;
}

export interface Targets {
  raUrl: string;
  cardMgmtUrl: string;
  configFile: string;
  targets: ImportTargets;
  ra: pg.Pool;
  cardMgmt: pg.Pool;
  close(): Promise<void>;
}

/** Fresh ra and card-mgmt databases, migrated as the services migrate them, and a migration config file for the CLI. */
export async function createTargets(name: string, keys: Record<string, string>, dir: string, extra: Record<string, unknown> = {}): Promise<Targets> {
  const raUrl = await createTestDatabase(`mig_ra_${name}`);
  const cardMgmtUrl = await createTestDatabase(`mig_cm_${name}`);
  const logger = createLogger({ service: 'migration-test', level: 'silent' });
  const ra = createPool({ url: raUrl, schema: 'ra', maxConnections: 2 });
  const cardMgmt = createPool({ url: cardMgmtUrl, schema: 'card_mgmt', maxConnections: 2 });
  await migrateServiceSchema(ra, 'ra', RA_MIGRATIONS, logger);
  await migrateServiceSchema(cardMgmt, 'card_mgmt', CARD_MGMT_MIGRATIONS, logger, [inboxMigration(2)]);
  const raw = {
    ra: {
      database: { url: raUrl, schema: 'ra' },
      personalData: {
        encryptionKeys: [{ id: 'pd-1', keyFile: keys['pd-1'] }],
        activeEncryptionKey: 'pd-1',
        lookupKeys: [{ id: 'lookup-1', keyFile: keys['lookup-1'] }],
        activeLookupKey: 'lookup-1',
        referenceKeyFile: keys.reference,
      },
    },
    cardMgmt: { database: { url: cardMgmtUrl, schema: 'card_mgmt' } },
    batchSize: 100,
    ...extra,
  };
  const configFile = join(dir, `migration-${name}.json`);
  await writeFile(configFile, JSON.stringify(raw, null, 2));
  const targets = targetsFrom(parseConfig(migrationConfigSchema, raw));
  return {
    raUrl,
    cardMgmtUrl,
    configFile,
    targets,
    ra,
    cardMgmt,
    async close() {
      await Promise.all([ra.end(), cardMgmt.end(), targets.ra.end(), targets.cardMgmt.end(), targets.caSigner?.end()]);
    },
  };
}

/** A copy of an export with one file changed, the manifest updated to match unless `keepManifest`. */
export async function alteredCopy(source: string, file: string, change: (bytes: Buffer) => Buffer, options: { keepManifest?: boolean; records?: number } = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'legacy-altered-'));
  await cp(source, dir, { recursive: true });
  await writeFile(join(dir, file), change(await readFile(join(dir, file))));
  if (!options.keepManifest) {
    const manifest = await readManifest(dir);
    for (const entry of manifest.files) {
      if (entry.file !== file) continue;
      entry.sha256 = await fileSha256(join(dir, file));
      if (options.records !== undefined) entry.records = options.records;
    }
    await writeFile(join(dir, 'MANIFEST'), formatManifest(manifest));
  }
  return dir;
}

/** The registry as a relying party sees it, for comparing two imports. */
export async function registrySnapshot(t: Targets): Promise<Record<string, unknown>> {
  const q = async (pool: pg.Pool, sql: string) => (await pool.query(sql)).rows;
  return {
    certificates: await q(t.ra, `SELECT serial_hex, issuer_key_id, profile, status, reason, revocation_time, card_number, key_slot, not_before, not_after FROM certificates ORDER BY serial_hex`),
    history: await q(t.ra, `SELECT serial_hex, status, reason, revocation_time, changed_at, changed_by FROM certificate_status_history ORDER BY serial_hex, changed_at, status`),
    subscribers: await q(t.ra, `SELECT id, person_ref, national_id_lookup, id_kind, gender, publication_consent, subscriber_code_hash, status, office FROM subscribers ORDER BY id`),
    cards: await q(t.ra, `SELECT card_number, subscriber_id, subject_serial, status, office, signing_spki_sha256, encryption_spki_sha256 FROM cards ORDER BY card_number`),
    events: await q(t.ra, `SELECT key, count(*)::int AS n FROM outbox WHERE producer = 'ra' GROUP BY key ORDER BY key`),
    cardMgmt: await q(t.cardMgmt, `SELECT card_number, state, office, subscriber_id, signing_serial, encryption_serial FROM cards ORDER BY card_number`),
    transitions: await q(t.cardMgmt, `SELECT card_number, action, to_state FROM card_transitions ORDER BY card_number`),
  };
}

export interface LegacyRecord {
  serialHex: string;
  generation: string;
  notAfter: Date;
  /** The status table's value (the last row of the serial), if it has one. */
  legacyStatus: LegacyStatus | undefined;
  onCrl: boolean;
  status: CertificateStatus;
  revocationTime?: Date;
  reason?: Reason;
}

/**
 * What the new system must answer for every serial, read from the export's own files and the
 * rules of the runbook (docs/runbooks/migration.md, "Reading the report") rather than from the
 * importer: the generation's last CRL is authoritative for revocation (its time and reason); a
 * status-table change after the CRL's thisUpdate is newer and kept; without either, valid.
 */
export async function reconciledLegacyRecords(dir: string): Promise<{ generations: Array<{ generation: string; keyId: string; certificateDer: Buffer }>; records: Map<string, LegacyRecord> }> {
  const rows = async (file: string) => (await readFile(join(dir, file), 'utf8')).split('\n').slice(1).filter(Boolean).map((l) => l.split('\t'));
  const generations: Array<{ generation: string; keyId: string; certificateDer: Buffer; crl: der.CrlFields }> = [];
  for (const [generation, certFile, crlFile] of await rows('generations.tsv')) {
    const certificateDer = await readFile(join(dir, certFile!));
    generations.push({ generation: generation!, keyId: der.subjectKeyId(certificateDer)!, certificateDer, crl: der.readCrl(await readFile(join(dir, crlFile!))) });
  }
  const status = new Map<string, { status: LegacyStatus; time: Date }>();
  for (const [serial, value, time] of await rows('status.tsv')) {
    const at = parseLegacyTime(time!)!;
    const before = status.get(serial!);
    if (!before || before.time.getTime() <= at.getTime()) status.set(serial!, { status: value as LegacyStatus, time: at });
  }
  const records = new Map<string, LegacyRecord>();
  for (const [, b64] of await rows('certificates.txt')) {
    const cert = der.readCertificate(Buffer.from(b64!, 'base64'));
    const g = generations.find((x) => x.keyId === cert.authorityKeyId)!;
    const row = status.get(cert.serialHex);
    const entry = g.crl.entries.find((e) => e.serialHex === cert.serialHex);
    const base = { serialHex: cert.serialHex, generation: g.generation, notAfter: cert.notAfter, legacyStatus: row?.status, onCrl: entry !== undefined };
    if (row && row.time.getTime() > g.crl.thisUpdate.getTime()) {
      const mapped = STATUS_MAP[row.status];
      records.set(cert.serialHex, { ...base, status: mapped.status, ...(mapped.status === 'VALID' ? {} : { revocationTime: row.time, reason: mapped.reason! }) });
    } else if (entry) {
      const reason = REASON_BY_CODE.get(entry.reasonCode ?? 0)!;
      records.set(cert.serialHex, { ...base, status: reason === 'certificateHold' ? 'SUSPENDED' : 'REVOKED', revocationTime: entry.revocationDate, reason });
    } else {
      records.set(cert.serialHex, { ...base, status: 'VALID' });
    }
  }
  return { generations: generations.map(({ generation, keyId, certificateDer }) => ({ generation, keyId, certificateDer })), records };
}
