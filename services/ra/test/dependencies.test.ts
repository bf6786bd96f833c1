import { systemClock } from '@pki/kit';
import { startRaFixture, type RaFixture } from './ra-fixture';
import { cardNumber, issueCard, person, register } from './lifecycle-helpers';
import { TcpProxy } from './tcp-proxy';
import { codesOf, confirm, identityBody, onboard } from './agency-helpers';

// When the database or ca-signer is down, callers get 503 with Retry-After and a message that names
// the dependency, never an address, a driver message or an HSM code; nothing half-done is left
// behind, and the same request succeeds once the dependency is back.
let f: RaFixture;
let database: TcpProxy;
let signer: TcpProxy;

beforeAll(async () => {
  const url = new URL(process.env.PKI_TEST_DATABASE_URL!);
  database = await new TcpProxy({ host: url.hostname, port: Number(url.port) }).start();
  signer = await new TcpProxy({ host: '127.0.0.1', port: 1 }).start(); // target set below, once the signer runs
  f = await startRaFixture({
    configure: (config) => {
      const db = config.database as { url: string };
      const proxied = new URL(db.url);
      proxied.port = String(database.port);
      db.url = proxied.toString();
      const caSigner = config.caSigner as { address: string; deadlineMs: number };
      const [host, port] = caSigner.address.split(':');
      signerTarget.host = host!;
      signerTarget.port = Number(port);
      caSigner.address = `127.0.0.1:${signer.port}`;
      caSigner.deadlineMs = 2000;
    },
  });
}, 120_000);
const signerTarget = { host: '127.0.0.1', port: 0 };
afterAll(async () => {
  await f?.stop();
  await database?.stop();
  await signer?.stop();
});

// The proxy forwards to the real signer once its port is known.
beforeAll(async () => {
  await signer.cut();
  signer = await new TcpProxy(signerTarget).start(signer.port);
});

const LEAKS = /127\.0\.0\.1|ECONNREFUSED|ECONNRESET|Deadline exceeded|remote_addr|CKR_|metadata|pg_|connect /;

async function submitted() {
  const subscriberId = await register(f, person());
  const number = cardNumber();
  const application = await f.call('registrar-a', 'POST', '/v1/applications', { subscriberId, cardNumber: number, kind: 'NEW', signingCsr: f.csr(`${number}-s`), encryptionCsr: f.csr(`${number}-k`) });
  expect(application.status).toBe(201);
  return application.body.id as string;
}

describe('ca-signer unavailable', () => {
  it.each([
    ['refusing connections', () => signer.cut()],
    ['hanging (accepting and never answering)', async () => signer.hold()],
  ])('when %s: 503 with Retry-After, no internal text, the application waits; the same request then succeeds', async (_how, takeAway) => {
    const id = await submitted();
    await takeAway();
    const key = `approve-${id}`;
    const refused = await f.call('registrar-a', 'POST', `/v1/applications/${id}/approval`, undefined, key);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(refused.body).toEqual({ error: 'UNAVAILABLE', message: 'approve application: the certificate signer (ca-signer) is unavailable; retry in 5 s' });
    expect(refused.text).not.toMatch(LEAKS);
    expect((await f.call('registrar-a', 'GET', `/v1/applications/${id}`)).body.state).toBe('ISSUING');
    expect(Number((await f.db.query(`SELECT count(*) FROM certificates WHERE application_id = $1`, [id])).rows[0].count)).toBe(0);
    // The log has the detail the caller did not get.
    expect(f.logs.some((l) => l.includes('dependency unavailable') && /ca-signer/.test(l))).toBe(true);

    await signer.restore();
    // A client retries as Retry-After says; the gRPC channel reconnects with its own backoff, so
    // the first retries may still be 503, never anything else.
    let retried = await f.call('registrar-a', 'POST', `/v1/applications/${id}/approval`, undefined, key);
    const until = Date.now() + 30_000;
    while (retried.status === 503 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 500));
      retried = await f.call('registrar-a', 'POST', `/v1/applications/${id}/approval`, undefined, key);
    }
    expect(retried.status).toBe(201);
    expect((retried.body.application as { state: string }).state).toBe('ISSUED');
  });
});

describe('a retry of an approval whose issuance is unfinished', () => {
  it('waits for the application before it holds the key, so the first run\'s recording (application, then key) cannot deadlock with it', async () => {
    const id = await submitted();
    await signer.cut();
    const key = `approve-${id}`;
    expect((await f.call('registrar-a', 'POST', `/v1/applications/${id}/approval`, undefined, key)).status).toBe(503); // ISSUING, the key claimed and unfinished
    await signer.restore();
    // Another approval until the gRPC channel is back, so that the retry below meets the lock, not the reconnection.
    const other = await submitted();
    let warm = await f.call('registrar-a', 'POST', `/v1/applications/${other}/approval`, undefined, `approve-${other}`);
    for (const until = Date.now() + 30_000; warm.status === 503 && Date.now() < until; ) {
      await new Promise((r) => setTimeout(r, 500));
      warm = await f.call('registrar-a', 'POST', `/v1/applications/${other}/approval`, undefined, `approve-${other}`);
    }
    expect(warm.status).toBe(201);
    // A recording stands in: it holds the application's row, and then wants the key's.
    const recording = await f.db.connect();
    try {
      await recording.query('BEGIN');
      await recording.query(`UPDATE applications SET updated_at = updated_at WHERE id = $1`, [id]);
      const retry = f.call('registrar-a', 'POST', `/v1/applications/${id}/approval`, undefined, key);
      await new Promise((r) => setTimeout(r, 500)); // the retry is waiting by now
      await recording.query(`SET LOCAL lock_timeout = '5s'`);
      await recording.query(`UPDATE idempotency_keys SET created_at = created_at WHERE key = $1`, [key]); // a deadlock would fail one of the two here
      await recording.query('COMMIT');
      const answered = await retry;
      expect(answered.status).toBe(201);
      expect((answered.body.application as { state: string }).state).toBe('ISSUED');
    } finally {
      recording.release();
    }
  });
});

describe('database unavailable', () => {
  it('answers 503 for reads and writes, readiness fails, and everything works again when it returns', async () => {
    const card = await issueCard(f, await register(f, person()));
    const { client: agency } = await onboard(f, 'DB-DOWN-01', 'GOVERNMENT');
    const records = [{ seq: 1, serialNumber: card.subjectSerialNumber, nationalId: 'A123456789' }];
    await database.cut();
    try {
      for (const [method, path, body] of [
        ['GET', `/v1/cards/${card.cardNumber}`, undefined],
        ['POST', `/v1/cards/${card.cardNumber}/suspension`, {}],
        ['POST', '/v1/self-service/suspension', { cardNumber: card.cardNumber, subscriberCode: 'abcd12345' }],
        ['GET', `/v1/public/certificates/${card.certificates[0]!.serialHex}`, undefined],
      ] as const) {
        const res = await f.call('registrar-b', method, path, body);
        expect({ path, status: res.status }).toEqual({ path, status: 503 });
        expect(res.headers.get('retry-after')).toBe('5');
        expect(res.body.message).toMatch(/: the registry database is unavailable; retry in 5 s$/);
        expect(res.text).not.toMatch(LEAKS);
      }
      const ready = await fetch(`${f.ra.opsUrl}/readyz`);
      expect(ready.status).toBe(503);
    } finally {
      await database.restore();
    }
    const back = await f.call('registrar-b', 'POST', `/v1/cards/${card.cardNumber}/suspension`, {});
    expect(back.status).toBe(200);
    expect((await fetch(`${f.ra.opsUrl}/readyz`)).status).toBe(200);

    // An agency system gets the request-level code for it.
    await database.cut();
    const body = identityBody(systemClock, records);
    try {
      const unavailable = await confirm(f, agency, body);
      expect(unavailable.status).toBe(503);
      expect(unavailable.headers.get('retry-after')).toBe('5');
      expect(unavailable.body).toEqual({ error: 'UNAVAILABLE', message: 'identity confirmation: the registry database is unavailable; retry in 5 s', details: { code: 'BACKEND_UNAVAILABLE' } });
      expect(unavailable.text).not.toMatch(LEAKS);
    } finally {
      await database.restore();
    }
    // The same signed request, nonce included, is answered once the database is back.
    let answered = await confirm(f, agency, body);
    const until = Date.now() + 30_000;
    while (answered.status === 503 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 500));
      answered = await confirm(f, agency, body);
    }
    expect(codesOf(answered)).toEqual({ 1: 2 });
    await agency.agent.close();
  });
});
