import { spawn, type ChildProcess } from 'node:child_process';
import { createReadStream, createWriteStream, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createLogger, parseConfig, systemClock } from '@pki/kit';
import { createPool, migrate, withTransaction } from '@pki/db';
import { appendAuditEvent, appendAuditEvents, AuditActorType, AuditOutcome, type NewAuditEvent } from '@pki/audit-events';
import { createEventTransport, outboxMigration, OutboxRelay } from '@pki/outbox';
import { CompactRange, hashLeaf } from '@pki/merkle';
import { createGrpcClient } from '@pki/grpc';
import { caSignerV1 } from '@pki/proto';
import { createDatabase, createServiceIdentities, createSoftHsmToken, findRepoRoot, freePort, startKafka, startPostgres, useSoftHsmConfig } from '@pki/testing';
import { caSignerConfigSchema, ensureDevHierarchy, startCaSigner } from '@pki/ca-signer';

/* eslint-disable no-console -- a benchmark reports to its operator */

/**
 * The audit log's two figures (issue 11), each next to its target and a same-run ceiling:
 *
 * 1. End to end: producers commit audit events through their transactional outboxes (real
 *    PostgreSQL, appendAuditEvents: BENCH_AUDIT_PER_TX events per transaction in one statement),
 *    relays publish them to a real Kafka broker, and the audit service (the built
 *    services/audit/dist/main.js, its own process) consumes them, checks every producer's
 *    sequence, appends each to the Merkle tree and stores leaves and nodes, while checkpoints are
 *    signed by a ca-signer with SoftHSM every few seconds. Rate = events / (last recorded - first
 *    written). Also measured in the same run: the producers' commit rate with one statement per
 *    event (appendAuditEvent), and the audit service alone recording a backlog already in Kafka.
 * 2. Offline: the verifier CLI (services/audit/dist/verify-cli.js, its own process) on an export
 *    of BENCH_AUDIT_OFFLINE_EVENTS (default 1,000,000) leaves with a checkpoint signed by that
 *    ca-signer. Ceiling: reading the same file and hashing each line, nothing else.
 *
 * Settings: BENCH_AUDIT_EVENTS (end to end, default 100000), BENCH_AUDIT_PRODUCERS (default 4),
 * BENCH_AUDIT_WRITERS (concurrent writers per producer, default 2), BENCH_AUDIT_PER_TX (events per
 * transaction, default 10), BENCH_AUDIT_OFFLINE_EVENTS.
 */
const EVENTS = Number(process.env.BENCH_AUDIT_EVENTS ?? 100_000);
const PRODUCERS = Number(process.env.BENCH_AUDIT_PRODUCERS ?? 4);
const WRITERS = Number(process.env.BENCH_AUDIT_WRITERS ?? 2);
const PER_TX = Number(process.env.BENCH_AUDIT_PER_TX ?? 10);
const OFFLINE_EVENTS = Number(process.env.BENCH_AUDIT_OFFLINE_EVENTS ?? 1_000_000);
const TARGET_END_TO_END = 5_000;
const TESSERA_POSIX_12_CORES = 2_900;
const TARGET_OFFLINE = 250_000;

const quiet = createLogger({ service: 'audit-bench', level: 'warn' });

async function waitFor(what: string, condition: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// /proc times are in clock ticks; Linux reports USER_HZ = 100 to user space.
const TICK_SECONDS = 0.01;

/** utime + stime (+ the reaped children's, for a server whose backends come and go) of one process, in seconds. */
function processCpu(pid: number, withReapedChildren = false): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After the command name: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
    const [utime, stime, cutime, cstime] = [fields[11], fields[12], fields[13], fields[14]].map(Number);
    return (utime! + stime! + (withReapedChildren ? cutime! + cstime! : 0)) * TICK_SECONDS;
  } catch {
    return 0;
  }
}

/** CPU seconds of a process and its living children (PostgreSQL: the postmaster and its backends). */
function treeCpu(rootPid: number): number {
  let total = processCpu(rootPid, true);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === rootPid) total += processCpu(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

function machineBusySeconds(): number {
  const ticks = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  return (ticks.reduce((a, b) => a + b, 0) - ticks[3]! - ticks[4]!) * TICK_SECONDS;
}

async function waitReady(url: string, child: ChildProcess): Promise<void> {
  await waitFor('the audit service', async () => {
    if (child.exitCode !== null) throw new Error(`audit exited with ${child.exitCode}`);
    return fetch(`${url}/readyz`).then((r) => r.ok, () => false);
  }, 60_000);
}

async function main(): Promise<void> {
  const root = findRepoRoot(__dirname);
  const runDir = path.join(root, 'var', 'bench', `audit-run-${process.pid}`);
  mkdirSync(runDir, { recursive: true });
  const load = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');
  console.log(`audit benchmark: ${EVENTS} events end to end from ${PRODUCERS} producers (${WRITERS} writers each, ${PER_TX} events per transaction); ${OFFLINE_EVENTS} offline; ${os.cpus().length} cores; load ${load()}`);
  const loadBefore = load();
  const [postgres, kafka] = await Promise.all([startPostgres({ dir: runDir, durable: true }), startKafka({ dir: runDir })]);
  let audit: ChildProcess | undefined;
  let stopSigner: (() => Promise<void>) | undefined;
  const results: Array<Record<string, unknown>> = [];
  try {
    const databaseUrl = await createDatabase(postgres.url, 'bench_audit');
    const ids = await createServiceIdentities(path.join(runDir, 'identities'), ['ca-signer', 'audit'] as const);

    // ca-signer with a SoftHSM development hierarchy, for the checkpoint signatures.
    const token = await createSoftHsmToken({ dir: path.join(runDir, 'softhsm'), label: 'bench-audit', pin: '1234567890123456', soPin: '6543210987654321' });
    const restoreEnv = useSoftHsmConfig(token);
    const pinFile = path.join(runDir, 'pin');
    writeFileSync(pinFile, token.pin, { mode: 0o600 });
    const signerConfig = parseConfig(caSignerConfigSchema, {
      log: { level: 'warn' },
      ops: { host: '127.0.0.1', port: 0 },
      database: { url: databaseUrl, schema: 'ca_signer' },
      grpc: { host: '127.0.0.1', port: 0, tls: ids['ca-signer'] && { caFile: ids['ca-signer'].caFile, certFile: ids['ca-signer'].certFile, keyFile: ids['ca-signer'].keyFile } },
      hsm: { modulePath: token.modulePath, tokenLabel: token.label, pinFile, sessionPoolSize: 2 },
      allow: { IssueCertificate: [ids['ca-signer'].identity], GetIssuers: ['*'], SignCrl: [ids['ca-signer'].identity], SignOcspResponses: [ids['ca-signer'].identity], SignLiveOcspResponses: [ids['ca-signer'].identity], SignAuditCheckpoint: [ids.audit.identity], ListIssuances: [ids['ca-signer'].identity], SignValidationReceipt: [ids['ca-signer'].identity] },
      publication: { crlBaseUrl: 'http://crl.bench.test/crl', ocspUrl: 'http://ocsp.bench.test/', caIssuersUrl: 'http://bench.test/ca' },
      events: { transport: { type: 'postgres' }, producer: 'ca-signer' },
    });
    const caDir = path.join(runDir, 'ca');
    await ensureDevHierarchy(signerConfig, caDir);
    const signer = await startCaSigner(signerConfig, { logger: quiet });
    stopSigner = async () => {
      await signer.runtime.stop();
      restoreEnv();
    };

    // Producers: one schema and outbox each, relayed to Kafka.
    const transport = await createEventTransport({ type: 'kafka', brokers: kafka.brokers, clientId: 'bench-producers' }, { logger: quiet });
    await transport.ensureTopics(['pki.audit.v1', 'pki.audit-checkpoints.v1']);
    const producers = await Promise.all(
      Array.from({ length: PRODUCERS }, async (_, i) => {
        const schema = `producer_${i}`;
        const pool = createPool({ url: databaseUrl, schema, maxConnections: WRITERS + 2 });
        await migrate(pool, { schema, migrations: [outboxMigration(1)] });
        const relay = new OutboxRelay({ pool, publisher: transport.publisher, producers: [`bench-${i}`], batchSize: 2000, pollIntervalMs: 50, logger: quiet });
        return { name: `bench-${i}`, pool, relay };
      }),
    );
    const event: NewAuditEvent = {
      action: 'certificate.suspend',
      outcome: AuditOutcome.SUCCESS,
      actor: { type: AuditActorType.OFFICER, id: 'officer-0042', office: '63000000', role: 'registrar' },
      objects: [{ type: 'certificate', id: '7f3a9c0e5b2d4f6a8c1e3b5d7f9a0c2e' }],
      reason: 'CERTIFICATE_HOLD',
      attributes: { channel: 'counter' },
    };
    const events = Array.from({ length: PER_TX }, () => event);
    /** Writes about `total` events; `batched`: one statement per transaction (appendAuditEvents), else one per event. */
    const write = async (total: number, batched = true): Promise<{ ms: number; written: number }> => {
      const started = Date.now();
      const perWriter = Math.ceil(total / (PRODUCERS * WRITERS) / PER_TX);
      await Promise.all(
        producers.flatMap((p) =>
          Array.from({ length: WRITERS }, async () => {
            const channel = { producer: p.name, clock: systemClock };
            for (let t = 0; t < perWriter; t++) {
              await withTransaction(p.pool, async (tx) => {
                if (batched) await appendAuditEvents(tx, channel, events);
                else for (const e of events) await appendAuditEvent(tx, channel, e);
              });
            }
          }),
        ),
      );
      return { ms: Date.now() - started, written: perWriter * PRODUCERS * WRITERS * PER_TX };
    };

    const auditDb = new pg.Pool({ connectionString: databaseUrl, options: '-c search_path=audit' });
    const treeSize = async () => Number((await auditDb.query('SELECT tree_size FROM log_state').catch(() => ({ rows: [{ tree_size: 0 }] }))).rows[0]?.tree_size ?? 0);
    const opsPort = await freePort();
    const configFile = path.join(runDir, 'audit.json');
    writeFileSync(configFile, JSON.stringify({
      log: { level: 'warn' },
      ops: { host: '127.0.0.1', port: opsPort },
      database: { url: databaseUrl, schema: 'audit', maxConnections: 10 },
      http: { host: '127.0.0.1', port: 0, certFile: ids.audit.certFile, keyFile: ids.audit.keyFile, clientCaFiles: [ids.audit.caFile] },
      tls: { caFile: ids.audit.caFile, certFile: ids.audit.certFile, keyFile: ids.audit.keyFile },
      caSigner: { address: signer.grpcAddress, serverIdentity: ids['ca-signer'].identity },
      auditLog: { origin: 'bench.pki.test/audit', maxBatch: 2000 },
      checkpoints: { intervalMs: 5000, trustAnchorFiles: [path.join(caDir, 'root.pem'), path.join(caDir, 'issuing.pem')] },
      events: { transport: { type: 'kafka', brokers: kafka.brokers, clientId: 'audit' } },
    }));
    const startAudit = async () => {
      const child = spawn(process.execPath, [path.join(root, 'services', 'audit', 'dist', 'main.js'), configFile], { stdio: ['ignore', 'ignore', 'inherit'] });
      await waitReady(`http://127.0.0.1:${opsPort}`, child);
      return child;
    };
    const stopAudit = async (child: ChildProcess) => {
      child.kill('SIGTERM');
      if (child.exitCode === null) await once(child, 'exit');
    };

    // Warm-up (JIT, connections, the consumer group), not measured.
    audit = await startAudit();
    for (const p of producers) p.relay.start();
    await write(2000);
    await waitFor('the warm-up', async () => (await treeSize()) >= 2000, 120_000);

    // 1. End to end, with the CPU each part spent on it.
    const postmasterPid = Number(readFileSync(path.join(postgres.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
    const brokerPid = Number(readFileSync(path.join(kafka.dir, 'harness.pid'), 'utf8').trim());
    const cpuNow = () => ({ postgres: treeCpu(postmasterPid), kafka: processCpu(brokerPid), audit: processCpu(audit!.pid!), producers: process.cpuUsage().user / 1e6 + process.cpuUsage().system / 1e6, machine: machineBusySeconds() });
    const before = await treeSize();
    const cpu0 = cpuNow();
    const t0 = Date.now();
    const { ms: writeMs, written } = await write(EVENTS);
    await waitFor('end to end', async () => (await treeSize()) >= before + written, 600_000);
    const e2eMs = Date.now() - t0;
    const cpu1 = cpuNow();
    const perEventUs = (k: keyof typeof cpu0) => Math.round(((cpu1[k] - cpu0[k]) / written) * 1e6);
    const cpuPerEventUs = {
      postgres: perEventUs('postgres'),
      kafkaBroker: perEventUs('kafka'),
      auditService: perEventUs('audit'),
      producersAndRelays: perEventUs('producers'),
      // The whole machine, other engineers' work included, divided by these events.
      machine: perEventUs('machine'),
    };
    const e2e = (written / e2eMs) * 1000;
    const outboxRate = (written / writeMs) * 1000;
    console.log(`  end to end: ${written} events in ${(e2eMs / 1000).toFixed(1)} s = ${e2e.toFixed(0)} events/s (target ${TARGET_END_TO_END}: ratio ${(e2e / TARGET_END_TO_END).toFixed(2)}; Tessera POSIX 12 cores ${TESSERA_POSIX_12_CORES}: ratio ${(e2e / TESSERA_POSIX_12_CORES).toFixed(2)})`);
    const ours = cpuPerEventUs.postgres + cpuPerEventUs.kafkaBroker + cpuPerEventUs.auditService + cpuPerEventUs.producersAndRelays;
    console.log(`    the producers' commits (${PER_TX} events per transaction, one statement) ran at ${outboxRate.toFixed(0)} events/s during it`);
    console.log(`    CPU µs per event: PostgreSQL ${cpuPerEventUs.postgres}, Kafka broker ${cpuPerEventUs.kafkaBroker}, audit service ${cpuPerEventUs.auditService}, producers and relays ${cpuPerEventUs.producersAndRelays}; together ${ours} (2 cores = ${Math.round(2e6 / ours)} events/s if the machine were the pipeline's alone); the whole machine, other load included, ${cpuPerEventUs.machine}`);
    // The producing side with one statement per event, as a single action's appendAuditEvent calls write.
    const single = await write(Math.min(EVENTS, 30_000), false);
    await waitFor('the per-event writes', async () => (await treeSize()) >= before + written + single.written, 600_000);
    const singleRate = (single.written / single.ms) * 1000;
    console.log(`    producers committing one statement per event (appendAuditEvent): ${singleRate.toFixed(0)} events/s (${single.written} events)`);

    // Ceiling of the audit service alone: a backlog already in Kafka, recorded from a standing start.
    await stopAudit(audit);
    audit = undefined;
    const { written: backlogWritten } = await write(EVENTS);
    const relayed = async () => (await Promise.all(producers.map((p) => p.pool.query<{ n: string }>('SELECT count(*) AS n FROM outbox WHERE published_at IS NULL')))).every((r) => Number(r.rows[0]!.n) === 0);
    await waitFor('the backlog in Kafka', relayed, 600_000);
    const backlogBefore = await treeSize();
    const t1 = Date.now();
    audit = await startAudit();
    await waitFor('the backlog recorded', async () => (await treeSize()) >= backlogBefore + backlogWritten, 600_000);
    const backlogMs = Date.now() - t1;
    const auditAlone = (backlogWritten / backlogMs) * 1000;
    console.log(`    audit service alone on a Kafka backlog: ${backlogWritten} events in ${(backlogMs / 1000).toFixed(1)} s = ${auditAlone.toFixed(0)} events/s (including its start)`);
    const breaks = Number((await auditDb.query(`SELECT count(*) AS n FROM records WHERE kind = 'break'`)).rows[0].n);
    results.push({
      measurement: 'audit end to end (outbox, Kafka, audit service with sequence checks and tree appends)',
      events: written,
      seconds: e2eMs / 1000,
      eventsPerSecond: Math.round(e2e),
      target: TARGET_END_TO_END,
      ratioToTarget: Number((e2e / TARGET_END_TO_END).toFixed(2)),
      ratioToTesseraPosix12Cores: Number((e2e / TESSERA_POSIX_12_CORES).toFixed(2)),
      producerCommitsDuringRunPerSecond: Math.round(outboxRate),
      cpuPerEventUs,
      pipelineCpuPerEventUs: ours,
      eventsPerSecondIfTheMachineWereThePipelines: Math.round(2e6 / ours),
      producerCommitsOneStatementPerEventPerSecond: Math.round(singleRate),
      auditServiceAloneOnBacklogPerSecond: Math.round(auditAlone),
      breaks,
    });
    await stopAudit(audit);
    audit = undefined;
    for (const p of producers) {
      await p.relay.stop();
      await p.pool.end();
    }
    await transport.close();
    await auditDb.end();

    // 2. Offline verification of a 1,000,000-leaf export.
    const exportFile = path.join(runDir, 'export.jsonl');
    console.log(`  writing an export of ${OFFLINE_EVENTS} leaves...`);
    const out = createWriteStream(exportFile);
    const range = CompactRange.empty();
    const origin = 'bench.pki.test/offline';
    out.write(JSON.stringify({ type: 'export', format: 'pki-audit-export v1', origin, from: 0, to: OFFLINE_EVENTS, exportedAt: new Date().toISOString(), frontier: [] }) + '\n');
    const heads = new Map<string, number>();
    for (let i = 0; i < OFFLINE_EVENTS; i++) {
      const producer = `bench-${i % PRODUCERS}`;
      const seq = (heads.get(producer) ?? 0) + 1;
      heads.set(producer, seq);
      const at = new Date(Date.UTC(2026, 0, 1) + i * 10).toISOString();
      const line = JSON.stringify({
        type: 'event', index: i, producer, seq, eventId: `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`, occurredAt: at, action: 'certificate.suspend', outcome: 'SUCCESS',
        actor: { type: 'OFFICER', id: 'officer-0042', office: '63000000', role: 'registrar' }, objects: [{ type: 'certificate', id: i.toString(16).padStart(32, '0') }], reason: 'CERTIFICATE_HOLD',
        attributes: { channel: 'counter' }, committedAt: at, payloadSha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
      });
      range.append(hashLeaf(Buffer.from(line)));
      if (!out.write(line + '\n')) await once(out, 'drain');
    }
    const client = createGrpcClient(caSignerV1.CaSignerService, { address: signer.grpcAddress, serverIdentity: ids['ca-signer'].identity, tls: { caFile: ids.audit.caFile, certFile: ids.audit.certFile, keyFile: ids.audit.keyFile }, deadlineMs: 30_000 });
    const signed = await client.signAuditCheckpoint({ origin, treeSize: BigInt(OFFLINE_EVENTS), rootHash: range.root(), previousTreeSize: 0n, producerHeads: [...heads].map(([producer, seq]) => ({ producer, sequence: BigInt(seq) })) });
    client.close();
    out.write(JSON.stringify({ type: 'checkpoint', treeSize: OFFLINE_EVENTS, checkpoint: Buffer.from(signed.checkpoint).toString('base64'), signature: Buffer.from(signed.signature).toString('base64'), signatureAlgorithm: signed.signatureAlgorithm, signerCertificate: Buffer.from(signed.signerCertificate).toString('base64') }) + '\n');
    out.end(JSON.stringify({ type: 'end', leaves: OFFLINE_EVENTS }) + '\n');
    await once(out, 'finish');
    await stopSigner();
    stopSigner = undefined;
    const bytes = readFileSync(exportFile).length;

    const t2 = Date.now();
    const machine2 = machineBusySeconds();
    const verifier = spawn(process.execPath, [path.join(root, 'services', 'audit', 'dist', 'verify-cli.js'), exportFile, '--ca', path.join(caDir, 'root.pem'), '--ca', path.join(caDir, 'issuing.pem'), '--quiet', '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let verifyOut = '';
    verifier.stdout!.on('data', (d: Buffer) => (verifyOut += d.toString()));
    // Its CPU time (all threads), sampled until it exits: at most one sample interval is missed.
    let verifierCpu = 0;
    const sampler = setInterval(() => (verifierCpu = Math.max(verifierCpu, processCpu(verifier.pid!))), 20);
    await once(verifier, 'exit');
    clearInterval(sampler);
    const verifyMs = Date.now() - t2;
    const machineDuringVerify = machineBusySeconds() - machine2;
    const report = JSON.parse(verifyOut) as { verified: boolean; leaves: number };
    if (!report.verified || report.leaves !== OFFLINE_EVENTS) throw new Error(`the verifier did not verify the benchmark export: ${verifyOut.slice(0, 2000)}`);
    const verifierCpuPerLeafUs = (verifierCpu / OFFLINE_EVENTS) * 1e6;
    const offline = (OFFLINE_EVENTS / verifyMs) * 1000;

    // Ceiling: read the file and hash each line, nothing else (same process start cost excluded).
    const t3 = Date.now();
    let carry = Buffer.alloc(0);
    let hashed = 0;
    for await (const chunk of createReadStream(exportFile, { highWaterMark: 4 * 1024 * 1024 })) {
      const data = carry.length ? Buffer.concat([carry, chunk as Buffer]) : (chunk as Buffer);
      let start = 0;
      for (let nl = data.indexOf(10, start); nl !== -1; nl = data.indexOf(10, start)) {
        hashLeaf(data.subarray(start, nl));
        hashed++;
        start = nl + 1;
      }
      carry = Buffer.from(data.subarray(start));
    }
    const hashOnly = (hashed / (Date.now() - t3)) * 1000;
    console.log(`  offline verification (verifier CLI, its own process): ${OFFLINE_EVENTS} leaves, ${(bytes / 1e6).toFixed(0)} MB in ${(verifyMs / 1000).toFixed(2)} s = ${offline.toFixed(0)} events/s (target ${TARGET_OFFLINE}: ratio ${(offline / TARGET_OFFLINE).toFixed(2)}); read-and-hash-only ceiling ${hashOnly.toFixed(0)} lines/s (ratio ${(offline / hashOnly).toFixed(2)})`);
    console.log(`    verifier CPU ${verifierCpuPerLeafUs.toFixed(2)} µs per leaf (all threads; 2 cores = ${Math.round(2e6 / verifierCpuPerLeafUs)} leaves/s if they were its alone); the machine was ${Math.round((100 * machineDuringVerify) / (2 * (verifyMs / 1000)))}% busy meanwhile`);
    results.push({
      measurement: 'audit offline verification (verifier CLI)',
      events: OFFLINE_EVENTS,
      megabytes: Math.round(bytes / 1e6),
      seconds: verifyMs / 1000,
      eventsPerSecond: Math.round(offline),
      target: TARGET_OFFLINE,
      ratioToTarget: Number((offline / TARGET_OFFLINE).toFixed(2)),
      readAndHashOnlyPerSecond: Math.round(hashOnly),
      verifierCpuPerLeafUs: Number(verifierCpuPerLeafUs.toFixed(2)),
      machineBusyPercentDuringVerify: Math.round((100 * machineDuringVerify) / (2 * (verifyMs / 1000))),
      ratioToReadAndHashOnly: Number((offline / hashOnly).toFixed(2)),
    });

    const outDir = path.join(root, 'var', 'bench');
    const result = { date: new Date().toISOString(), cores: os.cpus().length, cpu: os.cpus()[0]?.model, loadBefore, loadAfter: load(), settings: { events: EVENTS, producers: PRODUCERS, writers: WRITERS, perTransaction: PER_TX, offlineEvents: OFFLINE_EVENTS }, results };
    writeFileSync(path.join(outDir, 'audit-latest.json'), JSON.stringify(result, null, 2) + '\n');
    console.log(`results written to var/bench/audit-latest.json (load before ${loadBefore}, after ${load()})`);
  } finally {
    if (audit && audit.exitCode === null) {
      audit.kill('SIGTERM');
      await once(audit, 'exit');
    }
    await stopSigner?.();
    await kafka.stop();
    await postgres.stop();
  }
}

main().catch((err: unknown) => {
  console.error(`audit bench failed: ${(err as Error).stack ?? err}`);
  process.exit(1);
});
