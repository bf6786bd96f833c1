import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { createGrpcClient, type ServiceClient } from '@pki/grpc';
import { createLogger, parseConfig } from '@pki/kit';
import { caSignerV1 } from '@pki/proto';
import { rsaSubjectPublicKeyInfo } from '@pki/x509';
import pg from 'pg';
import { createDatabase, createServiceIdentities, createSoftHsmToken, findRepoRoot, freePort, startPostgres, useSoftHsmConfig } from '@pki/testing';
import {
  caSignerConfigSchema,
  createDelegatedSigner,
  createIssuing,
  createRoot,
  DEV_ROOT_CA_SUBJECT,
  DEVELOPMENT_ATTENDANCE,
  openCeremony,
  type CaKeySpec,
} from '@pki/ca-signer';
import { machineBusyUs, opensslSpeed as commonOpensslSpeed, pkcs11Alone, postgresCpuUs, postmasterPidOf, processCpuUs } from './common';

/* eslint-disable no-console -- a benchmark reports to its operator */

/**
 * Signatures per second through the whole service path: a ca-signer process (the built
 * services/ca-signer/dist/main.js, as deployed) reached over gRPC with mTLS, signing with keys in
 * SoftHSM through PKCS#11, with its audit writes in PostgreSQL. Measured for RSA-2048, RSA-4096
 * and P-256 on SignOcspResponses (the high-volume signing RPC), plus IssueCertificate, and
 * compared in the same run with `openssl speed` for the same algorithms (one process, one core).
 *
 * Settings (environment): BENCH_SECONDS (per measurement, default 10), BENCH_SESSIONS (HSM
 * session pool, default twice the cores), BENCH_BATCH (responses per RPC, default 200), BENCH_CONCURRENCY
 * (RPCs in flight, default 2), BENCH_ONLY (comma-separated measurements to run, e.g.
 * `RSA-2048,IssueCertificate`; default all).
 */
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 2 * os.availableParallelism());
const BATCH = Number(process.env.BENCH_BATCH ?? 200);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 2);

const ONLY = process.env.BENCH_ONLY?.split(',').map((s) => s.trim());
/** Cards whose two IssueCertificate RPCs are in flight at once (BENCH_ISSUE_CARDS, default 4: 8 RPCs). */
const ISSUE_CARDS_IN_FLIGHT = Number(process.env.BENCH_ISSUE_CARDS ?? 4);

const CITIZEN_NAMES = ['王小明', '陳美玲', '林志豪', '張雅婷', '李建宏', '黃淑芬', '吳俊傑', '劉怡君', '蔡宗翰', '楊佩珊', '𠀋本𡧃', '鄭峯'];

/**
 * A distinct RSA-2048 public key for every certificate, as cards bring: a random odd 2048-bit
 * modulus with exponent 65537. Generating real key pairs would cost the benchmark client about
 * 100 ms each; the signer never needs the private key, and checks and encodes these exactly as it
 * does a card's key (OpenSSL imports them: it does not test the modulus for primality). Reusing one
 * key would let the signer's per-key work look cheaper than it is.
 */
function cardPublicKey(): Buffer {
  const modulus = randomBytes(256);
  modulus[0]! |= 0x80;
  modulus[255]! |= 0x01;
  return rsaSubjectPublicKeyInfo(modulus, Buffer.from([0x01, 0x00, 0x01]));
}

const ALL_ALGORITHMS: Array<{ name: string; spec: CaKeySpec; openssl: string }> = [
  { name: 'RSA-2048', spec: { type: 'RSA', bits: 2048 }, openssl: 'rsa2048' },
  { name: 'RSA-4096', spec: { type: 'RSA', bits: 4096 }, openssl: 'rsa4096' },
  { name: 'P-256', spec: { type: 'EC', curve: 'P-256' }, openssl: 'ecdsap256' },
];
const ALGORITHMS = ALL_ALGORITHMS.filter((a) => ONLY === undefined || ONLY.includes(a.name));

/** `openssl speed` signing rate for one algorithm, single process, for half the measurement time. */
function opensslSpeed(algorithm: string): number {
  return commonOpensslSpeed(algorithm, Math.max(3, Math.round(SECONDS / 2)));
}

async function waitReady(url: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`ca-signer exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/readyz`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('ca-signer did not become ready');
}

interface CpuSnapshot {
  signerUs: number;
  clientUs: number;
  postgresUs: number;
  machineBusyUs: number;
}

/** CPU used so far by the signer process, this process, the benchmark's PostgreSQL and the whole machine (Linux /proc). */
function cpuSnapshot(signerPid: number | undefined, postmasterPid?: number): CpuSnapshot {
  const usage = process.cpuUsage();
  return {
    signerUs: signerPid === undefined ? 0 : processCpuUs(signerPid),
    clientUs: usage.user + usage.system,
    postgresUs: postmasterPid === undefined ? 0 : postgresCpuUs(postmasterPid),
    machineBusyUs: machineBusyUs(),
  };
}

interface Measurement {
  perSecond: number;
  operations: number;
  elapsed: number;
  /** CPU microseconds per operation: in the signer, in the benchmark client, in its PostgreSQL, and everything else (the OS, other load). */
  cpuPerOperationUs: { signer: number; client: number; postgres: number; other: number };
  /** Busy share of all cores during the measurement. */
  machineUtilisation: number;
}

/** Runs `work` from `concurrency` loops for `seconds`; returns operations completed per second and where the CPU went. */
async function measure(seconds: number, concurrency: number, work: () => Promise<number>, signerPid?: number): Promise<Measurement> {
  const until = Date.now() + seconds * 1000;
  const before = cpuSnapshot(signerPid, postmasterPid);
  const started = process.hrtime.bigint();
  let operations = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < until) {
        // Not `operations += await work()`: that reads `operations` before the await, and the
        // loops running alongside would lose each other's counts.
        const done = await work();
        operations += done;
      }
    }),
  );
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  const after = cpuSnapshot(signerPid, postmasterPid);
  const per = (us: number) => Math.round(us / Math.max(operations, 1));
  const signer = after.signerUs - before.signerUs;
  const client = after.clientUs - before.clientUs;
  const postgres = after.postgresUs - before.postgresUs;
  const machine = after.machineBusyUs - before.machineBusyUs;
  return {
    perSecond: operations / elapsed,
    operations,
    elapsed,
    cpuPerOperationUs: { signer: per(signer), client: per(client), postgres: per(postgres), other: per(Math.max(0, machine - signer - client - postgres)) },
    machineUtilisation: Number((machine / (elapsed * 1e6 * os.availableParallelism())).toFixed(2)),
  };
}

/** The benchmark's own PostgreSQL server, whose CPU is reported apart from the rest of the machine. */
let postmasterPid: number | undefined;

async function main(): Promise<void> {
  const root = findRepoRoot(__dirname);
  const runDir = path.join(root, 'var', 'bench', `run-${process.pid}`);
  mkdirSync(runDir, { recursive: true });
  console.log(`signing benchmark: ${SECONDS} s per measurement, ${SESSIONS} HSM sessions, batches of ${BATCH}, ${CONCURRENCY} RPCs in flight; ${os.cpus().length} cores`);

  const postgres = await startPostgres({ dir: runDir, durable: true });
  postmasterPid = postmasterPidOf(postgres.dir);
  let signer: ChildProcess | undefined;
  try {
    const databaseUrl = await createDatabase(postgres.url, 'bench');
    const ids = await createServiceIdentities(path.join(runDir, 'identities'), ['ca-signer', 'ra', 'ocsp'] as const);
    const token = await createSoftHsmToken({ dir: path.join(runDir, 'softhsm'), label: 'bench-ca', pin: '1234567890123456', soPin: '6543210987654321' });
    const restoreEnv = useSoftHsmConfig(token);
    const pinFile = path.join(runDir, 'pin');
    writeFileSync(pinFile, token.pin, { mode: 0o600 });
    const tls = (c: { caFile: string; certFile: string; keyFile: string }) => ({ caFile: c.caFile, certFile: c.certFile, keyFile: c.keyFile });
    const rawConfig = {
      log: { level: 'warn' },
      ops: { host: '127.0.0.1', port: 0 },
      database: { url: databaseUrl, schema: 'ca_signer', maxConnections: 10 },
      grpc: { host: '127.0.0.1', port: 0, tls: tls(ids['ca-signer']) },
      hsm: { modulePath: token.modulePath, tokenLabel: token.label, pinFile, sessionPoolSize: SESSIONS, softhsmConfigFile: token.configPath },
      allow: { IssueCertificate: [ids.ra.identity], GetIssuers: ['*'], SignCrl: [ids.ra.identity], SignOcspResponses: [ids.ocsp.identity], SignLiveOcspResponses: [ids.ocsp.identity], SignAuditCheckpoint: [ids.ra.identity], ListIssuances: [ids.ra.identity], SignValidationReceipt: [ids.ra.identity] },
      publication: { crlBaseUrl: 'http://crl.bench.test/crl', ocspUrl: 'http://ocsp.bench.test/', caIssuersUrl: 'http://bench.test/ca' },
      events: { transport: { type: 'postgres' }, producer: 'ca-signer' },
      // No audit service runs here to confirm the signer's audit events: issuance must not stop.
      auditConfirmation: { required: false },
    };
    const config = parseConfig(caSignerConfigSchema, rawConfig);

    // One issuing generation per responder key type, made by the real ceremony steps.
    console.log('setting up the CA hierarchy in SoftHSM (RSA-4096 key generation takes a while)...');
    const ceremony = await openCeremony(config, { pin: token.pin, attendance: DEVELOPMENT_ATTENDANCE });
    const issuers: Record<string, string> = {};
    const responderHsmKeys: Record<string, string> = {};
    const issuingHsmKeys: string[] = [];
    let firstIssuing: string | undefined;
    try {
      const rootCa = await createRoot(ceremony.context, { generation: 'BENCH-ROOT', keySpec: { type: 'RSA', bits: 2048 }, subject: DEV_ROOT_CA_SUBJECT, validityYears: 30 });
      // IssueCertificate alone still needs one issuing generation: the RSA-2048 one.
      for (const alg of ALGORITHMS.length > 0 ? ALGORITHMS : ALL_ALGORITHMS.slice(0, 1)) {
        const issuing = await createIssuing(ceremony.context, { generation: `BENCH-${alg.openssl.toUpperCase()}`, keySpec: { type: 'RSA', bits: 2048 }, certification: { by: 'root', rootKeyId: rootCa.keyId, validityYears: 20 } });
        if (issuing.by !== 'root') throw new Error('unexpected CSR result');
        firstIssuing ??= issuing.keyId;
        issuingHsmKeys.push(issuing.hsmKeyId);
        const responder = await createDelegatedSigner(ceremony.context, { issuerKeyId: issuing.keyId, purpose: 'OCSP_RESPONDER', keySpec: alg.spec });
        responderHsmKeys[alg.name] = responder.hsmKeyId;
        issuers[alg.name] = issuing.keyId;
      }
      await ceremony.context.pool.query(`UPDATE issuers SET active = (key_id = $1) WHERE role = 'ISSUING'`, [firstIssuing]);
    } finally {
      await ceremony.close();
    }
    restoreEnv();

    const opsPort = await freePort();
    const grpcPort = await freePort();
    const configFile = path.join(runDir, 'ca-signer.json');
    writeFileSync(configFile, JSON.stringify({ ...rawConfig, ops: { host: '127.0.0.1', port: opsPort }, grpc: { ...rawConfig.grpc, port: grpcPort } }));
    const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${runDir}`] : [];
    signer = spawn(process.execPath, [...profile, path.join(root, 'services', 'ca-signer', 'dist', 'main.js'), configFile], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, SOFTHSM2_CONF: token.configPath } });
    await waitReady(`http://127.0.0.1:${opsPort}`, signer);

    const client = (who: 'ra' | 'ocsp'): ServiceClient<typeof caSignerV1.CaSignerService> =>
      createGrpcClient(caSignerV1.CaSignerService, { address: `127.0.0.1:${grpcPort}`, serverIdentity: ids['ca-signer'].identity, tls: tls(ids[who]), deadlineMs: 60_000 });
    const ocsp = client('ocsp');
    const ra = client('ra');

    const results: Array<Record<string, unknown>> = [];
    for (const alg of ALGORITHMS) {
      let serial = 1;
      const batch = () => {
        const now = new Date(Math.floor(Date.now() / 1000) * 1000);
        return Array.from({ length: BATCH }, () => ({
          issuerKeyId: issuers[alg.name]!,
          serialHex: (serial++).toString(16).padStart(32, '0').replace(/^0/, '1'),
          certIdHash: caSignerV1.CertIdHashAlgorithm.SHA1,
          status: caSignerV1.CertificateStatusKind.GOOD,
          thisUpdate: timestampFromDate(now),
          nextUpdate: timestampFromDate(new Date(now.getTime() + 86_400_000)),
        }));
      };
      const work = async () => (await ocsp.signOcspResponses({ responses: batch() })).responses.length;
      await measure(2, CONCURRENCY, work); // warm up
      const service = await measure(SECONDS, CONCURRENCY, work, signer.pid);
      const alone = pkcs11Alone({
        modulePath: token.modulePath,
        softhsmConfigFile: token.configPath,
        tokenLabel: token.label,
        pinFile,
        keyId: responderHsmKeys[alg.name]!,
        algorithm: alg.spec.type === 'RSA' ? 'RSA-SHA256' : 'ECDSA-SHA256',
        seconds: Math.max(3, Math.round(SECONDS / 2)),
        sessions: SESSIONS,
        inFlight: 4 * SESSIONS,
      });
      const reference = opensslSpeed(alg.openssl);
      const cpu = service.cpuPerOperationUs;
      results.push({
        measurement: `SignOcspResponses ${alg.name}`,
        servicePerSecond: Math.round(service.perSecond),
        opensslSpeedPerSecond: Math.round(reference),
        ratio: Number((service.perSecond / reference).toFixed(3)),
        pkcs11AlonePerSecond: Math.round(alone.perSecond),
        serviceToPkcs11Alone: Number((service.perSecond / alone.perSecond).toFixed(3)),
        pkcs11AloneToOpenssl: Number((alone.perSecond / reference).toFixed(3)),
        pkcs11AloneCpuPerSignatureUs: alone.cpuPerSignatureUs,
        cpuPerOperationUs: cpu,
        machineUtilisation: service.machineUtilisation,
      });
      console.log(
        `  ${alg.name.padEnd(9)} service ${service.perSecond.toFixed(0).padStart(6)}/s   openssl speed ${reference.toFixed(0).padStart(6)}/s   ratio ${(service.perSecond / reference).toFixed(2)}\n` +
          `            PKCS#11 alone ${alone.perSecond.toFixed(0)}/s (${alone.cpuPerSignatureUs} µs CPU each; ${(alone.perSecond / reference).toFixed(2)} of openssl speed); service reaches ${(service.perSecond / alone.perSecond).toFixed(2)} of it\n` +
          `            CPU µs per signature: signer ${cpu.signer}, client ${cpu.client}, PostgreSQL ${cpu.postgres}, other ${cpu.other}; machine ${Math.round(service.machineUtilisation * 100)}% busy`,
      );
    }

    if (ONLY === undefined || ONLY.includes('IssueCertificate')) {
      // Issuance as ra calls it for a card: the SIGN and KEYX certificates in one IssueCertificates
      // call (decision 0038), each with the last four ID digits, the signature certificate with an
      // e-mail address; every certificate for a key of its own (see cardPublicKey) and with its own
      // idempotency key.
      const card = () => {
        const digits = String(n % 10_000).padStart(4, '0');
        const subject = [{ type: 'C', value: 'TW' }, { type: 'CN', value: CITIZEN_NAMES[n % CITIZEN_NAMES.length]! }, { type: 'serialNumber', value: String(1e15 + n) }];
        return { digits, subject, email: `citizen${n}@example.tw`, id: n++ };
      };
      let n = 0;
      const issuePair = async () => {
        const { digits, subject, email, id } = card();
        await ra.issueCertificates({
          certificates: [
            { idempotencyKey: `bench-${process.pid}-${id}-sign`, profile: 'citizen-signature', publicKeySpki: cardPublicKey(), subject, nationalIdLastFour: digits, email },
            { idempotencyKey: `bench-${process.pid}-${id}-keyx`, profile: 'citizen-encryption', publicKeySpki: cardPublicKey(), subject, nationalIdLastFour: digits },
          ],
        });
        return 2;
      };
      await measure(2, ISSUE_CARDS_IN_FLIGHT, issuePair);
      // Transactions the signer's database committed per certificate (its outbox relay's included),
      // from PostgreSQL's statistics; they reach the view within a second of each commit.
      const stats = new pg.Client({ connectionString: databaseUrl });
      await stats.connect();
      const commits = async () => {
        await new Promise((r) => setTimeout(r, 1500));
        return Number((await stats.query(`SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()`)).rows[0].xact_commit);
      };
      const commitsBefore = await commits();
      const issued = await measure(SECONDS, ISSUE_CARDS_IN_FLIGHT, issuePair, signer.pid);
      const commitsPerCertificate = Number(((await commits()) - commitsBefore - 2) / issued.operations).toFixed(2);
      await stats.end();
      // The reference: the issuing CA's own key, signing TBS-sized messages through the same adapter.
      const alone = pkcs11Alone({
        modulePath: token.modulePath,
        softhsmConfigFile: token.configPath,
        tokenLabel: token.label,
        pinFile,
        keyId: issuingHsmKeys[0]!,
        algorithm: 'RSA-SHA256',
        seconds: Math.max(3, Math.round(SECONDS / 2)),
        sessions: SESSIONS,
        inFlight: 4 * SESSIONS,
        dataBytes: 1200,
      });
      const cpu = issued.cpuPerOperationUs;
      results.push({
        measurement: 'IssueCertificate RSA-2048 issuer (two per card)',
        servicePerSecond: Math.round(issued.perSecond),
        pkcs11AlonePerSecond: Math.round(alone.perSecond),
        serviceToPkcs11Alone: Number((issued.perSecond / alone.perSecond).toFixed(3)),
        pkcs11AloneCpuPerSignatureUs: alone.cpuPerSignatureUs,
        cardsInFlight: ISSUE_CARDS_IN_FLIGHT,
        databaseCommitsPerCertificate: Number(commitsPerCertificate),
        cpuPerOperationUs: cpu,
        machineUtilisation: issued.machineUtilisation,
      });
      console.log(
        `  IssueCertificate (RSA-2048 CA, ${ISSUE_CARDS_IN_FLIGHT} cards in flight, two certificates each) ${issued.perSecond.toFixed(0)}/s\n` +
          `            PKCS#11 alone with the issuing key ${alone.perSecond.toFixed(0)}/s (${alone.cpuPerSignatureUs} µs CPU each); service reaches ${(issued.perSecond / alone.perSecond).toFixed(2)} of it\n` +
          `            CPU µs per certificate: signer ${cpu.signer}, client ${cpu.client}, PostgreSQL ${cpu.postgres}, other ${cpu.other}; machine ${Math.round(issued.machineUtilisation * 100)}% busy\n` +
          `            database commits per certificate: ${commitsPerCertificate}; ${2 * n} certificates issued in this run, warm-up included (for per-certificate figures from a --cpu-prof profile)`,
      );
    }
    ocsp.close();
    ra.close();

    const outDir = path.join(root, 'var', 'bench');
    const report = { date: new Date().toISOString(), cores: os.cpus().length, cpu: os.cpus()[0]?.model, settings: { seconds: SECONDS, sessions: SESSIONS, batch: BATCH, concurrency: CONCURRENCY }, results };
    writeFileSync(path.join(outDir, 'signing-latest.json'), JSON.stringify(report, null, 2) + '\n');
    console.log(`results written to ${path.relative(root, path.join(outDir, 'signing-latest.json'))}`);
  } finally {
    if (signer && signer.exitCode === null) {
      signer.kill('SIGTERM');
      await new Promise((r) => signer!.once('exit', r));
    }
    await postgres.stop();
  }
}

main().catch((err: unknown) => {
  console.error(`bench failed: ${(err as Error).stack ?? err}`);
  createLogger({ service: 'bench' }).flush();
  process.exit(1);
});
