import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import pg from 'pg';
import { Agent, fetch as undiciFetch } from 'undici';
import { createLogger, parseConfig, type Clock } from '@pki/kit';
import { ensureSoftwareCa } from '@pki/internal-ca';
import { freePort } from '@pki/testing';
import { decodeAuditEvent } from '@pki/audit-events';
import { Topics, type eventsV1 } from '@pki/proto';
import { startRaFixture, OFFICE, type ApiResponse, type RaFixture } from '../../ra/test/ra-fixture';
import { person } from '../../ra/test/lifecycle-helpers';
import { cardMgmtConfigSchema, type CardMgmtConfig } from '../src/config';
import { startCardMgmt, type CardMgmtDependencies, type RunningCardMgmt } from '../src/app';

const run = promisify(execFile);

/** A clock the test moves (the daily reconciliation needs days). */
export class TestClock implements Clock {
  #offsetMs = 0;
  #fixed: Date | undefined;
  now(): Date {
    return this.#fixed ? new Date(this.#fixed) : new Date(Date.now() + this.#offsetMs);
  }
  set(at: Date | undefined): void {
    this.#fixed = at;
  }
}

export interface CardMgmtFixture {
  ra: RaFixture;
  cardMgmt: RunningCardMgmt;
  config: CardMgmtConfig;
  clock: TestClock;
  db: pg.Pool;
  dir: string;
  logs: string[];
  /** Calls card-mgmt's REST API as `who` (a principal id of the ra fixture, or 'anonymous'). */
  call(who: string, method: 'GET' | 'POST', path: string, body?: unknown, idempotencyKey?: string | null): Promise<ApiResponse>;
  /** Registers a citizen in ra and returns their subscriber id. */
  registerCitizen(options?: { subscriberCode?: string; birthDate?: string }): Promise<{ subscriberId: string; subscriberCode: string; birthDate: string }>;
  /** A blank chip: its own SoftHSM configuration and token folder, no token initialised. */
  blankCard(name: string): { env: Record<string, string>; dir: string };
  /** A chip from the supplier, made into card `cardNumber` by the workstation's supply step; returns its manifest entry. */
  supplyCard(cardNumber: string): Promise<{ env: Record<string, string>; dir: string; manifest: { cardNumber: string; chipSerial: string; attestationKey: string } }>;
  /** A manifest entry for a chip that is never put in a reader (stock tests): a software attestation key. */
  paperCard(cardNumber: string, chipSerial: string): { cardNumber: string; chipSerial: string; attestationKey: string };
  /** Runs the workstation client as `who`, against the card whose environment is given. */
  workstation(who: string, card: { env: Record<string, string> }, args: string[], env?: Record<string, string>): Promise<{ code: number; json: Record<string, unknown>; stderr: string }>;
  /** card-mgmt's audit events, in order. */
  auditEvents(): Promise<eventsV1.AuditEvent[]>;
  restart(deps?: CardMgmtDependencies): Promise<void>;
  stop(): Promise<void>;
}

export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';
export const WORKSTATION = join(__dirname, '..', '..', '..', 'packages', 'workstation', 'dist', 'cli.js');

let fixtures = 0;
const unique = (name: string) => `${name}-test-${process.pid}-${fixtures}`;

/** ra on a real ca-signer (SoftHSM CA token), card-mgmt in this process, both on the test PostgreSQL. */
export async function startCardMgmtFixture(options: { transport?: 'kafka' | 'postgres'; deps?: CardMgmtDependencies } = {}): Promise<CardMgmtFixture> {
  // ra's gRPC port is fixed so that a restarted ra (another signer, say) answers where card-mgmt calls.
  fixtures++;
  const raGrpcPort = await freePort();
  const ra = await startRaFixture({
    transport: options.transport ?? 'kafka',
    dualControl: [],
    configure: (raw) => {
      raw.grpc = { host: '127.0.0.1', port: raGrpcPort };
      // Test files share the broker: this ra's status events carry a producer name of their own,
      // so that another file's ra cannot look like this one's (per-producer sequences).
      (raw.events as Record<string, unknown>).producer = unique('ra');
    },
  });
  const dir = join(ra.dir, 'card-mgmt');
  mkdirSync(dir, { recursive: true });
  const secret = (name: string) => {
    const file = join(dir, `${name}.key32`);
    writeFileSync(file, randomBytes(32).toString('base64') + '\n', { mode: 0o600 });
    return file;
  };
  const officerCa = await ensureSoftwareCa(join(ra.dir, 'officer-ca'), 'CN=Test officer CA, O=Citizen PKI tests');
  const id = ra.signer.identities['card-mgmt'];
  const kafka = (options.transport ?? 'kafka') === 'kafka';
  const raw = {
    log: { level: 'debug' },
    ops: { host: '127.0.0.1', port: 0 },
    http: { host: '127.0.0.1', port: 0, certFile: id.certFile, keyFile: id.keyFile, clientCaFiles: [officerCa.certFile] },
    database: { url: ra.signer.databaseUrl, schema: 'card_mgmt' },
    tls: { caFile: id.caFile, certFile: id.certFile, keyFile: id.keyFile },
    ra: { address: ra.ra.grpcAddress, serverIdentity: ra.signer.identities.ra.identity, deadlineMs: 30_000 },
    events: kafka
      ? { transport: { type: 'kafka', brokers: process.env.PKI_TEST_KAFKA_BROKERS!.split(','), clientId: unique('card-mgmt') }, group: unique('card-mgmt'), pollIntervalMs: 50 }
      : { transport: { type: 'postgres' }, pollIntervalMs: 50 },
    adminSecretKeyFile: secret('admin-secret'),
    transportKeyFile: secret('transport'),
    fingerprintKeyFile: secret('fingerprint'),
  };
  const config = parseConfig(cardMgmtConfigSchema, raw);
  const logs: string[] = [];
  const stream = new PassThrough();
  stream.on('data', (chunk: Buffer) => logs.push(...chunk.toString('utf8').split('\n').filter(Boolean)));
  const logger = createLogger({ service: 'card-mgmt', level: 'debug', destination: stream });
  const clock = new TestClock();
  const start = (deps: CardMgmtDependencies = {}) => startCardMgmt(config, { logger, clock, ...options.deps, ...deps });
  let cardMgmt = await start();
  const db = new pg.Pool({ connectionString: ra.signer.databaseUrl, options: '-c search_path=card_mgmt', max: 4 });
  const serverCa = readFileSync(id.caFile);
  const agents = new Map<string, Agent>();
  const agentFor = (who: string) => {
    let agent = agents.get(who);
    if (!agent) {
      const identity = ra.identities[who];
      agent = new Agent({ connect: { ca: serverCa, ...(identity ? { cert: readFileSync(identity.certFile), key: readFileSync(identity.keyFile) } : {}), servername: 'localhost' } });
      agents.set(who, agent);
    }
    return agent;
  };
  let keys = 0;
  const blankCard = (name: string) => {
    const cardDir = join(dir, 'cards', name);
    mkdirSync(join(cardDir, 'tokens'), { recursive: true });
    const conf = join(cardDir, 'softhsm2.conf');
    writeFileSync(conf, `directories.tokendir = ${join(cardDir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
    return { env: { SOFTHSM2_CONF: conf }, dir: cardDir };
  };
  const paperKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
  return {
    ra,
    get cardMgmt() {
      return cardMgmt;
    },
    config,
    clock,
    db,
    dir,
    logs,
    async call(who, method, path, body, idempotencyKey) {
      const headers: Record<string, string> = {};
      if (body !== undefined) headers['content-type'] = 'application/json';
      if (method === 'POST' && idempotencyKey !== null) headers['idempotency-key'] = idempotencyKey ?? `test-${process.pid}-${++keys}-${randomBytes(4).toString('hex')}`;
      const res = await undiciFetch(`${cardMgmt.httpUrl}${path}`, { method, headers, ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}), dispatcher: agentFor(who) });
      const text = await res.text();
      let parsed: Record<string, unknown> = {};
      try {
        parsed = text ? JSON.parse(text) : {};
      } catch {
        parsed = { raw: text };
      }
      return { status: res.status, body: parsed, headers: res.headers as unknown as Headers, text };
    },
    async registerCitizen(o = {}) {
      const p = person({ ...(o.subscriberCode ? { subscriberCode: o.subscriberCode } : {}), ...(o.birthDate ? { birthDate: o.birthDate } : {}) });
      const { subscriberCode, birthDate } = p;
      const res = await ra.call('registrar-a', 'POST', '/v1/subscribers', p);
      if (res.status !== 201) throw new Error(`register citizen: ${res.status} ${res.text}`);
      return { subscriberId: res.body.subscriberId as string, subscriberCode, birthDate };
    },
    blankCard,
    async supplyCard(cardNumber) {
      const card = blankCard(cardNumber);
      const { stdout } = await run(process.execPath, [WORKSTATION, 'supply', '--card', cardNumber, '--transport-key-file', raw.transportKeyFile, '--module', SOFTHSM_MODULE], { env: { PATH: process.env.PATH ?? '', ...card.env }, timeout: 120_000 });
      return { ...card, manifest: JSON.parse(stdout.trim()) };
    },
    paperCard(cardNumber, chipSerial) {
      return { cardNumber, chipSerial, attestationKey: paperKey };
    },
    async workstation(who, card, args, env = {}) {
      // 'anonymous': the citizen's own commands, without an officer certificate.
      const identity = ra.identities[who];
      const common = ['--api', cardMgmt.httpUrl.replace('127.0.0.1', 'localhost'), ...(identity ? ['--cert', identity.certFile, '--key', identity.keyFile] : []), '--ca', id.caFile, '--module', SOFTHSM_MODULE];
      try {
        const { stdout, stderr } = await run(process.execPath, [WORKSTATION, ...args, ...common], { env: { PATH: process.env.PATH ?? '', ...card.env, ...env }, timeout: 120_000 });
        return { code: 0, json: JSON.parse(stdout.trim().split('\n').pop()!), stderr };
      } catch (err) {
        const e = err as { code?: number; stdout?: string; stderr?: string };
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse((e.stderr ?? '').trim().split('\n').pop() ?? '{}');
        } catch {
          json = { raw: e.stderr };
        }
        return { code: typeof e.code === 'number' ? e.code : 1, json, stderr: e.stderr ?? '' };
      }
    },
    async auditEvents() {
      const { rows } = await db.query(`SELECT payload FROM outbox WHERE topic = $1 ORDER BY seq`, [Topics.audit]);
      return rows.map((r) => decodeAuditEvent(r.payload));
    },
    async restart(deps) {
      await cardMgmt.runtime.stop();
      cardMgmt = await start(deps);
    },
    async stop() {
      for (const agent of agents.values()) await agent.close();
      await db.end();
      await cardMgmt.runtime.stop();
      await ra.stop();
    },
  };
}

export { OFFICE };
export const OTHER_OFFICE = '64000000';
