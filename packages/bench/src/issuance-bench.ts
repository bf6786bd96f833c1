import 'reflect-metadata';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, webcrypto } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import pg from 'pg';
import { Agent, request } from 'undici';
import { parseConfig, systemClock } from '@pki/kit';
import { createDatabase, createServiceIdentities, createSoftHsmToken, findRepoRoot, freePort, startPostgres, useSoftHsmConfig } from '@pki/testing';
import { ensureSoftwareCa, issueClientCertificate } from '@pki/internal-ca';
import { caSignerConfigSchema, createIssuing, createRoot, DEV_ROOT_CA_SUBJECT, DEVELOPMENT_ATTENDANCE, openCeremony } from '@pki/ca-signer';
import { addPrincipal, withCheckDigit } from '@pki/ra';
import { CpuMeter, opensslSpeed, percentile, pkcs11Alone, postgresChildrenCpuUs, postgresCpuByRole, postmasterPidOf } from './common';

/* eslint-disable no-console -- a benchmark reports to its operator */

/**
 * Certificates issued per second end to end, as a registration counter drives it: HTTPS with an
 * officer's client certificate -> ra (a process of its own, as deployed) -> ca-signer over gRPC and
 * mTLS (its own process) -> SoftHSM through PKCS#11 -> both recorded in ra's registry with their
 * status and audit events. Each approval issues a card's two certificates. Next to it, in the same
 * run: the PKCS#11 adapter alone signing with the same CA key, sessions and threads (the ceiling the
 * token allows on this machine), and `openssl speed rsa2048`.
 *
 * Settings (environment): BENCH_CARDS (applications approved in the measurement, default 3000:
 * about 12 s, long enough to average the machine's minute-to-minute drift), BENCH_CONCURRENCY
 * (approvals in flight, default 64: a bulk re-issuance job's driver, which keeps the cores busy
 * while batches wait for their commits; decision 0041), BENCH_SESSIONS (HSM sessions, default
 * twice the cores), BENCH_PROFILE=1 (writes --cpu-prof profiles of ra and ca-signer into the run
 * folder).
 */
const CARDS = Number(process.env.BENCH_CARDS ?? 3000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 64);
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 2 * os.availableParallelism());
const PROFILE = process.env.BENCH_PROFILE === '1';
/** BENCH_ISSUANCE_STATEMENTS=1: every statement's calls and time per certificate (pg_stat_statements) go into the results. */
const STATEMENTS = process.env.BENCH_ISSUANCE_STATEMENTS === '1';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/**
 * PKCS#10 requests for distinct RSA-2048 card keys. Key generation is not what is measured and
 * takes minutes on two cores, so they are made once per machine and kept under var/bench/cache
 * (each run issues them into a fresh registry).
 */
async function cardRequests(cacheDir: string, count: number): Promise<string[]> {
  const file = path.join(cacheDir, 'card-csrs.json');
  const cached: string[] = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as string[]) : [];
  if (cached.length >= count) return cached.slice(0, count);
  console.log(`making ${count - cached.length} card key pairs and requests (once per machine, cached in ${path.relative(process.cwd(), file)})...`);
  const algorithm = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };
  const made: string[] = [...cached];
  while (made.length < count) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(64, count - made.length) }, async () => {
        const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
        const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=card', keys: keys as never, signingAlgorithm: algorithm });
        return csr.toString('pem');
      }),
    );
    made.push(...batch);
    if (made.length % 512 < 64) process.stdout.write(`  ${made.length}/${count}\n`);
  }
  mkdirSync(cacheDir, { recursive: true });
  writeFileSync(file, JSON.stringify(made));
  return made;
}

async function waitReady(url: string, child: ChildProcess, name: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}`);
    try {
      if ((await globalThis.fetch(`${url}/readyz`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${name} did not become ready`);
}

/** The benchmark database's cumulative counters (pg_stat_database). */
async function databaseCounters(pool: pg.Pool): Promise<Record<string, number>> {
  await pool.query('SELECT pg_stat_clear_snapshot()');
  const { rows } = await pool.query(
    `SELECT xact_commit + xact_rollback AS transactions, tup_inserted AS inserted, tup_updated AS updated, tup_deleted AS deleted, tup_returned + tup_fetched AS read, blks_hit + blks_read AS blocks
       FROM pg_stat_database WHERE datname = current_database()`,
  );
  return Object.fromEntries(Object.entries(rows[0] as Record<string, string>).map(([k, v]) => [k, Number(v)]));
}

/** Per table of the benchmark database: rows read (sequential and by index), written, and the scans. */
async function tableCounters(pool: pg.Pool): Promise<Record<string, Record<string, number>>> {
  const { rows } = await pool.query(
    `SELECT schemaname || '.' || relname AS name, COALESCE(seq_tup_read, 0) + COALESCE(idx_tup_fetch, 0) AS "rowsRead", seq_scan AS "seqScans", COALESCE(idx_scan, 0) AS "indexScans",
            n_tup_ins + n_tup_upd + n_tup_del AS "rowsWritten"
       FROM pg_stat_user_tables`,
  );
  return Object.fromEntries(rows.map((r: Record<string, string>) => [r.name, { rowsRead: Number(r.rowsRead), seqScans: Number(r.seqScans), indexScans: Number(r.indexScans), rowsWritten: Number(r.rowsWritten) }]));
}

function perCertificate(before: Record<string, number>, after: Record<string, number>, certificates: number): Record<string, number> {
  return Object.fromEntries(Object.keys(after).map((k) => [k, Number(((after[k]! - before[k]!) / certificates).toFixed(2))]));
}

async function main(): Promise<void> {
  const root = findRepoRoot(__dirname);
  const runDir = path.join(root, 'var', 'bench', `issuance-${process.pid}`);
  mkdirSync(runDir, { recursive: true });
  console.log(`issuance benchmark: ${CARDS} cards (${2 * CARDS} certificates), ${CONCURRENCY} approvals in flight, ${SESSIONS} HSM sessions; ${os.availableParallelism()} cores`);
  const warmup = Math.min(100, Math.floor(CARDS / 10));
  const total = CARDS + warmup;
  const csrs = await cardRequests(path.join(root, 'var', 'bench', 'cache'), 2 * total);

  // BENCH_PG_SETTINGS: extra postgresql.conf lines, separated by ';' (for trying a server setting).
  const extraSettings = (process.env.BENCH_PG_SETTINGS ?? '').split(';').map((l) => l.trim()).filter(Boolean);
  const postgres = await startPostgres({ dir: runDir, durable: true, settings: [...(STATEMENTS ? [`shared_preload_libraries = 'pg_stat_statements'`, 'pg_stat_statements.track = all', 'pg_stat_statements.track_planning = on'] : []), ...extraSettings] });
  const children: ChildProcess[] = [];
  let keepRunDir = false;
  try {
    const databaseUrl = await createDatabase(postgres.url, 'bench');
    const ids = await createServiceIdentities(path.join(runDir, 'identities'), ['ca-signer', 'ra'] as const);
    const token = await createSoftHsmToken({ dir: path.join(runDir, 'softhsm'), label: 'bench-ca', pin: '1234567890123456', soPin: '6543210987654321' });
    const restoreEnv = useSoftHsmConfig(token);
    const pinFile = path.join(runDir, 'pin');
    writeFileSync(pinFile, token.pin, { mode: 0o600 });
    const tls = (c: { caFile: string; certFile: string; keyFile: string }) => ({ caFile: c.caFile, certFile: c.certFile, keyFile: c.keyFile });
    const ports = { signerGrpc: await freePort(), signerOps: await freePort(), raHttp: await freePort(), raGrpc: await freePort(), raOps: await freePort() };
    const signerConfig = {
      log: { level: 'warn' },
      ops: { host: '127.0.0.1', port: ports.signerOps },
      database: { url: databaseUrl, schema: 'ca_signer', maxConnections: 16 },
      grpc: { host: '127.0.0.1', port: ports.signerGrpc, tls: tls(ids['ca-signer']) },
      hsm: { modulePath: token.modulePath, tokenLabel: token.label, pinFile, sessionPoolSize: SESSIONS, softhsmConfigFile: token.configPath },
      allow: { IssueCertificate: [ids.ra.identity], GetIssuers: ['*'], SignCrl: [ids.ra.identity], SignOcspResponses: [ids.ra.identity], SignLiveOcspResponses: [ids.ra.identity], SignAuditCheckpoint: [ids.ra.identity], ListIssuances: [ids.ra.identity], SignValidationReceipt: [ids.ra.identity] },
      publication: { crlBaseUrl: 'http://crl.bench.test/crl', ocspUrl: 'http://ocsp.bench.test/', caIssuersUrl: 'http://bench.test/ca' },
      events: { transport: { type: 'postgres' }, producer: 'ca-signer' },
      // No audit service runs here to confirm the signer's audit events: issuance must not stop.
      auditConfirmation: { required: false },
    };
    const config = parseConfig(caSignerConfigSchema, signerConfig);
    console.log('setting up the CA hierarchy in SoftHSM...');
    const ceremony = await openCeremony(config, { pin: token.pin, attendance: DEVELOPMENT_ATTENDANCE });
    let issuingHsmKey: string;
    try {
      const rootCa = await createRoot(ceremony.context, { generation: 'BENCH-ROOT', keySpec: { type: 'RSA', bits: 2048 }, subject: DEV_ROOT_CA_SUBJECT, validityYears: 30 });
      const issuing = await createIssuing(ceremony.context, { generation: 'BENCH-G1', keySpec: { type: 'RSA', bits: 2048 }, certification: { by: 'root', rootKeyId: rootCa.keyId, validityYears: 20 } });
      if (issuing.by !== 'root') throw new Error('unexpected CSR result');
      issuingHsmKey = issuing.hsmKeyId;
      await ceremony.context.pool.query(`UPDATE issuers SET active = true WHERE key_id = $1`, [issuing.keyId]);
    } finally {
      await ceremony.close();
    }
    restoreEnv();

    const officerCa = await ensureSoftwareCa(path.join(runDir, 'officer-ca'), 'CN=Bench officer CA');
    const officer = await issueClientCertificate({ caDir: officerCa.dir, outDir: path.join(runDir, 'officers'), name: 'registrar', subject: 'CN=registrar' });
    const key = (name: string) => {
      const file = path.join(runDir, `${name}.key32`);
      writeFileSync(file, randomBytes(32).toString('base64'), { mode: 0o600 });
      return file;
    };
    const raConfig = {
      log: { level: 'warn' },
      ops: { host: '127.0.0.1', port: ports.raOps },
      http: { host: '127.0.0.1', port: ports.raHttp, certFile: ids.ra.certFile, keyFile: ids.ra.keyFile, clientCaFiles: [officerCa.certFile], rateLimits: { officerPerMinute: 10_000_000 } },
      grpc: { host: '127.0.0.1', port: ports.raGrpc },
      allow: { GetCertificate: [ids['ca-signer'].identity], ListCertificateStatuses: [ids['ca-signer'].identity], GetCard: [ids['ca-signer'].identity], ResolveOfficer: [ids['ca-signer'].identity], IssueCardCertificates: [ids['ca-signer'].identity], ChangeCardStatus: [ids['ca-signer'].identity], VerifySubscriberCode: [ids['ca-signer'].identity], IssueMobileCertificate: [ids['ca-signer'].identity], ChangeMobileCertificateStatus: [ids['ca-signer'].identity] },
      database: { url: databaseUrl, schema: 'ra', maxConnections: 16 },
      tls: tls(ids.ra),
      caSigner: { address: `127.0.0.1:${ports.signerGrpc}`, serverIdentity: ids['ca-signer'].identity, deadlineMs: 60_000 },
      events: { transport: { type: 'postgres' } },
      personalData: { encryptionKeys: [{ id: 'k1', keyFile: key('pd') }], activeEncryptionKey: 'k1', lookupKeys: [{ id: 'l1', keyFile: key('lookup') }], activeLookupKey: 'l1', referenceKeyFile: key('ref') },
      // Registration (scrypt of the subscriber code) is setup here, not the measurement.
      subscriberCode: { scryptCost: 1024 },
    };
    const write = (name: string, value: unknown) => {
      const file = path.join(runDir, `${name}.json`);
      writeFileSync(file, JSON.stringify(value));
      return file;
    };
    const profile = (name: string) => (PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${runDir}`, `--cpu-prof-name=${name}.cpuprofile`] : []);
    const signer = spawn(process.execPath, [...profile('ca-signer'), path.join(root, 'services', 'ca-signer', 'dist', 'main.js'), write('ca-signer', signerConfig)], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, SOFTHSM2_CONF: token.configPath },
    });
    children.push(signer);
    await waitReady(`http://127.0.0.1:${ports.signerOps}`, signer, 'ca-signer');
    const startRa = async (withProfile: boolean) => {
      const child = spawn(process.execPath, [...(withProfile ? profile('ra') : []), path.join(root, 'services', 'ra', 'dist', 'main.js'), write('ra', raConfig)], { stdio: ['ignore', 'ignore', 'inherit'] });
      children.push(child);
      await waitReady(`http://127.0.0.1:${ports.raOps}`, child, 'ra');
      return child;
    };
    let ra = await startRa(false);
    const raDb = new pg.Pool({ connectionString: databaseUrl, options: '-c search_path=ra', max: 2 });
    await addPrincipal(raDb, { producer: 'ra.audit', clock: systemClock, operator: 'bench' }, { id: 'registrar', kind: 'officer', role: 'registrar', office: 'BENCH', certificate: readFileSync(officer.certFile) });
    await raDb.end();

    const agent = new Agent({ connections: CONCURRENCY, pipelining: 1, connect: { ca: readFileSync(ids.ra.caFile), cert: readFileSync(officer.certFile), key: readFileSync(officer.keyFile), servername: 'localhost' } });
    const base = `https://127.0.0.1:${ports.raHttp}`;
    let requestNumber = 0;
    // undici's request rather than fetch: the load generator shares the two cores with what it
    // measures, and fetch's WHATWG layers nearly doubled its CPU (about 225 -> 125 µs per certificate).
    const post = async (url: string, body?: unknown): Promise<Record<string, unknown>> => {
      const res = await request(`${base}${url}`, {
        method: 'POST',
        dispatcher: agent,
        headers: { 'idempotency-key': `bench-${process.pid}-${++requestNumber}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      const json = (await res.body.json()) as Record<string, unknown>;
      if (res.statusCode >= 300) throw new Error(`${url}: ${res.statusCode} ${JSON.stringify(json)}`);
      return json;
    };
    const inParallel = async <T>(count: number, parallel: number, work: (i: number) => Promise<T>): Promise<T[]> => {
      const out: T[] = new Array(count);
      let next = 0;
      await Promise.all(Array.from({ length: parallel }, async () => {
        while (next < count) {
          const i = next++;
          out[i] = await work(i);
        }
      }));
      return out;
    };

    console.log(`registering ${total} subscribers and their applications...`);
    const started = Date.now();
    const applications = await inParallel(total, 8, async (i) => {
      const { subscriberId } = await post('/v1/subscribers', {
        nationalId: withCheckDigit(`A1${String(10_000_000 + i).slice(1)}`),
        name: `王小明${i}`.replace(/\d/g, (d) => '零一二三四五六七八九'[Number(d)]!),
        birthDate: '1980-01-01',
        subscriberCode: `bench${i}code`,
        publicationConsent: false,
      });
      const application = await post('/v1/applications', { subscriberId, cardNumber: `BENCH${String(i).padStart(10, '0')}`, kind: 'NEW', signingCsr: csrs[2 * i], encryptionCsr: csrs[2 * i + 1] });
      return application.id as string;
    });
    console.log(`  set up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    if (PROFILE) {
      // A fresh ra process for the measurement, so that its profile holds the approvals only.
      ra.kill('SIGTERM');
      await new Promise((r) => ra.once('exit', r));
      ra = await startRa(true);
    }

    const approve = (id: string) => post(`/v1/applications/${id}/approval`);
    await inParallel(warmup, CONCURRENCY, (i) => approve(applications[i]!));
    // The benchmark's PostgreSQL (postmaster and backends) apart; 'other' is the machine's busy time
    // less everything named, i.e. the OS, Kafka-less relays' peers and everybody else's load.
    const postmasterPid = postmasterPidOf(postgres.dir);
    const meter = new CpuMeter({ ra: ra.pid!, 'ca-signer': signer.pid! }, postmasterPid);
    const statsDb = new pg.Pool({ connectionString: databaseUrl, max: 1 });
    if (STATEMENTS) {
      await statsDb.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
      await statsDb.query('SELECT pg_stat_statements_reset()');
    }
    const databaseWork = await databaseCounters(statsDb);
    const tableWork = await tableCounters(statsDb);
    const postgresBefore = postmasterPid === undefined ? undefined : postgresChildrenCpuUs(postmasterPid);
    // Each card's approval request, sent to answered: what a counter (or a re-issuance job) waits.
    const latenciesMs: number[] = [];
    meter.start();
    await inParallel(CARDS, CONCURRENCY, async (i) => {
      const sent = performance.now();
      await approve(applications[warmup + i]!);
      latenciesMs.push(performance.now() - sent);
    });
    const certificates = 2 * CARDS;
    const cpu = meter.stop(certificates);
    latenciesMs.sort((a, b) => a - b);
    const latencyAt = (p: number) => Number(percentile(latenciesMs, p).toFixed(1));
    // PostgreSQL's share by whom it served: ra's backends, ca-signer's, the event bus's, WAL writer...
    const postgresByRole =
      postgresBefore === undefined
        ? undefined
        : Object.fromEntries(
            Object.entries(
              postgresCpuByRole(postgresBefore, postgresChildrenCpuUs(postmasterPid!), (await statsDb.query('SELECT pid, application_name, backend_type FROM pg_stat_activity')).rows),
            )
              .map(([role, us]) => [role, Math.round(us / certificates)] as const)
              .filter(([, us]) => us > 0)
              .sort(([, a], [, b]) => b - a),
          );
    // What the database did per certificate (every client: ra, ca-signer, both relays), read
    // after the backends' statistics are flushed (at most once a second when they go idle).
    await new Promise((r) => setTimeout(r, 1500));
    const databasePerCertificate = perCertificate(databaseWork, await databaseCounters(statsDb), certificates);
    const tablesAfter = await tableCounters(statsDb);
    const tablesPerCertificate = Object.fromEntries(
      Object.entries(tablesAfter)
        .map(([table, after]) => [table, perCertificate(tableWork[table] ?? Object.fromEntries(Object.keys(after).map((k) => [k, 0])), after, certificates)] as const)
        .filter(([, c]) => Object.values(c).some((v) => v >= 0.01))
        .sort(([, a], [, b]) => b.rowsRead! - a.rowsRead!),
    );
    // Calls and execution time per certificate of every statement (BEGIN and COMMIT included), most
    // frequent first: the round trips of ra, ca-signer and both relays.
    const statements = STATEMENTS
      ? (
          await statsDb.query(
            `SELECT round(calls::numeric / $1, 2)::float AS "callsPerCertificate", round((total_exec_time * 1000 / $1)::numeric, 1)::float AS "execUsPerCertificate",
                    round((total_plan_time * 1000 / $1)::numeric, 1)::float AS "planUsPerCertificate",
                    left(regexp_replace(query, '\\s+', ' ', 'g'), 140) AS query
               FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat%' ORDER BY calls DESC, total_exec_time DESC LIMIT 40`,
            [certificates],
          )
        ).rows
      : undefined;
    const statementCalls = STATEMENTS
      ? Number((await statsDb.query(`SELECT round(sum(calls)::numeric / $1, 2)::float AS n FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat%'`, [certificates])).rows[0].n)
      : undefined;
    await statsDb.end();
    const perSecond = certificates / cpu.elapsed;
    // The issuance path's own CPU per certificate (everything but 'other'), and the rate it would
    // reach if it had every core to itself: the ceiling the shared machine hides.
    const pipelineUs = Object.entries(cpu.perOperationUs).reduce((sum, [name, us]) => (name === 'other' ? sum : sum + us), 0);
    const pipelineCeiling = (os.availableParallelism() * 1e6) / pipelineUs;
    await agent.close();

    console.log('measuring the references (PKCS#11 alone with the same CA key; openssl speed rsa2048)...');
    const alone = pkcs11Alone({ modulePath: token.modulePath, softhsmConfigFile: token.configPath, tokenLabel: token.label, pinFile, keyId: issuingHsmKey, algorithm: 'RSA-SHA256', seconds: 5, sessions: SESSIONS, inFlight: 4 * SESSIONS });
    const openssl = opensslSpeed('rsa2048', 5);
    const result = {
      date: new Date().toISOString(),
      cores: os.availableParallelism(),
      cpu: os.cpus()[0]?.model,
      load: os.loadavg(),
      settings: { cards: CARDS, concurrency: CONCURRENCY, sessions: SESSIONS },
      certificatesPerSecond: Math.round(perSecond),
      cardsPerSecond: Math.round(perSecond / 2),
      elapsedSeconds: Number(cpu.elapsed.toFixed(2)),
      pkcs11AlonePerSecond: Math.round(alone.perSecond),
      serviceToPkcs11Alone: Number((perSecond / alone.perSecond).toFixed(3)),
      opensslSpeedRsa2048: Math.round(openssl),
      cpuPerCertificateUs: cpu.perOperationUs,
      postgresCpuPerCertificateUsByRole: postgresByRole,
      pkcs11AloneCpuPerSignatureUs: alone.cpuPerSignatureUs,
      machineUtilisation: cpu.machineUtilisation,
      cardLatencyMs: { inFlight: CONCURRENCY, p50: latencyAt(50), p99: latencyAt(99) },
      databasePerCertificate,
      tablesPerCertificate,
      ...(statements ? { statementsPerCertificate: { total: statementCalls!, top: statements } } : {}),
      pipelineCpuPerCertificateUs: pipelineUs,
      pipelineCeilingPerSecond: Math.round(pipelineCeiling),
      eightMillionCertificatesHours: Number((8_000_000 / perSecond / 3600).toFixed(1)),
    };
    console.log(
      `  end to end: ${result.certificatesPerSecond} certificates/s (${result.cardsPerSecond} cards/s) over ${result.elapsedSeconds} s; machine ${Math.round(cpu.machineUtilisation * 100)}% busy\n` +
        `  a card's approval, request to answer, ${CONCURRENCY} in flight: p50 ${result.cardLatencyMs.p50} ms, p99 ${result.cardLatencyMs.p99} ms\n` +
        `  PKCS#11 alone, same key: ${result.pkcs11AlonePerSecond} signatures/s (${alone.cpuPerSignatureUs} µs CPU each): end to end reaches ${result.serviceToPkcs11Alone} of it\n` +
        `  openssl speed rsa2048: ${result.opensslSpeedRsa2048}/s\n` +
        `  CPU µs per certificate: ${Object.entries(cpu.perOperationUs).map(([k, v]) => `${k} ${v}`).join(', ')}\n` +
        (postgresByRole ? `  PostgreSQL's CPU µs per certificate by whom it served: ${Object.entries(postgresByRole).map(([k, v]) => `${k} ${v}`).join(', ')}\n` : '') +
        `  PostgreSQL per certificate (every client): ${Object.entries(databasePerCertificate).map(([k, v]) => `${k} ${v}`).join(', ')}\n` +
        (result.statementsPerCertificate ? `  statements per certificate (pg_stat_statements): ${result.statementsPerCertificate.total}\n` : '') +
        Object.entries(tablesPerCertificate).slice(0, 8).map(([t, c]) => `    ${t}: ${Object.entries(c).map(([k, v]) => `${k} ${v}`).join(', ')}\n`).join('') +
        `  the issuance path's own CPU: ${pipelineUs} µs per certificate, i.e. at most ${result.pipelineCeilingPerSecond} certificates/s on ${os.availableParallelism()} cores it had to itself\n` +
        `  8 million certificates at this rate: ${result.eightMillionCertificatesHours} h`,
    );
    const out = path.join(root, 'var', 'bench', 'issuance-latest.json');
    writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
    console.log(`results written to ${path.relative(root, out)}${PROFILE ? `; CPU profiles in ${path.relative(root, runDir)}` : ''}`);
    keepRunDir = PROFILE;
  } finally {
    for (const child of children.reverse()) {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
    }
    await postgres.stop();
    if (!keepRunDir) rmSync(runDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`bench failed: ${(err as Error).stack ?? err}`);
  process.exit(1);
});
