import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import pg from 'pg';
import { Agent, fetch as undiciFetch } from 'undici';
import { fromBinary } from '@bufbuild/protobuf';
import { createLogger, parseConfig, systemClock, type Clock, type Logger } from '@pki/kit';
import { freePort } from '@pki/testing';
import { ensureSoftwareCa, issueClientCertificate } from '@pki/internal-ca';
import { eventsV1, Topics } from '@pki/proto';
import { startCaSignerFixture, type CaSignerFixture } from '../../ca-signer/test/service-fixture';
import { raConfigSchema, type RaConfig } from '../src/config';
import { startRa, type RaDependencies, type RunningRa } from '../src/app';
import { addPrincipal } from '../src/adapters/postgres/principals';
import type { OfficerRole } from '../src/domain/access';

export interface Identity {
  id: string;
  certFile: string;
  keyFile: string;
}

export const OFFICE = '63000000';
export const OTHER_OFFICE = '64000000';

/** The people and systems of the tests: two registrars of one office (dual control needs two), and the rest. */
export const PRINCIPALS: ReadonlyArray<{ id: string; kind: 'officer' | 'household-system'; role?: OfficerRole; office?: string }> = [
  { id: 'registrar-a', kind: 'officer', role: 'registrar', office: OFFICE },
  { id: 'registrar-b', kind: 'officer', role: 'registrar', office: OFFICE },
  { id: 'supervisor-a', kind: 'officer', role: 'supervisor', office: OFFICE },
  { id: 'registrar-x', kind: 'officer', role: 'registrar', office: OTHER_OFFICE },
  { id: 'card-centre', kind: 'officer', role: 'card-centre', office: 'CARD-CENTRE' },
  { id: 'auditor', kind: 'officer', role: 'auditor', office: 'AUDIT' },
  { id: 'household', kind: 'household-system' },
];

export interface ApiResponse {
  status: number;
  body: Record<string, unknown> & { error?: string; message?: string };
  headers: Headers;
  text: string;
}

export interface RaFixture {
  signer: CaSignerFixture;
  /** The in-process service (not in `child` mode). */
  ra: RunningRa;
  /** Where the REST API answers (in-process or child). */
  httpUrl: string;
  config: RaConfig;
  db: pg.Pool;
  dir: string;
  /** Every log line ra wrote (the personal-data scan reads it). */
  logs: string[];
  /** Every log line ca-signer wrote. */
  signerLogs: string[];
  identities: Record<string, Identity>;
  /** Calls the REST API as `who` (a principal id, 'anonymous', or 'stranger' with a certificate from an unknown CA). */
  call(who: string, method: 'GET' | 'POST', path: string, body?: unknown, idempotencyKey?: string | null): Promise<ApiResponse>;
  /** A key pair and CSR made by OpenSSL, standing in for one of the card's key pairs. */
  csr(name: string, bits?: number): string;
  statusEvents(): Promise<eventsV1.CertificateStatusChanged[]>;
  auditEvents(): Promise<eventsV1.AuditEvent[]>;
  restart(deps?: RaDependencies): Promise<void>;
  /** `child` mode: starts ra as its own process (dist/main.js) with extra environment; resolves when it is ready. */
  spawn(env?: Record<string, string>): Promise<ChildProcess>;
  stop(): Promise<void>;
}

export interface RaFixtureOptions {
  transport?: 'kafka' | 'postgres';
  clock?: Clock;
  dualControl?: Array<'card.revoke' | 'cards.bulk-revoke' | 'application.issue'>;
  deps?: RaDependencies;
  configure?: (config: Record<string, unknown>) => void;
  /** Further CA generations in the signer, inactive at start. */
  extraGenerations?: number;
  /** ca-signer runs on the same clock (extension windows are years long). */
  shareClockWithSigner?: boolean;
  /** Run ra as a child process (`spawn`) instead of in this process: the crash tests kill it. */
  child?: boolean;
}

let counter = 0;

export async function startRaFixture(options: RaFixtureOptions = {}): Promise<RaFixture> {
  const signerLogs: string[] = [];
  const signerStream = new PassThrough();
  signerStream.on('data', (chunk: Buffer) => signerLogs.push(...chunk.toString('utf8').split('\n').filter(Boolean)));
  const signer = await startCaSignerFixture({
    logger: createLogger({ service: 'ca-signer', level: 'debug', destination: signerStream }),
    ...(options.extraGenerations ? { extraGenerations: options.extraGenerations } : {}),
    ...(options.shareClockWithSigner && options.clock ? { clock: options.clock } : {}),
  });
  const dir = signer.dir;
  const secret = (name: string) => {
    const file = join(dir, `${name}.key32`);
    writeFileSync(file, randomBytes(32).toString('base64') + '\n', { mode: 0o600 });
    return file;
  };
  const officerCa = await ensureSoftwareCa(join(dir, 'officer-ca'), 'CN=Test officer CA, O=Citizen PKI tests');
  const strangerCa = await ensureSoftwareCa(join(dir, 'stranger-ca'), 'CN=Someone else, O=Not us');
  const identities: Record<string, Identity> = {};
  for (const p of PRINCIPALS) {
    const issued = await issueClientCertificate({ caDir: officerCa.dir, outDir: join(dir, 'officers'), name: p.id, subject: `CN=${p.id}, O=Citizen PKI tests` });
    identities[p.id] = { id: p.id, certFile: issued.certFile, keyFile: issued.keyFile };
  }
  // A certificate from the right CA that nobody registered, and one from a CA ra does not trust.
  const unregistered = await issueClientCertificate({ caDir: officerCa.dir, outDir: join(dir, 'officers'), name: 'unregistered', subject: 'CN=unregistered, O=Citizen PKI tests' });
  identities.unregistered = { id: 'unregistered', ...unregistered };
  const stranger = await issueClientCertificate({ caDir: strangerCa.dir, outDir: join(dir, 'officers'), name: 'stranger', subject: 'CN=registrar-a, O=Citizen PKI tests' });
  identities.stranger = { id: 'stranger', ...stranger };

  const kafka = options.transport === 'kafka';
  if (kafka && !process.env.PKI_TEST_KAFKA_BROKERS) throw new Error('PKI_TEST_KAFKA_BROKERS is not set (the jest global setup starts a broker)');
  const raw: Record<string, unknown> = {
    log: { level: 'info' },
    ops: { host: '127.0.0.1', port: 0 },
    http: { host: '127.0.0.1', port: options.child ? await freePort() : 0, certFile: signer.identities.ra.certFile, keyFile: signer.identities.ra.keyFile, clientCaFiles: [officerCa.certFile] },
    grpc: { host: '127.0.0.1', port: 0 },
    allow: { GetCertificate: [signer.identities.ocsp.identity, signer.identities.crl.identity], ListCertificateStatuses: [signer.identities.ocsp.identity, signer.identities.crl.identity], GetCard: [signer.identities.ocsp.identity, signer.identities['card-mgmt'].identity],
      ResolveOfficer: [signer.identities['card-mgmt'].identity], IssueCardCertificates: [signer.identities['card-mgmt'].identity], ChangeCardStatus: [signer.identities['card-mgmt'].identity], VerifySubscriberCode: [signer.identities['card-mgmt'].identity],
      IssueMobileCertificate: [signer.identities['card-mgmt'].identity], ChangeMobileCertificateStatus: [signer.identities['card-mgmt'].identity] },
    database: { url: signer.databaseUrl, schema: 'ra' },
    tls: { caFile: signer.identities.ra.caFile, certFile: signer.identities.ra.certFile, keyFile: signer.identities.ra.keyFile },
    caSigner: { address: signer.signer.grpcAddress, serverIdentity: signer.identities['ca-signer'].identity, deadlineMs: 30_000 },
    events: kafka
      ? { transport: { type: 'kafka', brokers: process.env.PKI_TEST_KAFKA_BROKERS!.split(','), clientId: `ra-test-${process.pid}-${++counter}` }, pollIntervalMs: 50 }
      : { transport: { type: 'postgres' }, pollIntervalMs: 50 },
    personalData: {
      encryptionKeys: [{ id: 'pd-1', keyFile: secret('pd-1') }],
      activeEncryptionKey: 'pd-1',
      lookupKeys: [{ id: 'lookup-1', keyFile: secret('lookup-1') }],
      activeLookupKey: 'lookup-1',
      referenceKeyFile: secret('reference'),
    },
    // Cheaper scrypt in tests: the cost is a parameter of the stored hash, the code path is the same.
    subscriberCode: { scryptCost: 4096 },
    dualControl: { operations: options.dualControl ?? ['card.revoke', 'cards.bulk-revoke', 'application.issue'], requestTtlMinutes: 60 },
    reconciliation: { intervalSeconds: 3600, stuckAfterSeconds: 1, settleSeconds: 0, pageSize: 100 },
  };
  options.configure?.(raw);
  const config = parseConfig(raConfigSchema, raw);
  const logs: string[] = [];
  const stream = new PassThrough();
  stream.on('data', (chunk: Buffer) => logs.push(...chunk.toString('utf8').split('\n').filter(Boolean)));
  const logger: Logger = createLogger({ service: 'ra', level: 'debug', destination: stream });
  const start = (deps: RaDependencies = {}) => startRa(config, { logger, clock: options.clock ?? systemClock, backgroundJobs: false, ...options.deps, ...deps });
  const children: ChildProcess[] = [];
  // Migrations and principals need the schema: a child-mode fixture starts ra once in process to create it.
  let ra = await start();
  let httpUrl = ra.httpUrl;
  if (options.child) {
    await ra.runtime.stop();
    httpUrl = `https://127.0.0.1:${(raw.http as { port: number }).port}`;
  }
  const db = new pg.Pool({ connectionString: signer.databaseUrl, options: '-c search_path=ra', max: 4 });
  for (const p of PRINCIPALS) {
    await addPrincipal(db, { producer: 'ra.audit', clock: systemClock, operator: 'test' }, { id: p.id, kind: p.kind, ...(p.role ? { role: p.role } : {}), ...(p.office ? { office: p.office } : {}), certificate: readFileSync(identities[p.id]!.certFile) });
  }

  const ca = readFileSync(signer.identities.ra.caFile);
  const agents = new Map<string, Agent>();
  const agentFor = (who: string) => {
    let agent = agents.get(who);
    if (!agent) {
      const id = identities[who];
      agent = new Agent({ connect: { ca, ...(id ? { cert: readFileSync(id.certFile), key: readFileSync(id.keyFile) } : {}), servername: 'localhost' } });
      agents.set(who, agent);
    }
    return agent;
  };
  let keys = 0;
  const configFile = join(dir, 'ra-config.json');
  writeFileSync(configFile, JSON.stringify({ ...raw, log: { level: 'warn' }, reconciliation: { ...(raw.reconciliation as object), intervalSeconds: 1 } }));
  const fixture: RaFixture = {
    signer,
    get ra() {
      return ra;
    },
    get httpUrl() {
      return httpUrl;
    },
    config,
    db,
    dir,
    logs,
    signerLogs,
    identities,
    async call(who, method, path, body, idempotencyKey) {
      const headers: Record<string, string> = {};
      if (body !== undefined) headers['content-type'] = 'application/json';
      if (method === 'POST' && idempotencyKey !== null) headers['idempotency-key'] = idempotencyKey ?? `test-${process.pid}-${++keys}-${randomBytes(4).toString('hex')}`;
      const res = await undiciFetch(`${httpUrl}${path}`, { method, headers, ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}), dispatcher: agentFor(who) });
      const text = await res.text();
      let parsed: Record<string, unknown> = {};
      try {
        parsed = text ? JSON.parse(text) : {};
      } catch {
        parsed = { raw: text };
      }
      return { status: res.status, body: parsed, headers: res.headers as unknown as Headers, text };
    },
    csr(name, bits = 2048) {
      const key = join(dir, `${name}.card.key`);
      const csr = join(dir, `${name}.card.csr`);
      // The CSR's subject is ignored by ra: it names somebody else on purpose.
      execFileSync('openssl', ['req', '-new', '-newkey', `rsa:${bits}`, '-nodes', '-keyout', key, '-subj', '/CN=Anyone At All', '-out', csr], { stdio: 'ignore' });
      return readFileSync(csr, 'utf8');
    },
    async statusEvents() {
      const { rows } = await db.query(`SELECT payload FROM outbox WHERE topic = $1 ORDER BY producer, seq`, [Topics.certificateStatus]);
      return rows.map((r) => fromBinary(eventsV1.CertificateStatusChangedSchema, r.payload));
    },
    async auditEvents() {
      const { rows } = await db.query(`SELECT payload FROM outbox WHERE topic = $1 AND producer = 'ra.audit' ORDER BY seq`, [Topics.audit]);
      return rows.map((r) => fromBinary(eventsV1.AuditEventSchema, r.payload));
    },
    async restart(deps) {
      await ra.runtime.stop();
      ra = await start(deps);
      httpUrl = ra.httpUrl;
    },
    async spawn(env = {}) {
      const main = join(__dirname, '..', 'dist', 'main.js');
      const child = spawn(process.execPath, [main, configFile], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      child.stdout!.on('data', (d: Buffer) => logs.push(...d.toString('utf8').split('\n').filter(Boolean)));
      child.stderr!.on('data', (d: Buffer) => logs.push(...d.toString('utf8').split('\n').filter(Boolean)));
      const until = Date.now() + 60_000;
      for (;;) {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`ra exited while starting (${child.exitCode ?? child.signalCode}); its log:\n${logs.slice(-20).join('\n')}`);
        try {
          const res = await undiciFetch(`${httpUrl}/v1/public/issuers`, { dispatcher: agentFor('anonymous') });
          if (res.status === 200) return child;
        } catch {
          // not listening yet
        }
        if (Date.now() > until) throw new Error('ra did not start within 60 s');
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async stop() {
      for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      for (const agent of agents.values()) await agent.close();
      await db.end();
      if (!options.child) await ra.runtime.stop();
      await signer.stop();
    },
  };
  return fixture;
}

/** Valid national IDs for tests: a prefix with its check digit appended. */
export { withCheckDigit } from '../src/domain/national-id';
