import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { freePort } from '@pki/testing';
import { crlPartitionOf, encodeRevokedCertificate, CRLReasons } from '@pki/x509';
import { eventually, opensslResult, RevocationReason, startCrlEnvironment, type CrlEnvironment } from './crl-fixture';

/**
 * Two crl generator processes (the built service, as deployed) against one real PostgreSQL and a
 * real ca-signer, generating CRLs every few seconds while status events arrive, with the lease
 * holder killed (SIGKILL) mid-way through a CRL again and again, and once frozen (SIGSTOP) until
 * its lease ran out and then thawed. Whatever happens, a scope never gets a published CRL number
 * that is lower than or equal to one published before, and a frozen holder publishes nothing once
 * its lease is gone.
 */
const MAIN = resolve(__dirname, '..', 'dist', 'main.js');
let env: CrlEnvironment;
let db: pg.Pool;
let signerDb: pg.Pool;
const children = new Set<ChildProcess>();

interface Generator {
  child: ChildProcess;
  opsUrl: string;
}

/**
 * Starts a generator process and waits until it is ready. A start that fails is tried again with
 * new ports (up to three times): freePort() hands out a port that a parallel test may take before
 * the child binds it, and what this test is about begins once both generators run.
 */
async function startGenerator(name: string): Promise<Generator> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startGeneratorOnce(name);
    } catch (err) {
      const logFile = join(env.signer.dir, `${name}.log`);
      const tail = existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-2_000) : '';
      if (attempt >= 3) throw new Error(`${(err as Error).message}\n${tail}`);
    }
  }
}

async function startGeneratorOnce(name: string): Promise<Generator> {
  const ports = { ops: await freePort(), http: await freePort(), admin: await freePort() };
  const raw = env.rawCrlConfig({
    schedule: {
      fullIntervalSeconds: 10,
      fullValiditySeconds: 30,
      deltaIntervalSeconds: 5,
      deltaValiditySeconds: 30,
      partitionIntervalSeconds: 10,
      partitionValiditySeconds: 30,
      expiredGraceSeconds: 0,
      leaseSeconds: 3,
      tickSeconds: 1,
    },
  }) as Record<string, Record<string, unknown>>;
  const config = { ...raw, log: { level: 'info' }, ops: { host: '127.0.0.1', port: ports.ops }, http: { ...raw.http, port: ports.http }, admin: { ...raw.admin, port: ports.admin } };
  const file = env.file(`${name}.json`, JSON.stringify(config));
  const child = spawn(process.execPath, [MAIN, file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const log = createWriteStream(join(env.signer.dir, `${name}.log`));
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  children.add(child);
  child.once('exit', () => children.delete(child));
  const opsUrl = `http://127.0.0.1:${ports.ops}`;
  try {
    await eventually(`${name} ready`, async () => {
      if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode} (see ${name}.log)`);
      return (await fetch(`${opsUrl}/readyz`).catch(() => undefined))?.ok;
    });
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return { child, opsUrl };
}

const holderPid = (holder: string | null) => (holder ? Number(/^crl-.+-(\d+)-[0-9a-f]{8}$/.exec(holder)?.[1]) : undefined);
const lease = async () => (await db.query(`SELECT holder, token::text, expires_at FROM generator_lease`)).rows[0] as { holder: string | null; token: string; expires_at: Date | null };

beforeAll(async () => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run 'make build' (make test builds first)`);
  // Events through the PostgreSQL bus: the point here is the generators, and killed Kafka consumers
  // would only slow the run down with group rebalances.
  env = await startCrlEnvironment({ crlPartitions: 2, transport: 'postgres' });
  db = new pg.Pool({ connectionString: env.signer.databaseUrl, options: '-c search_path=crl' });
  signerDb = new pg.Pool({ connectionString: env.signer.databaseUrl, options: '-c search_path=ca_signer' });
}, 240_000);
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await db?.end();
  await signerDb?.end();
  await env?.stop();
}, 60_000);

it('never publishes a lower or repeated CRL number for a scope, with the lease holder killed mid-way and frozen past its lease', async () => {
  const generators = [await startGenerator('gen-1'), await startGenerator('gen-2')];
  let started = 2;
  // A population large enough that a complete CRL takes a moment to build: 30,000 revocations.
  const { g1 } = env.generations;
  await eventually('generations known', async () => (await db.query(`SELECT crl_partitions FROM issuers WHERE key_id = $1`, [g1])).rows[0]);
  const serials = Array.from({ length: 30_000 }, () => {
    const s = randomBytes(16);
    s[0] = (s[0]! & 0x7f) | 0x01;
    return s;
  });
  const at = new Date(Math.floor(Date.now() / 1000) * 1000 - 3_600_000);
  const notAfter = new Date(Date.now() + 365 * 86_400_000);
  await db.query(
    `WITH c AS (UPDATE change_counter SET value = value + 1 RETURNING value)
     INSERT INTO revocations (issuer_key_id, serial, partition, status, revocation_time, reason, not_after, entry_der, change_seq, changed_at)
     SELECT $1, s, p, 'REVOKED', $4, 1, $5, d, c.value, now() FROM unnest($2::bytea[], $3::int[], $6::bytea[]) AS u(s, p, d), c`,
    [g1, serials, serials.map((s) => crlPartitionOf(s, 2)), at, notAfter, serials.map((s) => encodeRevokedCertificate({ serial: s, revocationDate: at, reason: CRLReasons.keyCompromise }))],
  );

  let killedMidway = 0;
  let froze: { holder: string; token: string; thawedAt: Date } | undefined;
  // Until enough has happened (not for a fixed time: the machine may be loaded), within a
  // generous deadline.
  const deadline = Date.now() + 240_000;
  const publishedSoFar = async () => Number((await db.query(`SELECT count(*) FROM crls WHERE state = 'PUBLISHED'`)).rows[0].count);
  let events = 0;
  while (Date.now() < deadline && !(killedMidway >= 3 && froze && (await publishedSoFar()) >= 30)) {
    // Status events keep arriving: deltas and partitions follow them.
    for (let i = 0; i < 3; i++) {
      const serial = randomBytes(16);
      serial[0] = (serial[0]! & 0x7f) | 0x01;
      await env.publishStatus({ serialHex: serial.toString('hex'), issuerKeyId: g1, notBefore: new Date(), notAfter }, { status: 'REVOKED', at: new Date(Date.now() - 2000), reason: RevocationReason.SUPERSEDED });
      events++;
    }
    const current = await lease();
    const pid = holderPid(current.holder);
    const holder = generators.find((g) => g.child.pid === pid);
    if (!holder) {
      await new Promise((r) => setTimeout(r, 300));
      continue;
    }
    if (!froze && killedMidway >= 2) {
      // Frozen past its lease: the other takes over; thawed, the first must publish nothing more.
      holder.child.kill('SIGSTOP');
      // The other generator may itself be restarting after a kill (a slow start on a loaded machine).
      await eventually('takeover', async () => (await lease()).token !== current.token, 120_000);
      holder.child.kill('SIGCONT');
      froze = { holder: current.holder!, token: current.token, thawedAt: new Date() };
      continue;
    }
    // Kill it while it has a CRL half built (the complete CRL of 30,000 entries gives time).
    const building = await eventually(
      'a CRL being built',
      async () => (await db.query(`SELECT 1 FROM crls WHERE state = 'BUILDING' AND holder = $1 AND lease_token = $2`, [current.holder, current.token])).rows.length > 0,
      8_000,
    ).catch(() => false);
    holder.child.kill('SIGKILL');
    if (building) killedMidway++;
    await new Promise((r) => holder.child.once('exit', r));
    generators.splice(generators.indexOf(holder), 1, await startGenerator(`gen-${++started}`));
  }
  expect(killedMidway).toBeGreaterThanOrEqual(3);
  expect(froze).toBeDefined();
  expect(events).toBeGreaterThan(10);
  // Let the survivors run a little longer after the last kill, then stop them cleanly.
  await new Promise((r) => setTimeout(r, 5_000));
  for (const g of generators) g.child.kill('SIGTERM');
  await Promise.all(generators.map((g) => new Promise((r) => (g.child.exitCode !== null ? r(undefined) : g.child.once('exit', r)))));

  const published = (
    await db.query(`SELECT issuer_key_id, scope, crl_number::text AS n, holder, lease_token::text AS token, published_at FROM crls WHERE state = 'PUBLISHED' ORDER BY published_at, id`)
  ).rows as Array<{ issuer_key_id: string; scope: string; n: string; holder: string; token: string; published_at: Date }>;
  expect(published.length).toBeGreaterThanOrEqual(30);
  const last = new Map<string, bigint>();
  for (const crl of published) {
    const key = `${crl.issuer_key_id}/${crl.scope}`;
    const n = BigInt(crl.n);
    const previous = last.get(key);
    if (previous !== undefined) expect(`${key}: ${n} after ${previous}: ${n > previous ? 'higher' : 'NOT HIGHER'}`).toBe(`${key}: ${n} after ${previous}: higher`);
    last.set(key, n);
  }
  // Each was signed by ca-signer under that number, and the signer never signed a number twice.
  const signed = new Set(
    (await signerDb.query(`SELECT issuer_key_id, partition, crl_number::text AS n FROM signed_crls`)).rows.map((r) => `${r.issuer_key_id}/${r.partition || 'full'}/${r.n}`),
  );
  for (const crl of published.filter((c) => c.scope !== 'arl')) expect(signed.has(`${crl.issuer_key_id}/${crl.scope}/${crl.n}`)).toBe(true);
  // The frozen holder published nothing after it lost the lease.
  expect(published.filter((c) => c.holder === froze!.holder && c.token === froze!.token && c.published_at > froze!.thawedAt)).toEqual([]);
  // Unfinished CRLs of the killed holders were never published.
  const unfinished = Number((await db.query(`SELECT count(*) FROM crls WHERE state = 'BUILDING'`)).rows[0].count);
  expect(unfinished).toBeGreaterThanOrEqual(killedMidway > 0 ? 1 : 0);

  // And the last complete CRL is whole and verifies.
  const full = (await db.query(`SELECT id FROM crls WHERE state = 'PUBLISHED' AND issuer_key_id = $1 AND kind = 'FULL' ORDER BY crl_number DESC LIMIT 1`, [g1])).rows[0].id;
  const chunks = (await db.query(`SELECT data FROM crl_chunks WHERE crl_id = $1 ORDER BY seq`, [full])).rows.map((r) => r.data as Buffer);
  const file = env.file('last-full.crl', Buffer.concat(chunks));
  const issuing = join(env.signer.caDir, 'issuing.pem');
  expect(opensslResult(['crl', '-inform', 'DER', '-in', file, '-CAfile', issuing, '-noout', '-verify']).output.trim()).toBe('verify OK');
  writeFileSync(join(env.signer.dir, 'summary.json'), JSON.stringify({ killedMidway, published: published.length, unfinished, events }));
}, 420_000);
