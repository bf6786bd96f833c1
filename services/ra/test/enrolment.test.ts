import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { fromBinary } from '@bufbuild/protobuf';
import { createLogger, parseConfig } from '@pki/kit';
import { createEventTransport, type OutboxEvent } from '@pki/outbox';
import { eventsV1, Topics } from '@pki/proto';
import { fromPem, toPem } from '@pki/x509';
import { startCaSignerFixture, type CaSignerFixture } from '../../ca-signer/test/service-fixture';
import { raConfigSchema } from '../src/config';
import { startRa, type RunningRa } from '../src/app';

let signer: CaSignerFixture;
let ra: RunningRa;
let db: pg.Pool;

/** A key pair and PKCS#10 request made by OpenSSL, standing in for the card. */
function makeCsr(name: string, options: { bits?: number; serialNumber?: string } = {}): string {
  const key = join(signer.dir, `${name}.key`);
  const csr = join(signer.dir, `${name}.csr`);
  execFileSync('openssl', ['req', '-new', '-newkey', `rsa:${options.bits ?? 2048}`, '-nodes', '-keyout', key, '-utf8',
    '-subj', `/C=TW/CN=王小明/serialNumber=${options.serialNumber ?? '1234567890123456'}`, '-out', csr], { stdio: 'ignore' });
  return readFileSync(csr, 'utf8');
}

async function enrol(body: unknown, idempotencyKey?: string) {
  const res = await fetch(`${ra.httpUrl}/v1/enrolments`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const certificateCount = async () => Number((await db.query('SELECT count(*) FROM certificates')).rows[0].count);

beforeAll(async () => {
  signer = await startCaSignerFixture();
  const { caFile, certFile, keyFile } = signer.identities.ra;
  const config = parseConfig(raConfigSchema, {
    log: { level: 'silent' },
    ops: { host: '127.0.0.1', port: 0 },
    http: { host: '127.0.0.1', port: 0 },
    database: { url: signer.databaseUrl, schema: 'ra' },
    tls: { caFile, certFile, keyFile },
    caSigner: { address: signer.signer.grpcAddress, serverIdentity: signer.identities['ca-signer'].identity, deadlineMs: 20_000 },
    events: { transport: { type: 'postgres' }, pollIntervalMs: 50 },
  });
  ra = await startRa(config, { logger: createLogger({ service: 'ra', level: 'silent' }) });
  db = new pg.Pool({ connectionString: signer.databaseUrl, options: '-c search_path=ra' });
});
afterAll(async () => {
  await db?.end();
  await ra?.runtime.stop();
  await signer?.stop();
});

describe('first certificate, end to end: ra REST -> ca-signer gRPC (mTLS) -> SoftHSM', () => {
  it('enrols a certificate that OpenSSL verifies against the returned chain, and publishes its status event', async () => {
    const transport = await createEventTransport({ type: 'postgres', url: signer.databaseUrl, pollIntervalMs: 50 }, { logger: createLogger({ service: 'test', level: 'silent' }) });
    const received: OutboxEvent[] = [];
    await transport.subscriber.subscribe({ topic: Topics.certificateStatus, group: 'e2e-test', handler: async (e) => void received.push(e) });
    try {
      const { status, body } = await enrol({ csr: makeCsr('first'), profile: 'citizen-signature' }, 'counter-7/app-1001/SIGN');
      expect(status).toBe(201);
      expect(body).toMatchObject({ profile: 'citizen-signature', status: 'VALID', serialHex: expect.stringMatching(/^[0-9a-f]{32}$/) });
      const chain = body.chain as string[];
      expect(chain).toHaveLength(2); // issuing CA, then root

      const leaf = join(signer.dir, 'first.pem');
      writeFileSync(leaf, body.certificate as string);
      writeFileSync(join(signer.dir, 'issuing.pem'), chain[0]!);
      writeFileSync(join(signer.dir, 'root.pem'), chain[1]!);
      const out = execFileSync('openssl', ['verify', '-x509_strict', '-CAfile', join(signer.dir, 'root.pem'), '-untrusted', join(signer.dir, 'issuing.pem'), leaf], { encoding: 'utf8' });
      expect(out.trim()).toBe(`${leaf}: OK`);
      // the root returned is the one made in the token by the ceremony
      expect(fromPem(chain[1]!, 'CERTIFICATE').equals(fromPem(readFileSync(join(signer.caDir, 'root.pem'), 'utf8'), 'CERTIFICATE'))).toBe(true);

      // recorded with its status, and the status event committed in the same transaction...
      const row = (await db.query('SELECT status, certificate_der FROM certificates WHERE serial_hex = $1', [body.serialHex])).rows[0];
      expect(row.status).toBe('VALID');
      expect(toPem(row.certificate_der, 'CERTIFICATE')).toBe(body.certificate);
      // ...and delivered by the relay through the event transport
      const deadline = Date.now() + 10_000;
      while (!received.some((e) => e.key === body.serialHex) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const event = received.find((e) => e.key === body.serialHex);
      expect(event).toBeDefined();
      expect(event!.producer).toBe('ra');
      const change = fromBinary(eventsV1.CertificateStatusChangedSchema, event!.payload);
      expect(change).toMatchObject({ serialHex: body.serialHex, issuerKeyId: body.issuerKeyId, status: eventsV1.CertificateStatus.VALID });

      const fetched = await fetch(`${ra.httpUrl}/v1/certificates/${body.serialHex}`);
      expect(fetched.status).toBe(200);
      expect(await fetched.json()).toMatchObject({ serialHex: body.serialHex, status: 'VALID', certificate: body.certificate });
    } finally {
      await transport.close();
    }
  });

  it('returns the same certificate when a counter retries with the same idempotency key', async () => {
    const csr = makeCsr('retry');
    const first = await enrol({ csr, profile: 'citizen-signature' }, 'counter-7/app-1002/SIGN');
    const before = await certificateCount();
    const again = await enrol({ csr, profile: 'citizen-signature' }, 'counter-7/app-1002/SIGN');
    expect(again.status).toBe(201);
    expect(again.body.serialHex).toBe(first.body.serialHex);
    expect(await certificateCount()).toBe(before);
    const other = await enrol({ csr: makeCsr('retry-other'), profile: 'citizen-signature' }, 'counter-7/app-1002/SIGN');
    expect(other).toMatchObject({ status: 409, body: { error: 'CONFLICT', message: expect.stringContaining('already used for a different request') } });
  });

  describe('refuses bad input with a clear error and records nothing', () => {
    const tamperedSignature = () => {
      const der = fromPem(makeCsr('tampered'), 'CERTIFICATE REQUEST');
      der.writeUInt8(der.readUInt8(der.length - 1) ^ 0xff, der.length - 1); // last octet of the signature
      return toPem(der, 'CERTIFICATE REQUEST');
    };
    const cases: Array<[string, () => unknown, number, string, RegExp]> = [
      ['a CSR that is not PEM', () => ({ csr: 'hello', profile: 'citizen-signature' }), 400, 'INVALID_ARGUMENT', /no CERTIFICATE REQUEST block/],
      ['a CSR that is not DER inside', () => ({ csr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n', profile: 'citizen-signature' }), 400, 'INVALID_ARGUMENT', /not a DER PKCS#10 request/],
      ['a CSR whose signature does not verify', () => ({ csr: tamperedSignature(), profile: 'citizen-signature' }), 400, 'INVALID_ARGUMENT', /no proof of possession/],
      ['a key too small for the profile', () => ({ csr: makeCsr('small', { bits: 1024 }), profile: 'citizen-signature' }), 400, 'INVALID_ARGUMENT', /RSA-2048/],
      ['a subject serialNumber that is not 16 digits', () => ({ csr: makeCsr('badsn', { serialNumber: '42' }), profile: 'citizen-signature' }), 400, 'INVALID_ARGUMENT', /serialNumber must be 16 digits/],
      ['an unknown profile', () => ({ csr: makeCsr('p'), profile: 'citizen-root' }), 400, 'INVALID_ARGUMENT', /profile/],
      ['a missing profile', () => ({ csr: makeCsr('p2') }), 400, 'INVALID_ARGUMENT', /profile/],
      ['an unexpected field', () => ({ csr: makeCsr('p3'), profile: 'citizen-signature', nationalId: 'A123456789' }), 400, 'INVALID_ARGUMENT', /additional properties/],
      ['a body that is not JSON', () => '{"csr": ', 400, 'INVALID_ARGUMENT', /JSON/],
    ];
    it.each(cases)('%s', async (_name, body, status, error, message) => {
      const before = await certificateCount();
      const res = await enrol(body());
      expect(res.status).toBe(status);
      expect(res.body.error).toBe(error);
      expect(res.body.message).toMatch(message);
      expect(await certificateCount()).toBe(before);
    });

    it('an unknown or malformed serial on lookup', async () => {
      expect((await fetch(`${ra.httpUrl}/v1/certificates/${'ab'.repeat(16)}`)).status).toBe(404);
      const bad = await fetch(`${ra.httpUrl}/v1/certificates/not-hex`);
      expect(bad.status).toBe(400);
      expect(await bad.json()).toMatchObject({ error: 'INVALID_ARGUMENT', message: expect.stringContaining('is not lower-case hex') });
    });
  });
});
