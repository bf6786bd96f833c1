import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, sign } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Agent, fetch } from 'undici';
import { parseConfig, systemClock } from '@pki/kit';
import { createDatabase, createServiceIdentities, createSoftHsmToken, findRepoRoot, freePort, startPostgres, useSoftHsmConfig } from '@pki/testing';
import { ensureSoftwareCa, issueClientCertificate } from '@pki/internal-ca';
import { caSignerConfigSchema, createDelegatedSigner, createIssuing, createRoot, DEV_ROOT_CA_SUBJECT, DEVELOPMENT_ATTENDANCE, openCeremony } from '@pki/ca-signer';
import { addPrincipal, AesGcmPersonalDataVault, decodeKey, IDENTITY_LOOKUP_SQL, withCheckDigit } from '@pki/ra';
import { CpuMeter, percentile, postmasterPidOf } from './common';

/* eslint-disable no-console -- a benchmark reports to its operator */

/**
 * Identity confirmation (用戶身分確認服務) end to end, as an agency's system calls it: 1000-record
 * batches signed with the system's RSA-2048 key (its certificate issued by ca-signer from SoftHSM
 * under the agencyClient profile), over HTTPS with mutual TLS to ra as its own process, against a
 * registry of BENCH_POPULATION subscribers with a card each (two certificates). Latency of each
 * batch from the first byte sent to the last byte received, one batch in flight (p50, p99), then
 * throughput with BENCH_CONCURRENCY batches in flight. The lookup statement's plan for one batch
 * (EXPLAIN ANALYZE) goes into the results; BENCH_EXPLAIN=1 prints it.
 *
 * The population is written straight into ra's tables (subscribers sealed and hashed with ra's own
 * vault and keys, cards and certificate rows): issuing it through ca-signer would take longer than
 * the measurement and changes nothing the lookup reads.
 */
const POPULATION = Number(process.env.BENCH_POPULATION ?? 100_000);
const BATCHES = Number(process.env.BENCH_BATCHES ?? 200);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 4);
const RECORDS = 1000;
const VALIDATIONS = Number(process.env.BENCH_VALIDATIONS ?? 2000);
const VALIDATION_CONCURRENCY = Number(process.env.BENCH_VALIDATION_CONCURRENCY ?? 8);

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

async function main(): Promise<void> {
  const root = findRepoRoot(__dirname);
  const runDir = path.join(root, 'var', 'bench', `identity-${process.pid}`);
  mkdirSync(runDir, { recursive: true });
  console.log(`identity confirmation benchmark: ${BATCHES} batches of ${RECORDS} records against ${POPULATION} subscribers with cards; ${os.availableParallelism()} cores`);
  const postgres = await startPostgres({ dir: runDir, durable: true });
  const children: ChildProcess[] = [];
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
      database: { url: databaseUrl, schema: 'ca_signer', maxConnections: 4 },
      grpc: { host: '127.0.0.1', port: ports.signerGrpc, tls: tls(ids['ca-signer']) },
      hsm: { modulePath: token.modulePath, tokenLabel: token.label, pinFile, sessionPoolSize: 2, softhsmConfigFile: token.configPath },
      allow: { IssueCertificate: [ids.ra.identity], GetIssuers: ['*'], SignCrl: [ids.ra.identity], SignOcspResponses: [ids.ra.identity], SignLiveOcspResponses: [ids.ra.identity], SignAuditCheckpoint: [ids.ra.identity], ListIssuances: [ids.ra.identity], SignValidationReceipt: [ids.ra.identity] },
      publication: { crlBaseUrl: 'http://crl.bench.test/crl', ocspUrl: 'http://ocsp.bench.test/', caIssuersUrl: 'http://bench.test/ca' },
      events: { transport: { type: 'postgres' }, producer: 'ca-signer' },
      auditConfirmation: { required: false },
    };
    console.log('setting up the CA hierarchy in SoftHSM...');
    const ceremony = await openCeremony(parseConfig(caSignerConfigSchema, signerConfig), { pin: token.pin, attendance: DEVELOPMENT_ATTENDANCE });
    try {
      const rootCa = await createRoot(ceremony.context, { generation: 'BENCH-ROOT', keySpec: { type: 'RSA', bits: 2048 }, subject: DEV_ROOT_CA_SUBJECT, validityYears: 30 });
      const issuing = await createIssuing(ceremony.context, { generation: 'BENCH-G1', keySpec: { type: 'RSA', bits: 2048 }, certification: { by: 'root', rootKeyId: rootCa.keyId, validityYears: 20 } });
      if (issuing.by !== 'root') throw new Error('unexpected CSR result');
      await ceremony.context.pool.query(`UPDATE issuers SET active = true WHERE key_id = $1`, [issuing.keyId]);
      // The key that signs the certificate validation API's receipts.
      await createDelegatedSigner(ceremony.context, { issuerKeyId: issuing.keyId, purpose: 'VALIDATION_RECEIPT' });
    } finally {
      await ceremony.close();
    }
    restoreEnv();

    const officerCa = await ensureSoftwareCa(path.join(runDir, 'officer-ca'), 'CN=Bench officer CA');
    const officer = await issueClientCertificate({ caDir: officerCa.dir, outDir: path.join(runDir, 'officers'), name: 'supervisor', subject: 'CN=supervisor' });
    const key = (name: string) => {
      const file = path.join(runDir, `${name}.key32`);
      writeFileSync(file, randomBytes(32).toString('base64'), { mode: 0o600 });
      return file;
    };
    const keys = { pd: key('pd'), lookup: key('lookup'), ref: key('ref') };
    const signerIdentity = ids['ca-signer'].identity;
    const raConfig = {
      log: { level: 'warn' },
      ops: { host: '127.0.0.1', port: ports.raOps },
      http: { host: '127.0.0.1', port: ports.raHttp, certFile: ids.ra.certFile, keyFile: ids.ra.keyFile, clientCaFiles: [officerCa.certFile], bodyLimitBytes: 1024 * 1024 },
      grpc: { host: '127.0.0.1', port: ports.raGrpc },
      allow: Object.fromEntries(['GetCertificate', 'ListCertificateStatuses', 'GetCard', 'ResolveOfficer', 'IssueCardCertificates', 'ChangeCardStatus', 'VerifySubscriberCode', 'IssueMobileCertificate', 'ChangeMobileCertificateStatus'].map((rpc) => [rpc, [signerIdentity]])),
      database: { url: databaseUrl, schema: 'ra', maxConnections: 16 },
      tls: tls(ids.ra),
      caSigner: { address: `127.0.0.1:${ports.signerGrpc}`, serverIdentity: signerIdentity, deadlineMs: 60_000 },
      events: { transport: { type: 'postgres' } },
      personalData: { encryptionKeys: [{ id: 'k1', keyFile: keys.pd }], activeEncryptionKey: 'k1', lookupKeys: [{ id: 'l1', keyFile: keys.lookup }], activeLookupKey: 'l1', referenceKeyFile: keys.ref },
      agency: { defaultRateLimitPerMinute: 1_000_000 },
    };
    const write = (name: string, value: unknown) => {
      const file = path.join(runDir, `${name}.json`);
      writeFileSync(file, JSON.stringify(value));
      return file;
    };
    const signer = spawn(process.execPath, [path.join(root, 'services', 'ca-signer', 'dist', 'main.js'), write('ca-signer', signerConfig)], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, SOFTHSM2_CONF: token.configPath } });
    children.push(signer);
    await waitReady(`http://127.0.0.1:${ports.signerOps}`, signer, 'ca-signer');
    const ra = spawn(process.execPath, [path.join(root, 'services', 'ra', 'dist', 'main.js'), write('ra', raConfig)], { stdio: ['ignore', 'ignore', 'inherit'] });
    children.push(ra);
    await waitReady(`http://127.0.0.1:${ports.raOps}`, ra, 'ra');

    const db = new pg.Pool({ connectionString: databaseUrl, options: '-c search_path=ra', max: 4 });
    // A failure below stops PostgreSQL under idle pool clients: the failure is reported, not their disconnection.
    db.on('error', () => undefined);
    await addPrincipal(db, { producer: 'ra.audit', clock: systemClock, operator: 'bench' }, { id: 'supervisor', kind: 'officer', role: 'supervisor', office: 'BENCH', certificate: readFileSync(officer.certFile) });

    console.log(`writing ${POPULATION} subscribers with a card each into ra's tables...`);
    const seeded = Date.now();
    const vault = new AesGcmPersonalDataVault({
      encryption: [{ id: 'k1', key: decodeKey(readFileSync(keys.pd, 'utf8'), 'pd') }], activeEncryptionKeyId: 'k1',
      lookup: [{ id: 'l1', key: decodeKey(readFileSync(keys.lookup, 'utf8'), 'lookup') }], activeLookupKeyId: 'l1',
      reference: decodeKey(readFileSync(keys.ref, 'utf8'), 'ref'),
    });
    const people: Array<{ nationalId: string; serial: string; birthDate: string }> = [];
    const now = new Date();
    const notAfter = new Date(now.getTime() + 4 * 365 * 86_400_000);
    for (let start = 0; start < POPULATION; start += 5000) {
      const n = Math.min(5000, POPULATION - start);
      const cols: Record<string, unknown[]> = { id: [], ref: [], lookup: [], nid: [], name: [], birth: [], gender: [], card: [], serial: [], s1: [], s2: [], h1: [], h2: [], cs1: [], cs2: [] };
      for (let i = start; i < start + n; i++) {
        const nationalId = withCheckDigit(`${'ABCDEFGHJKLMNPQRSTUVXYWZIO'[i % 26]}${1 + (i % 2)}${String(i).padStart(7, '0')}`);
        const id = `00000000-0000-8000-8000-${String(i).padStart(12, '0')}`;
        const birthDate = `19${50 + (i % 49)}-0${1 + (i % 9)}-1${i % 10}`;
        const serial = String(1_000_000_000_000_000 + i);
        people.push({ nationalId, serial, birthDate });
        cols.id!.push(id);
        cols.ref!.push(vault.personReference(nationalId));
        cols.lookup!.push(vault.lookupHash(nationalId).hash);
        cols.nid!.push(vault.seal('nationalId', id, nationalId).ciphertext);
        cols.name!.push(vault.seal('name', id, '王小明').ciphertext);
        cols.birth!.push(vault.seal('birthDate', id, birthDate).ciphertext);
        cols.gender!.push(i % 2 === 0 ? 'MALE' : 'FEMALE');
        cols.card!.push(`BENCH${String(i).padStart(10, '0')}`);
        cols.serial!.push(serial);
        const s1 = randomBytes(32);
        const s2 = randomBytes(32);
        cols.s1!.push(s1);
        cols.s2!.push(s2);
        cols.h1!.push(createHash('sha256').update(s1).digest());
        cols.h2!.push(createHash('sha256').update(s2).digest());
        cols.cs1!.push(randomBytes(16).toString('hex'));
        cols.cs2!.push(randomBytes(16).toString('hex'));
      }
      await db.query(
        `INSERT INTO subscribers (id, person_ref, lookup_key_id, national_id_lookup, pd_key_id, national_id_sealed, name_sealed, birth_date_sealed, id_kind, gender, publication_consent, subscriber_code_hash, status, office, created_at)
         SELECT id, ref, 'l1', lookup, 'k1', nid, name, birth, 'CITIZEN', gender, false, 'bench', 'ACTIVE', 'BENCH', $8 FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::bytea[], $5::bytea[], $6::bytea[], $7::text[]) AS t(id, ref, lookup, nid, name, birth, gender)`,
        [cols.id, cols.ref, cols.lookup, cols.nid, cols.name, cols.birth, cols.gender, now],
      );
      await db.query(
        `INSERT INTO cards (card_number, subscriber_id, subject_serial, status, office, activated_at, signing_spki, encryption_spki, signing_spki_sha256, encryption_spki_sha256, keys_created_at, original_not_after, created_at)
         SELECT card, id, serial, 'ACTIVE', 'BENCH', $8, s1, s2, h1, h2, $8, $9, $8 FROM unnest($1::text[], $2::uuid[], $3::text[], $4::bytea[], $5::bytea[], $6::bytea[], $7::bytea[]) AS t(card, id, serial, s1, s2, h1, h2)`,
        [cols.card, cols.id, cols.serial, cols.s1, cols.s2, cols.h1, cols.h2, now, notAfter],
      );
      await db.query(
        `INSERT INTO certificates (serial_hex, issuer_key_id, profile, status, not_before, not_after, certificate_der, card_number, key_slot, created_at, updated_at)
         SELECT s, 'bench', p, 'VALID', $4, $5, '\\x00'::bytea, card, slot, $4, $4 FROM (
           SELECT unnest($1::text[]) AS s, unnest($3::text[]) AS card, 'citizen-signature' AS p, 'SIGN' AS slot
           UNION ALL SELECT unnest($2::text[]), unnest($3::text[]), 'citizen-encryption', 'KEYX') AS t`,
        [cols.cs1, cols.cs2, cols.card, now, notAfter],
      );
    }
    await db.query('ANALYZE');
    console.log(`  seeded in ${((Date.now() - seeded) / 1000).toFixed(1)} s`);

    // The agency's system: its own RSA-2048 key, its certificate from ca-signer through ra.
    const agencyKey = path.join(runDir, 'agency.key');
    execFileSync('openssl', ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', agencyKey, '-subj', '/CN=bench', '-out', `${agencyKey}.csr`], { stdio: 'ignore' });
    const officerAgent = new Agent({ connect: { ca: readFileSync(ids.ra.caFile), cert: readFileSync(officer.certFile), key: readFileSync(officer.keyFile), servername: 'localhost' } });
    const base = `https://127.0.0.1:${ports.raHttp}`;
    const onboarded = await fetch(`${base}/v1/agency-systems`, {
      method: 'POST', dispatcher: officerAgent,
      headers: { 'content-type': 'application/json', 'idempotency-key': `bench-${process.pid}-onboard` },
      body: JSON.stringify({ id: 'BENCH-01', agency: 'Bench agency', name: 'Bench system', sector: 'GOVERNMENT', contact: { name: 'Desk', email: 'desk@bench.example.tw' }, csr: readFileSync(`${agencyKey}.csr`, 'utf8') }),
    });
    const system = (await onboarded.json()) as { credentials: Array<{ serialHex: string; issuerKeyId: string; certificate: string }> };
    if (onboarded.status !== 201) throw new Error(`onboard: ${onboarded.status} ${JSON.stringify(system)}`);
    await officerAgent.close();
    const credential = system.credentials[0]!;
    const privateKey = readFileSync(agencyKey, 'utf8');
    const agent = new Agent({ connections: Math.max(CONCURRENCY, VALIDATION_CONCURRENCY), pipelining: 1, connect: { ca: readFileSync(ids.ra.caFile), cert: credential.certificate, key: privateKey, servername: 'localhost' } });

    // Each batch: 70% matching pairs, 10% someone else's card, 10% unknown IDs, 10% with the birth date.
    let drawn = 0;
    const batch = () => {
      const records = Array.from({ length: RECORDS }, (_, i) => {
        const p = people[(drawn++ * 7919) % people.length]!;
        const kind = i % 10;
        if (kind === 7) return { seq: i + 1, serialNumber: people[(drawn * 31) % people.length]!.serial, nationalId: p.nationalId };
        if (kind === 8) return { seq: i + 1, serialNumber: p.serial, nationalId: withCheckDigit(`Z2${String(drawn % 10_000_000).padStart(7, '0')}`) };
        if (kind === 9) return { seq: i + 1, serialNumber: p.serial, nationalId: p.nationalId, birthDate: p.birthDate };
        return { seq: i + 1, serialNumber: p.serial, nationalId: p.nationalId };
      });
      const body = JSON.stringify({ nonce: randomBytes(16).toString('hex'), requestTime: new Date().toISOString(), records });
      return { body, signature: sign('sha256', Buffer.from(body), privateKey).toString('base64') };
    };
    const call = async (b: { body: string; signature: string }): Promise<number> => {
      const started = process.hrtime.bigint();
      const res = await fetch(`${base}/v1/identity-confirmations`, {
        method: 'POST', dispatcher: agent,
        headers: { 'content-type': 'application/json', 'pki-signer': `${credential.issuerKeyId}:${credential.serialHex}`, 'pki-signature': b.signature },
        body: b.body,
      });
      const json = (await res.json()) as { results?: Array<{ code: number }> };
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (res.status !== 200 || json.results?.length !== RECORDS) throw new Error(`identity confirmation: ${res.status} ${JSON.stringify(json).slice(0, 300)}`);
      return ms;
    };
    console.log('warming up...');
    for (let i = 0; i < 20; i++) await call(batch());
    console.log(`latency: ${BATCHES} batches, one in flight...`);
    const prepared = Array.from({ length: BATCHES }, batch);
    const postmasterPid = postmasterPidOf(postgres.dir);
    const meter = new CpuMeter({ ra: ra.pid! }, postmasterPid);
    meter.start();
    const latencies: number[] = [];
    for (const b of prepared) latencies.push(await call(b));
    const cpu = meter.stop(BATCHES);
    latencies.sort((a, b) => a - b);
    // The lookup's plan for one real batch: index probes per record, never a scan of the registry.
    const sample = JSON.parse(prepared[0]!.body) as { records: Array<{ seq: number; serialNumber: string; nationalId: string }> };
    const { rows: plan } = await db.query(`EXPLAIN (ANALYZE, COSTS OFF, TIMING ON) ${IDENTITY_LOOKUP_SQL}`, [
      sample.records.map((r) => r.seq), sample.records.map((r) => r.serialNumber), sample.records.map(() => 'l1'), sample.records.map((r) => vault.lookupHash(r.nationalId).hash),
    ]);
    const planText = plan.map((r: Record<string, string>) => r['QUERY PLAN']).join('\n');
    if (process.env.BENCH_EXPLAIN === '1') console.log(planText);

    console.log(`throughput: ${BATCHES} batches, ${CONCURRENCY} in flight...`);
    const parallel = Array.from({ length: BATCHES }, batch);
    let next = 0;
    const t0 = process.hrtime.bigint();
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (next < parallel.length) await call(parallel[next++]!);
    }));
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;

    // The certificate validation API (decision 0034), same system, same connections: the system's
    // own certificate, a real one from ca-signer in the registry. Every check runs (path to the
    // root, registry status, the receipt signed in the HSM); the verdict is POLICY_MISMATCH, since
    // the agencyClient profile asserts no citizen policy.
    const validate = async (): Promise<number> => {
      const started = process.hrtime.bigint();
      const res = await fetch(`${base}/v1/certificate-validations`, { method: 'POST', dispatcher: agent, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ certificates: [credential.certificate] }) });
      const json = (await res.json()) as { result?: { verdict: string }; receipt?: { signature: string } };
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (res.status !== 200 || !json.receipt?.signature) throw new Error(`certificate validation: ${res.status} ${JSON.stringify(json).slice(0, 300)}`);
      verdicts.add(json.result!.verdict);
      return ms;
    };
    const verdicts = new Set<string>();
    console.log(`certificate validation: warming up, then ${VALIDATIONS} validations, ${VALIDATION_CONCURRENCY} in flight...`);
    for (let i = 0; i < 50; i++) await validate();
    const validationMeter = new CpuMeter({ ra: ra.pid!, 'ca-signer': signer.pid! }, postmasterPid);
    validationMeter.start();
    const validationLatencies: number[] = [];
    let done = 0;
    const v0 = process.hrtime.bigint();
    await Promise.all(Array.from({ length: VALIDATION_CONCURRENCY }, async () => {
      while (done++ < VALIDATIONS) validationLatencies.push(await validate());
    }));
    const validationSeconds = Number(process.hrtime.bigint() - v0) / 1e9;
    const validationCpu = validationMeter.stop(VALIDATIONS);
    validationLatencies.sort((a, b) => a - b);
    const validationResult = {
      date: new Date().toISOString(),
      cores: os.availableParallelism(),
      load: os.loadavg(),
      uptime: execFileSync('uptime', { encoding: 'utf8' }).trim(),
      settings: { validations: VALIDATIONS, concurrency: VALIDATION_CONCURRENCY, verdicts: [...verdicts] },
      validationsPerSecond: Number((VALIDATIONS / validationSeconds).toFixed(1)),
      latencyMs: { p50: Number(percentile(validationLatencies, 50).toFixed(1)), p99: Number(percentile(validationLatencies, 99).toFixed(1)) },
      cpuPerValidationUs: validationCpu.perOperationUs,
    };
    console.log(
      `  ${validationResult.validationsPerSecond} validations/s (p50 ${validationResult.latencyMs.p50} ms, p99 ${validationResult.latencyMs.p99} ms); CPU µs per validation: ${Object.entries(validationCpu.perOperationUs).map(([k, v]) => `${k} ${v}`).join(', ')}`,
    );
    writeFileSync(path.join(root, 'var', 'bench', 'certificate-validation-latest.json'), JSON.stringify(validationResult, null, 2) + '\n');
    await agent.close();
    await db.end();

    const result = {
      date: new Date().toISOString(),
      cores: os.availableParallelism(),
      cpu: os.cpus()[0]?.model,
      load: os.loadavg(),
      uptime: execFileSync('uptime', { encoding: 'utf8' }).trim(),
      settings: { population: POPULATION, batches: BATCHES, recordsPerBatch: RECORDS, concurrency: CONCURRENCY },
      latencyMs: { p50: Number(percentile(latencies, 50).toFixed(1)), p90: Number(percentile(latencies, 90).toFixed(1)), p99: Number(percentile(latencies, 99).toFixed(1)), max: Number(latencies[latencies.length - 1]!.toFixed(1)) },
      targetP99Ms: 200,
      cpuPerBatchUs: cpu.perOperationUs,
      lookupPlan: planText.split('\n'),
      throughput: { batchesPerSecond: Number((BATCHES / seconds).toFixed(1)), recordsPerSecond: Math.round((BATCHES * RECORDS) / seconds) },
    };
    console.log(
      `  latency per 1000-record batch, one in flight: p50 ${result.latencyMs.p50} ms, p90 ${result.latencyMs.p90} ms, p99 ${result.latencyMs.p99} ms (target p99 < 200 ms), max ${result.latencyMs.max} ms\n` +
        `  CPU µs per batch: ${Object.entries(cpu.perOperationUs).map(([k, v]) => `${k} ${v}`).join(', ')}\n` +
        `  ${CONCURRENCY} in flight: ${result.throughput.batchesPerSecond} batches/s, ${result.throughput.recordsPerSecond} records/s\n` +
        `  load: ${result.uptime}`,
    );
    const out = path.join(root, 'var', 'bench', 'identity-confirmation-latest.json');
    writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
    console.log(`results written to ${path.relative(root, out)}`);
  } finally {
    for (const child of children.reverse()) {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
    }
    await postgres.stop();
    rmSync(runDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`bench failed: ${(err as Error).stack ?? err}`);
  process.exit(1);
});
