import { execFile, execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { fromBinary } from '@bufbuild/protobuf';
import type { Pool } from 'pg';
import { parseConfig } from '@pki/kit';
import { createPool } from '@pki/db';
import { eventsV1, Topics } from '@pki/proto';
import { createServiceIdentities, createSoftHsmToken, createTestDatabase, type SoftHsmToken, useSoftHsmConfig } from '@pki/testing';
import { caSignerConfigSchema, type CaSignerConfig } from '../src/config';

const run = promisify(execFile);

/** The built CLI (`make test` builds before it tests; the CLI runs as operators run it). */
export const CLI = resolve(__dirname, '..', 'dist', 'cli.js');

export interface CeremonyFixture {
  dir: string;
  token: SoftHsmToken;
  /** The PIN set at token initialisation, in a 0600 file (what the first split-pin starts from). */
  initialPinFile: string;
  config: CaSignerConfig;
  configFile: string;
  pool: Pool;
  /** Runs `pki ceremony <args>` with the fixture's config; never throws, returns what happened. */
  cli(args: string[], env?: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }>;
  /** The audit events in the signer's outbox, in sequence order. */
  auditEvents(): Promise<Array<{ seq: number; action: string; outcome: string; actor: string; actorType: string; attributes: Record<string, string> }>>;
  dispose(): Promise<void>;
}

/** A signer's database and a fresh SoftHSM token, with a config file for the CLI. */
export async function createCeremonyFixture(name: string): Promise<CeremonyFixture> {
  const dir = await mkdtemp(join(tmpdir(), `ceremony-${name}-`));
  const databaseUrl = await createTestDatabase(`ceremony_${name.replace(/-/g, '_')}`);
  const identities = await createServiceIdentities(join(dir, 'identities'), ['ca-signer'] as const);
  const token = await createSoftHsmToken({ dir: join(dir, 'softhsm'), label: 'citizen-ca', pin: '424242', soPin: '97531864' });
  const restoreEnv = useSoftHsmConfig(token);
  const initialPinFile = join(dir, 'hsm-pin');
  await writeFile(initialPinFile, `${token.pin}\n`, { mode: 0o600 });
  const { caFile, certFile, keyFile } = identities['ca-signer'];
  const raw = {
    log: { level: 'silent' },
    ops: { host: '127.0.0.1', port: 0 },
    database: { url: databaseUrl, schema: 'ca_signer' },
    grpc: { host: '127.0.0.1', port: 0, tls: { caFile, certFile, keyFile } },
    hsm: { modulePath: token.modulePath, tokenLabel: token.label, pinFile: initialPinFile, sessionPoolSize: 1, softhsmConfigFile: token.configPath },
    allow: { IssueCertificate: ['*'], GetIssuers: ['*'], SignCrl: ['*'], SignOcspResponses: ['*'], SignLiveOcspResponses: ['*'], SignAuditCheckpoint: ['*'], ListIssuances: ['*'], SignValidationReceipt: ['*'] },
    publication: { crlBaseUrl: 'http://crl.pki.test/crl', ocspUrl: 'http://ocsp.pki.test/', caIssuersUrl: 'http://pki.test/ca' },
    events: { transport: { type: 'postgres' }, producer: 'ca-signer', pollIntervalMs: 100 },
    // Off so that tests can also drive steps with the initial PIN file; the custody rule is
    // exercised through PKI_CEREMONY_REQUIRE_CUSTODY, and production configs keep the default (on).
    ceremony: { requireCustody: false },
  };
  const configFile = join(dir, 'ca-signer.json');
  await writeFile(configFile, JSON.stringify(raw, null, 2));
  const config = parseConfig(caSignerConfigSchema, raw);
  const pool = createPool({ url: databaseUrl, schema: 'ca_signer', maxConnections: 2, applicationName: 'ceremony-test' });
  return {
    dir,
    token,
    initialPinFile,
    config,
    configFile,
    pool,
    async cli(args, env = {}) {
      try {
        const { stdout, stderr } = await run(process.execPath, [CLI, 'ceremony', ...args, '--config', configFile], {
          env: { ...process.env, SOFTHSM2_CONF: token.configPath, ...env },
          timeout: 120_000,
        });
        return { code: 0, stdout, stderr };
      } catch (err) {
        const e = err as { code?: number; stdout?: string; stderr?: string };
        return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
      }
    },
    async auditEvents() {
      const { rows } = await pool.query(`SELECT seq, payload FROM outbox WHERE topic = $1 ORDER BY seq`, [Topics.audit]);
      return rows.map((r) => {
        const event = fromBinary(eventsV1.AuditEventSchema, r.payload);
        return { seq: Number(r.seq), action: event.action, outcome: eventsV1.AuditOutcome[event.outcome], actor: event.actor?.id ?? '', actorType: eventsV1.AuditActorType[event.actor?.type ?? 0] ?? '', attributes: { ...event.attributes } };
      });
    },
    async dispose() {
      await pool.end();
      restoreEnv();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export const openssl = (...args: string[]): string => execFileSync('openssl', args, { stdio: 'pipe' }).toString();
