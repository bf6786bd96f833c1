import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { findPostgresBinaries, postgresServerAccount, startKafka, startPostgres, createDatabase, type TestKafka, type TestPostgres } from '@pki/testing';
import { readOcspResponse } from '@pki/x509';
import { eventually, openssl, REASON, STATUS, startOcspFixture, type IssuedCertificate, type OcspFixture } from './ocsp-fixture';

// Faults of issue 9, against the real components, each under load: the responder's PostgreSQL
// stopped, the Kafka broker stopped, ca-signer stopped. Throughout, it keeps answering what it
// holds, live (nonce) requests get tryLater when they cannot be signed, no answer is ever wrong,
// and it recovers by itself. The responder has its own PostgreSQL server and Kafka broker here,
// so that stopping them touches nothing else of the test run.

const run = promisify(execFile);
let postgres: TestPostgres;
let kafka: TestKafka;
let f: OcspFixture;
const certs: { good: IssuedCertificate[]; revoked: IssuedCertificate[] } = { good: [], revoked: [] };
const requests = new Map<string, { plain: Buffer; nonce: Buffer }>();
const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

/** pg_ctl on the responder's server, as the account the harness runs PostgreSQL under. */
async function pgCtl(action: 'stop' | 'start'): Promise<void> {
  const pgCtlPath = join(findPostgresBinaries(), 'pg_ctl');
  const args = ['-D', join(postgres.dir, 'data'), '-w', '-t', '60', ...(action === 'stop' ? ['-m', 'fast', 'stop'] : ['-l', join(postgres.dir, 'server.log'), 'start'])];
  const command = postgresServerAccount().command(pgCtlPath, args);
  await run(command.file, command.args);
}

function ask(der: Buffer, method: 'GET' | 'POST'): Promise<{ http: number; body: Buffer }> {
  const url = new URL(f.ocsp.url);
  const path = method === 'GET' ? url.pathname + encodeURIComponent(der.toString('base64')) : url.pathname;
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path, method, agent, headers: method === 'POST' ? { 'content-length': der.length } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ http: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.setTimeout(20_000, () => req.destroy(new Error('the responder did not answer within 20 s')));
    req.on('error', reject);
    req.end(method === 'POST' ? der : undefined);
  });
}

/** What an answer says: a status for the serial, or an OCSP error status. */
function verdict(body: Buffer, serialHex: string): string {
  if (body.length === 5) return ['successful', 'malformedRequest', 'internalError', 'tryLater', '4', 'sigRequired', 'unauthorized'][body[4]!]!;
  const read = readOcspResponse(body);
  if (read.singles[0]!.serialHex !== serialHex) return `wrong serial ${read.singles[0]!.serialHex}`;
  return read.singles[0]!.status.kind;
}

interface LoadReport {
  answers: number;
  counts: Record<string, number>;
  wrong: string[];
}

/**
 * Requests in a loop until stopped: pre-produced (GET, no nonce) and live (POST, nonce) for every
 * certificate. `allowed` says, per serial and kind, which verdicts are right at this moment. A live
 * answer may always be tryLater (its signature did not come in time on a loaded machine): that is
 * never a wrong answer, only a deferred one.
 */
function startLoad(allowed: (serialHex: string, live: boolean) => string[]): { stop: () => Promise<LoadReport> } {
  let stopping = false;
  const report: LoadReport = { answers: 0, counts: {}, wrong: [] };
  const all = [...certs.good, ...certs.revoked];
  const loops = Array.from({ length: 4 }, async (_, lane) => {
    for (let i = lane; !stopping; i++) {
      const cert = all[i % all.length]!;
      const live = i % 4 === 0;
      const req = requests.get(cert.serialHex)!;
      const answer = await ask(live ? req.nonce : req.plain, live ? 'POST' : 'GET');
      const v = answer.http === 200 ? verdict(answer.body, cert.serialHex) : `HTTP ${answer.http}`;
      const key = `${live ? 'live' : 'pre-produced'} ${v}`;
      report.counts[key] = (report.counts[key] ?? 0) + 1;
      report.answers++;
      if (!(live && v === 'tryLater') && !allowed(cert.serialHex, live).includes(v)) report.wrong.push(`${cert.serialHex} (${live ? 'live' : 'pre-produced'}): ${v}`);
    }
  });
  return {
    stop: async () => {
      stopping = true;
      await Promise.all(loops);
      return report;
    },
  };
}

const expected = (serialHex: string) => (certs.revoked.some((c) => c.serialHex === serialHex) ? 'revoked' : 'good');
const readyz = async () => (await (await fetch(`${f.ocsp.opsUrl}/readyz`)).json()) as { ready: boolean; checks: Record<string, string> };
const dependencyUp = async (dependency: string) => Number(new RegExp(`ocsp_dependency_up\\{dependency="${dependency}",service="ocsp"\\} (\\d)`).exec(await (await fetch(`${f.ocsp.opsUrl}/metrics`)).text())?.[1]);

beforeAll(async () => {
  [postgres, kafka] = await Promise.all([startPostgres({ dir: join(__dirname, '..', '..', '..', 'var', 'test') }), startKafka({ dir: join(__dirname, '..', '..', '..', 'var', 'test') })]);
  const ocspDatabaseUrl = await createDatabase(postgres.url, 'ocsp_faults');
  f = await startOcspFixture({ transport: { type: 'kafka', brokers: kafka.brokers }, ocspDatabaseUrl, configure: (c) => void (c.live = { timeoutMs: 2_000 }) });
  for (let i = 0; i < 6; i++) certs.good.push(await f.issue(f.generations[i % 2]!));
  for (let i = 0; i < 2; i++) certs.revoked.push(await f.issue(f.generations[i % 2]!));
  for (const c of [...certs.good, ...certs.revoked]) await f.publish(c, { status: STATUS.VALID });
  for (const c of certs.revoked) await f.publish(c, { status: STATUS.REVOKED, reason: REASON.KEY_COMPROMISE, previous: STATUS.VALID });
  for (const c of [...certs.good, ...certs.revoked]) {
    const plain = join(f.dir, `${c.serialHex}.req`);
    const nonce = join(f.dir, `${c.serialHex}-nonce.req`);
    await openssl(['ocsp', '-issuer', c.generation.certFile, '-cert', c.certFile, '-no_nonce', '-reqout', plain]);
    await openssl(['ocsp', '-issuer', c.generation.certFile, '-cert', c.certFile, '-reqout', nonce]);
    requests.set(c.serialHex, { plain: readFileSync(plain), nonce: readFileSync(nonce) });
  }
  for (const c of [...certs.good, ...certs.revoked]) {
    await eventually(async () => (verdict((await ask(requests.get(c.serialHex)!.plain, 'GET')).body, c.serialHex) === expected(c.serialHex) ? true : undefined), `${c.serialHex} settles`);
  }
}, 300_000);

afterAll(async () => {
  agent.destroy();
  await f?.stop();
  await Promise.allSettled([kafka?.stop(), postgres?.stop()]);
});

it('PostgreSQL stopped: answers from memory, applies a revocation it consumes to memory, and catches the store up afterwards', async () => {
  const victim = certs.good.pop()!;
  const load = startLoad((serial) => (serial === victim.serialHex ? ['good', 'revoked', 'tryLater'] : [expected(serial)]));
  await pgCtl('stop');
  try {
    await eventually(async () => ((await readyz()).checks.database?.startsWith('degraded') ? true : undefined), 'readiness says the database is down');
    const ready = await readyz();
    expect(ready.ready).toBe(true); // it can still answer: a load balancer keeps it
    expect(await dependencyUp('database')).toBe(0);
    // A revocation during the outage reaches memory straight from the event.
    await f.publish(victim, { status: STATUS.REVOKED, reason: REASON.SUPERSEDED, previous: STATUS.VALID });
    await eventually(async () => (verdict((await ask(requests.get(victim.serialHex)!.plain, 'GET')).body, victim.serialHex) === 'revoked' ? true : undefined), 'the revocation is served during the outage');
    await new Promise((r) => setTimeout(r, 3_000)); // the outage lasts, under load
  } finally {
    await pgCtl('start');
  }
  await eventually(async () => ((await readyz()).checks.database === 'ok' ? true : undefined), 'the database is back in readiness');
  const report = await load.stop();
  certs.revoked.push(victim);
  expect(report.wrong).toEqual([]);
  expect(report.answers).toBeGreaterThan(100);
  expect(report.counts['pre-produced good']).toBeGreaterThan(0);
  // The store caught up: the revocation applied in the outage is in PostgreSQL, signed.
  const pool = new (await import('pg')).default.Pool({ connectionString: f.config.database.url, options: '-c search_path=ocsp' });
  try {
    await eventually(async () => {
      const { rows } = await pool.query(`SELECT status, status_seq = signed_seq AS signed FROM certificates WHERE serial_hex = $1`, [victim.serialHex]);
      return rows[0]?.status === 'REVOKED' && rows[0]?.signed ? true : undefined;
    }, 'the store has the revocation');
  } finally {
    await pool.end();
  }
}, 240_000);

it('Kafka stopped: answers from memory, and a revocation made meanwhile arrives once the broker is back', async () => {
  const victim = certs.good.pop()!;
  let revoked = false;
  const load = startLoad((serial) => (serial === victim.serialHex ? (revoked ? ['revoked', 'tryLater'] : ['good', 'revoked', 'tryLater']) : [expected(serial)]));
  const pidFile = join(kafka.dir, 'harness.pid');
  process.kill(Number(readFileSync(pidFile, 'utf8').trim()), 'SIGTERM');
  try {
    await eventually(async () => ((await readyz()).checks.events?.startsWith('degraded') ? true : undefined), 'readiness says the events are down');
    expect((await readyz()).ready).toBe(true);
    await f.publish(victim, { status: STATUS.REVOKED, reason: REASON.CESSATION_OF_OPERATION, previous: STATUS.VALID });
    // The change waits in ra's outbox; the responder goes on answering what it holds.
    await new Promise((r) => setTimeout(r, 2_000));
    expect(verdict((await ask(requests.get(victim.serialHex)!.plain, 'GET')).body, victim.serialHex)).toBe('good');
  } finally {
    await kafka.restart();
  }
  certs.revoked.push(victim);
  await eventually(async () => (verdict((await ask(requests.get(victim.serialHex)!.plain, 'GET')).body, victim.serialHex) === 'revoked' ? true : undefined), 'the revocation arrives after the broker is back', 120_000);
  revoked = true;
  await eventually(async () => ((await readyz()).checks.events === 'ok' ? true : undefined), 'the events are back in readiness');
  const report = await load.stop();
  expect(report.wrong).toEqual([]);
  expect(report.counts['pre-produced good']).toBeGreaterThan(0);
}, 240_000);

it('ca-signer stopped: pre-produced answers go on, live ones get tryLater, a change is tryLater until signed, and it recovers', async () => {
  const victim = certs.good.pop()!;
  // Live answers may be tryLater around the outage (the circuit reopens after a pause), never wrong.
  const load = startLoad((serial, live) => {
    const allowed = serial === victim.serialHex ? ['good', 'revoked', 'tryLater'] : [expected(serial)];
    return live ? [...allowed, 'tryLater'] : allowed;
  });
  await f.stopSigner();
  try {
    const nonce = requests.get(certs.good[0]!.serialHex)!.nonce;
    await eventually(async () => (verdict((await ask(nonce, 'POST')).body, certs.good[0]!.serialHex) === 'tryLater' ? true : undefined), 'live answers are tryLater');
    await eventually(async () => ((await readyz()).checks['ca-signer']?.startsWith('degraded') ? true : undefined), 'readiness says ca-signer is down');
    // Pre-produced answers are still served.
    expect(verdict((await ask(requests.get(certs.good[0]!.serialHex)!.plain, 'GET')).body, certs.good[0]!.serialHex)).toBe('good');
    // A revocation that cannot be signed: never the old "good" again, tryLater until it is.
    await f.publish(victim, { status: STATUS.REVOKED, reason: REASON.AFFILIATION_CHANGED, previous: STATUS.VALID });
    await eventually(async () => (verdict((await ask(requests.get(victim.serialHex)!.plain, 'GET')).body, victim.serialHex) === 'tryLater' ? true : undefined), 'the changed certificate is tryLater');
    await new Promise((r) => setTimeout(r, 3_000)); // the outage lasts, under load
  } finally {
    await f.startSigner();
  }
  certs.revoked.push(victim);
  await eventually(async () => (verdict((await ask(requests.get(victim.serialHex)!.plain, 'GET')).body, victim.serialHex) === 'revoked' ? true : undefined), 'the revocation is signed once ca-signer is back', 120_000);
  const nonce = requests.get(certs.good[0]!.serialHex)!.nonce;
  await eventually(async () => (verdict((await ask(nonce, 'POST')).body, certs.good[0]!.serialHex) === 'good' ? true : undefined), 'live answers are signed again');
  const report = await load.stop();
  expect(report.wrong).toEqual([]);
  expect(report.counts['live tryLater']).toBeGreaterThan(0);
  expect(report.counts['pre-produced good']).toBeGreaterThan(0);
}, 240_000);
