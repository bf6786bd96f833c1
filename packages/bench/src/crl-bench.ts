import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { Agent, request as httpsRequest } from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { create, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { createLogger, parseConfig } from '@pki/kit';
import { createPool, withTransaction } from '@pki/db';
import { eventsV1, Topics } from '@pki/proto';
import { appendEvent, createEventTransport, migrateServiceSchema, OutboxRelay } from '@pki/outbox';
import { createDatabase, createServiceIdentities, createSoftHsmToken, findRepoRoot, freePort, startPostgres, useSoftHsmConfig } from '@pki/testing';
import { crlPartitionOf, CRLReasons, encodeRevokedCertificate } from '@pki/x509';
import { caSignerConfigSchema, createIssuing, createRoot, DEV_ROOT_CA_SUBJECT, DEVELOPMENT_ATTENDANCE, openCeremony } from '@pki/ca-signer';

/* eslint-disable no-console -- a benchmark reports to its operator */

/**
 * A complete CRL of 1,000,000 revoked entries (issue #10): built by the crl service from its
 * database, streamed to ca-signer, signed in SoftHSM and published (stored in chunks), timed from
 * the operator's request to publication; peak memory (VmHWM) of the crl service, ca-signer and
 * PostgreSQL; against `openssl ca -gencrl` on an index.txt with the same 1,000,000 entries, in the
 * same run. Then a delta CRL for 1,000 status changes (events through the outbox).
 *
 * Settings: BENCH_CRL_ENTRIES (default 1,000,000), BENCH_CRL_CHANGES (default 1,000),
 * BENCH_ONLY (runs when unset or when it names CRL).
 */
const ONLY = process.env.BENCH_ONLY?.split(',').map((s) => s.trim());
const ENTRIES = Number(process.env.BENCH_CRL_ENTRIES ?? 1_000_000);
const CHANGES = Number(process.env.BENCH_CRL_CHANGES ?? 1_000);
const PARTITIONS = 16;
const REASONS = [CRLReasons.keyCompromise, CRLReasons.superseded, CRLReasons.cessationOfOperation, CRLReasons.affiliationChanged, CRLReasons.certificateHold, undefined];
const OPENSSL_REASONS: Record<number, string> = {
  [CRLReasons.keyCompromise]: 'keyCompromise',
  [CRLReasons.superseded]: 'superseded',
  [CRLReasons.cessationOfOperation]: 'cessationOfOperation',
  [CRLReasons.affiliationChanged]: 'affiliationChanged',
  [CRLReasons.certificateHold]: 'certificateHold',
};

/** Peak resident set (VmHWM) and current RSS of a process, in MB. */
function memoryOf(pid: number): { peakMb: number; rssMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
  return { peakMb: Math.round(kb('VmHWM') / 1024), rssMb: Math.round(kb('VmRSS') / 1024) };
}

/** The PostgreSQL server's processes (postmaster and backends) under a data directory. */
function postgresPids(dataDir: string): number[] {
  const postmaster = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const pids = [postmaster];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === postmaster) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

async function waitReady(url: string, child: ChildProcess, name: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/readyz`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${name} did not become ready`);
}

function adminPost(url: string, body: unknown, key: string, tls: { caFile: string; certFile: string; keyFile: string }): Promise<{ status: number; body: Record<string, string> }> {
  const agent = new Agent({ ca: readFileSync(tls.caFile), cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile), checkServerIdentity: () => undefined });
  return new Promise((resolve, reject) => {
    const req = httpsRequest(new URL('/v1/regenerations', url), { method: 'POST', agent, headers: { 'content-type': 'application/json', 'idempotency-key': key } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        agent.destroy();
        resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, string> });
      });
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

async function main(): Promise<void> {
  if (ONLY !== undefined && !ONLY.includes('CRL')) return;
  const root = findRepoRoot(__dirname);
  const runDir = path.join(root, 'var', 'bench', `crl-run-${process.pid}`);
  mkdirSync(runDir, { recursive: true });
  const load = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');
  console.log(`CRL benchmark: ${ENTRIES.toLocaleString('en')} revoked entries, a delta of ${CHANGES.toLocaleString('en')} changes; ${os.cpus().length} cores; load ${load()}`);
  const postgres = await startPostgres({ dir: runDir, durable: true });
  const children: ChildProcess[] = [];
  try {
    const databaseUrl = await createDatabase(postgres.url, 'crlbench');
    const ids = await createServiceIdentities(path.join(runDir, 'identities'), ['ca-signer', 'crl', 'operator'] as const);
    const token = await createSoftHsmToken({ dir: path.join(runDir, 'softhsm'), label: 'bench-ca', pin: '1234567890123456', soPin: '6543210987654321' });
    const restoreEnv = useSoftHsmConfig(token);
    const pinFile = path.join(runDir, 'pin');
    writeFileSync(pinFile, token.pin, { mode: 0o600 });
    const tls = (c: { caFile: string; certFile: string; keyFile: string }) => ({ caFile: c.caFile, certFile: c.certFile, keyFile: c.keyFile });
    const signerPorts = { ops: await freePort(), grpc: await freePort() };
    const signerConfig = {
      log: { level: 'warn' },
      ops: { host: '127.0.0.1', port: signerPorts.ops },
      database: { url: databaseUrl, schema: 'ca_signer' },
      grpc: { host: '127.0.0.1', port: signerPorts.grpc, tls: tls(ids['ca-signer']) },
      hsm: { modulePath: token.modulePath, tokenLabel: token.label, pinFile, sessionPoolSize: 2, softhsmConfigFile: token.configPath },
      allow: { IssueCertificate: [ids.crl.identity], GetIssuers: ['*'], SignCrl: [ids.crl.identity], SignOcspResponses: [ids.crl.identity], SignLiveOcspResponses: [ids.crl.identity], SignAuditCheckpoint: [ids.crl.identity], ListIssuances: [ids.crl.identity], SignValidationReceipt: [ids.crl.identity] },
      publication: { crlBaseUrl: 'http://crl.bench.test/crl', ocspUrl: 'http://ocsp.bench.test/', caIssuersUrl: 'http://crl.bench.test/ca', crlPartitions: PARTITIONS },
      events: { transport: { type: 'postgres' }, producer: 'ca-signer' },
    };
    console.log('setting up the CA hierarchy in SoftHSM (RSA-2048)...');
    const ceremony = await openCeremony(parseConfig(caSignerConfigSchema, signerConfig), { pin: token.pin, attendance: DEVELOPMENT_ATTENDANCE });
    let issuerKeyId: string;
    let issuingPem: string;
    try {
      const rootCa = await createRoot(ceremony.context, { generation: 'BENCH-ROOT', keySpec: { type: 'RSA', bits: 2048 }, subject: DEV_ROOT_CA_SUBJECT, validityYears: 30 });
      const issuing = await createIssuing(ceremony.context, { generation: 'BENCH-G1', keySpec: { type: 'RSA', bits: 2048 }, certification: { by: 'root', rootKeyId: rootCa.keyId, validityYears: 20 } });
      if (issuing.by !== 'root') throw new Error('unexpected CSR result');
      issuerKeyId = issuing.keyId;
      issuingPem = `-----BEGIN CERTIFICATE-----\n${issuing.certificateDer.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`;
    } finally {
      await ceremony.close();
    }
    restoreEnv();
    const signerFile = path.join(runDir, 'ca-signer.json');
    writeFileSync(signerFile, JSON.stringify(signerConfig));
    // BENCH_PROFILE=1: each service writes a .cpuprofile under var/bench/ on exit.
    const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${path.join(root, 'var', 'bench')}`] : [];
    const signer = spawn(process.execPath, [...profile, path.join(root, 'services', 'ca-signer', 'dist', 'main.js'), signerFile], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, SOFTHSM2_CONF: token.configPath } });
    children.push(signer);
    await waitReady(`http://127.0.0.1:${signerPorts.ops}`, signer, 'ca-signer');

    const crlPorts = { ops: await freePort(), http: await freePort(), admin: await freePort() };
    const crlConfig = {
      log: { level: 'warn' },
      ops: { host: '127.0.0.1', port: crlPorts.ops },
      database: { url: databaseUrl, schema: 'crl', maxConnections: 10, statementTimeoutMs: 600_000 },
      http: { host: '127.0.0.1', port: crlPorts.http },
      admin: { host: '127.0.0.1', port: crlPorts.admin, tls: tls(ids.crl), allow: [ids.operator.identity] },
      tls: tls(ids.crl),
      caSigner: { address: `127.0.0.1:${signerPorts.grpc}`, serverIdentity: ids['ca-signer'].identity, deadlineMs: 30_000 },
      events: { transport: { type: 'postgres' }, pollIntervalMs: 100 },
      // Nothing generated by the schedule during the measurements: the operator asks.
      schedule: { fullIntervalSeconds: 86_400, deltaIntervalSeconds: 86_400, deltaValiditySeconds: 172_800, deltaAfterChangeSeconds: 86_400, partitionAfterChangeSeconds: 86_400, tickSeconds: 1 },
    };
    const crlFile = path.join(runDir, 'crl.json');
    writeFileSync(crlFile, JSON.stringify(crlConfig));
    const crl = spawn(process.execPath, [...profile, path.join(root, 'services', 'crl', 'dist', 'main.js'), crlFile], { stdio: ['ignore', 'ignore', 'inherit'] });
    children.push(crl);
    await waitReady(`http://127.0.0.1:${crlPorts.ops}`, crl, 'crl');
    const db = createPool({ url: databaseUrl, schema: 'crl', maxConnections: 2 });
    // The first (empty) CRLs of the generation, made at start.
    for (let i = 0; (await db.query(`SELECT count(*) FROM crls WHERE state = 'PUBLISHED'`)).rows[0].count < PARTITIONS + 2; i++) {
      if (i > 600) throw new Error('the crl service made no CRLs');
      await new Promise((r) => setTimeout(r, 100));
    }

    // The population: the same entries into the crl service's store and into openssl's index.txt.
    console.log(`loading ${ENTRIES.toLocaleString('en')} revocations into the crl service's database and into index.txt...`);
    const index = openSync(path.join(runDir, 'index.txt'), 'w');
    const day = new Date(Math.floor(Date.now() / 86_400_000) * 86_400_000 - 30 * 86_400_000);
    const notAfter = new Date(day.getTime() + 4 * 365 * 86_400_000);
    const expiry = `${notAfter.toISOString().slice(2, 4)}${notAfter.toISOString().slice(5, 7)}${notAfter.toISOString().slice(8, 10)}000000Z`;
    const seq = Number((await db.query(`UPDATE change_counter SET value = value + 1 RETURNING value`)).rows[0].value);
    const BATCH = 20_000;
    for (let done = 0; done < ENTRIES; done += BATCH) {
      const n = Math.min(BATCH, ENTRIES - done);
      const serials: Buffer[] = [];
      const ders: Buffer[] = [];
      const reasons: number[] = [];
      const times: Date[] = [];
      const lines: string[] = [];
      for (let i = 0; i < n; i++) {
        const serial = randomBytes(16);
        serial[0] = (serial[0]! & 0x7f) | 0x01;
        const reason = REASONS[i % REASONS.length];
        const at = new Date(day.getTime() + ((done + i) % 2_592_000) * 1000);
        serials.push(serial);
        reasons.push(reason ?? 0);
        times.push(at);
        ders.push(encodeRevokedCertificate({ serial, revocationDate: at, ...(reason !== undefined ? { reason } : {}) }));
        const utc = at.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z';
        lines.push(`R\t${expiry}\t${utc}${reason !== undefined ? `,${OPENSSL_REASONS[reason]}` : ''}\t${serial.toString('hex').toUpperCase()}\tunknown\t/C=TW/CN=x\n`);
      }
      writeSync(index, lines.join(''));
      await db.query(
        `INSERT INTO revocations (issuer_key_id, serial, partition, status, revocation_time, reason, not_after, entry_der, change_seq, changed_at)
         SELECT $1, s, p, CASE WHEN r = 6 THEN 'SUSPENDED' ELSE 'REVOKED' END, t, r, $6, d, $7, now() FROM unnest($2::bytea[], $3::int[], $4::int[], $5::timestamptz[], $8::bytea[]) AS u(s, p, r, t, d)`,
        [issuerKeyId, serials, serials.map((s) => crlPartitionOf(s, PARTITIONS)), reasons, times, notAfter, seq, ders],
      );
    }
    closeSync(index);
    // What autovacuum does to a table after a bulk load: statistics and the visibility map (the
    // CRL is read index-only).
    await db.query('VACUUM (ANALYZE) revocations');
    if (process.env.BENCH_EXPLAIN) {
      const plan = await db.query(`EXPLAIN ANALYZE SELECT sort_key, entry_der FROM revocations WHERE issuer_key_id = $1 AND status <> 'VALID' AND not_after > now() AND revocation_time <= now() AND sort_key > '\\x1040'::bytea ORDER BY sort_key LIMIT 10000`, [issuerKeyId]);
      console.log(plan.rows.map((r) => r['QUERY PLAN']).join('\n'));
    }

    // The complete CRL: from the operator's request to publication.
    console.log(`load ${load()}; generating the complete CRL...`);
    const operator = tls(ids.operator);
    const adminUrl = `https://127.0.0.1:${crlPorts.admin}`;
    const started = performance.now();
    const full = await adminPost(adminUrl, { issuerKeyId, kind: 'full' }, 'bench-full', operator);
    let state = full.body;
    while (state.state === 'PENDING') {
      await new Promise((r) => setTimeout(r, 50));
      state = (await db.query(`SELECT state, crl_number::text AS "crlNumber", error FROM regeneration_requests WHERE id = $1`, [full.body.id])).rows[0];
    }
    const fullSeconds = (performance.now() - started) / 1000;
    if (state.state !== 'DONE') throw new Error(`complete CRL failed: ${state.error}`);
    const fullRow = (await db.query(`SELECT id, size, entries, generation_ms FROM crls WHERE issuer_key_id = $1 AND kind = 'FULL' ORDER BY crl_number DESC LIMIT 1`, [issuerKeyId])).rows[0];
    const memory = {
      crl: memoryOf(crl.pid!),
      caSigner: memoryOf(signer.pid!),
      postgres: postgresPids(path.join(postgres.dir, 'data')).map((pid) => {
        try {
          return memoryOf(pid).peakMb;
        } catch {
          return 0;
        }
      }),
    };
    console.log(`  ours: ${fullSeconds.toFixed(2)} s from request to publication (${(fullRow.generation_ms / 1000).toFixed(2)} s in the generator), ${Number(fullRow.entries).toLocaleString('en')} entries, ${(Number(fullRow.size) / 1e6).toFixed(1)} MB`);

    // Published bytes, fetched as a relying party would, checked by OpenSSL.
    const published = path.join(runDir, 'full.crl');
    writeFileSync(published, Buffer.from(await (await fetch(`http://127.0.0.1:${crlPorts.http}/crl/${issuerKeyId}.crl`)).arrayBuffer()));
    writeFileSync(path.join(runDir, 'issuing.pem'), issuingPem);
    const verify = execFileSync('sh', ['-c', `openssl crl -inform DER -in ${published} -CAfile ${path.join(runDir, 'issuing.pem')} -noout 2>&1`], { encoding: 'utf8' }).trim();
    console.log(`  openssl crl -verify on the published CRL: ${verify}`);

    // The reference: openssl ca -gencrl on the same entries, with a software key of the same size.
    console.log(`load ${load()}; openssl ca -gencrl on the same ${ENTRIES.toLocaleString('en')} entries...`);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(runDir, 'ref.key'), '-out', path.join(runDir, 'ref.pem'), '-subj', '/C=TW/O=Reference CA', '-days', '3650'], { stdio: 'ignore' });
    writeFileSync(path.join(runDir, 'crlnumber'), '1000\n');
    writeFileSync(
      path.join(runDir, 'ca.cnf'),
      `[ ca ]\ndefault_ca = ref\n[ ref ]\ndir = ${runDir}\ndatabase = ${runDir}/index.txt\ncrlnumber = ${runDir}/crlnumber\ndefault_md = sha256\ndefault_crl_days = 7\ncrl_extensions = ext\nunique_subject = no\n[ ext ]\nauthorityKeyIdentifier = keyid:always\n`,
    );
    const reference = spawnSync('/usr/bin/time', ['-f', '%e %M', 'openssl', 'ca', '-gencrl', '-config', path.join(runDir, 'ca.cnf'), '-keyfile', path.join(runDir, 'ref.key'), '-cert', path.join(runDir, 'ref.pem'), '-out', path.join(runDir, 'ref.crl')], {
      encoding: 'utf8',
    });
    if (reference.status !== 0) throw new Error(`openssl ca -gencrl failed: ${reference.stderr}`);
    // GNU time: "<elapsed seconds> <maximum resident set in KB>" on the last line of stderr.
    const [opensslSeconds, opensslKb] = reference.stderr.trim().split('\n').pop()!.split(' ').map(Number) as [number, number];
    console.log(`  openssl ca -gencrl: ${opensslSeconds.toFixed(2)} s, ${Math.round(opensslKb / 1024)} MB peak`);

    // A delta CRL for 1,000 changes: status events through the outbox, as ra writes them.
    console.log(`load ${load()}; ${CHANGES.toLocaleString('en')} status changes, then the delta CRL...`);
    const outbox = createPool({ url: databaseUrl, schema: 'ra_bench', maxConnections: 4 });
    const logger = createLogger({ service: 'bench', level: 'warn' });
    await migrateServiceSchema(outbox, 'ra_bench', undefined, logger);
    const transport = await createEventTransport({ type: 'postgres', url: databaseUrl, pollIntervalMs: 100 }, { logger });
    const relay = new OutboxRelay({ pool: outbox, publisher: transport.publisher, producers: ['ra'], pollIntervalMs: 100, logger });
    await relay.start();
    const before = Number((await db.query(`SELECT value FROM change_counter`)).rows[0].value);
    await withTransaction(outbox, async (tx) => {
      for (let i = 0; i < CHANGES; i++) {
        const serial = randomBytes(16);
        serial[0] = (serial[0]! & 0x7f) | 0x01;
        const now = new Date(Math.floor(Date.now() / 1000) * 1000 - 1000);
        const message = create(eventsV1.CertificateStatusChangedSchema, {
          serialHex: serial.toString('hex'),
          issuerKeyId,
          status: eventsV1.CertificateStatus.REVOKED,
          previousStatus: eventsV1.CertificateStatus.VALID,
          reason: eventsV1.RevocationReason.KEY_COMPROMISE,
          changedAt: timestampFromDate(now),
          revocationTime: timestampFromDate(now),
          notBefore: timestampFromDate(day),
          notAfter: timestampFromDate(notAfter),
          profile: 'citizen-signature',
        });
        await appendEvent(tx, { producer: 'ra', topic: Topics.certificateStatus, key: message.serialHex, payload: toBinary(eventsV1.CertificateStatusChangedSchema, message) });
      }
    });
    for (let i = 0; Number((await db.query(`SELECT value FROM change_counter`)).rows[0].value) < before + CHANGES; i++) {
      if (i > 3000) throw new Error('status changes were not applied');
      await new Promise((r) => setTimeout(r, 100));
    }
    await relay.stop();
    await transport.close();
    await outbox.end();
    const deltaStarted = performance.now();
    const delta = await adminPost(adminUrl, { issuerKeyId, kind: 'delta' }, 'bench-delta', operator);
    const deltaSeconds = (performance.now() - deltaStarted) / 1000;
    if (delta.body.state !== 'DONE') throw new Error(`delta CRL failed: ${JSON.stringify(delta.body)}`);
    const deltaRow = (await db.query(`SELECT entries, size, generation_ms FROM crls WHERE issuer_key_id = $1 AND kind = 'DELTA' ORDER BY crl_number DESC LIMIT 1`, [issuerKeyId])).rows[0];
    console.log(`  delta CRL: ${Number(deltaRow.entries).toLocaleString('en')} entries, ${deltaSeconds.toFixed(3)} s from request to publication (${(deltaRow.generation_ms / 1000).toFixed(3)} s in the generator)`);
    await db.end();

    const ratio = opensslSeconds / fullSeconds;
    const postgresPeak = Math.max(...memory.postgres);
    const report = {
      date: new Date().toISOString(),
      cores: os.cpus().length,
      cpu: os.cpus()[0]?.model,
      loadAverage: os.loadavg(),
      entries: ENTRIES,
      full: {
        seconds: Number(fullSeconds.toFixed(3)),
        generatorSeconds: fullRow.generation_ms / 1000,
        sizeBytes: Number(fullRow.size),
        peakMb: { crl: memory.crl.peakMb, caSigner: memory.caSigner.peakMb, postgresLargestProcess: postgresPeak },
        opensslVerify: verify,
      },
      openssl: { seconds: opensslSeconds, peakMb: Math.round(opensslKb / 1024) },
      speedupOverOpenssl: Number(ratio.toFixed(2)),
      delta: { changes: CHANGES, entries: Number(deltaRow.entries), seconds: Number(deltaSeconds.toFixed(3)), generatorSeconds: deltaRow.generation_ms / 1000 },
      targets: { speedup: ratio >= 4, peakUnder300Mb: Math.max(memory.crl.peakMb, memory.caSigner.peakMb, postgresPeak) < 300, deltaUnderOneSecond: deltaSeconds < 1 },
    };
    console.log(
      `\n  complete CRL, ${ENTRIES.toLocaleString('en')} entries: ours ${fullSeconds.toFixed(2)} s, openssl ca -gencrl ${opensslSeconds.toFixed(2)} s: ${ratio.toFixed(2)}x (target 4x)\n` +
        `  peak memory: crl ${memory.crl.peakMb} MB, ca-signer ${memory.caSigner.peakMb} MB, PostgreSQL largest process ${postgresPeak} MB (shared buffers included), openssl ${Math.round(opensslKb / 1024)} MB (target < 300 MB per process)\n` +
        `  delta CRL of ${CHANGES.toLocaleString('en')} changes: ${deltaSeconds.toFixed(3)} s (target < 1 s)`,
    );
    const outDir = path.join(root, 'var', 'bench');
    writeFileSync(path.join(outDir, 'crl-latest.json'), JSON.stringify(report, null, 2) + '\n');
    console.log(`results written to ${path.relative(root, path.join(outDir, 'crl-latest.json'))}`);
  } finally {
    for (const child of children.reverse()) {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
    }
    await postgres.stop();
    execFileSync('rm', ['-rf', runDir]);
  }
}

main().catch((err: unknown) => {
  console.error(`CRL bench failed: ${(err as Error).stack ?? err}`);
  process.exit(1);
});
