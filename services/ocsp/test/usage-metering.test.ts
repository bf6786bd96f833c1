import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { fromBinary } from '@bufbuild/protobuf';
import { createLogger, parseConfig } from '@pki/kit';
import { createEventTransport, type EventTransport } from '@pki/outbox';
import { eventsV1 } from '@pki/proto';
import { parseOcspRequest, readOcspResponse } from '@pki/x509';
import { ocspConfigSchema } from '../src/config';
import { eventually, openssl, startOcspFixture, STATUS, type IssuedCertificate, type OcspFixture } from './ocsp-fixture';

// Issue 13, OCSP side: every request is attributed to the identification it carries (mTLS, a
// verified signed request, the per-system URL) or counted as anonymous, and published per window
// as OcspUsageCounted through the responder's outbox; read back here from the real transport
// (Kafka; the PostgreSQL bus of the embedded mode at the end).

const ID = eventsV1.OcspCallerIdentification;
const UNAUTHORIZED = 6;
const silent = () => createLogger({ service: 'test', level: 'silent' });

interface Received {
  producer: string;
  event: eventsV1.OcspUsageCounted;
}

/** Reads every OcspUsageCounted of `topic` from the transport, from the oldest, into `into`. */
async function listen(transport: EventTransport, topic: string, into: Received[]): Promise<void> {
  await transport.ensureTopics([topic]);
  await transport.subscriber.subscribe({
    topic,
    group: `usage-reader-${randomBytes(4).toString('hex')}`,
    handler: async (e) => void into.push({ producer: e.producer, event: fromBinary(eventsV1.OcspUsageCountedSchema, e.payload) }),
  });
}

/** Totals over the windows received for an instance (each window once: delivery is at least once). */
function totals(received: Received[], instance: string): { anonymous: number; overflow: number; byCaller: Map<string, number>; sequences: number[] } {
  const seen = new Map<bigint, eventsV1.OcspUsageCounted>();
  for (const { event } of received) if (event.responderInstance === instance) seen.set(event.windowSequence, event);
  const byCaller = new Map<string, number>();
  let anonymous = 0;
  let overflow = 0;
  for (const w of seen.values()) {
    anonymous += Number(w.anonymousRequests);
    overflow += Number(w.overflowRequests);
    for (const e of w.entries) byCaller.set(`${ID[e.identification]} ${e.callerKey}`, (byCaller.get(`${ID[e.identification]} ${e.callerKey}`) ?? 0) + Number(e.requests));
  }
  return { anonymous, overflow, byCaller, sequences: [...seen.keys()].map(Number).sort((a, b) => a - b) };
}

/** Waits until the instance's totals satisfy `ok`; returns them. */
function until(received: Received[], instance: string, ok: (t: ReturnType<typeof totals>) => boolean, what: string) {
  return eventually(async () => {
    const t = totals(received, instance);
    if (ok(t)) return t;
    // Not yet: what has arrived so far, for the failure message.
    throw new Error(JSON.stringify({ ...t, byCaller: Object.fromEntries(t.byCaller) }));
  }, what, 90_000);
}

function post(url: string, body: Buffer, tls?: { key: string; cert: string }): Promise<{ http: number; body: Buffer }> {
  return send(url, 'POST', body, tls);
}

function send(url: string, method: 'GET' | 'POST', body: Buffer | undefined, tls?: { key: string; cert: string }): Promise<{ http: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method, rejectUnauthorized: false, agent: false, ...(tls ?? {}), headers: body ? { 'content-type': 'application/ocsp-request', 'content-length': body.length } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ http: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A counter's value in a Prometheus exposition, from the series whose labels include `label`. */
function metric(text: string, name: string, label = ''): number {
  const line = text.split('\n').find((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && l.includes(label));
  return line === undefined ? NaN : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** The responseStatus of an OCSPResponse (0 successful, 1 malformedRequest, 6 unauthorized...). */
const responseStatus = (der: Buffer) => der[der[1]! & 0x80 ? 2 + (der[1]! & 0x7f) + 2 : 4]!;

async function plainPost(url: string, body: Buffer): Promise<Buffer> {
  const res = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/ocsp-request' } });
  expect(res.status).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

describe('OCSP usage metering through Kafka', () => {
  let f: OcspFixture;
  let transport: EventTransport;
  const received: Received[] = [];
  const usageTopic = `pki.usage.v1.test-${randomBytes(4).toString('hex')}`;
  let target: IssuedCertificate;
  let client: IssuedCertificate;
  let clientTls: { key: string; cert: string };
  let foreignTls: { key: string; cert: string };
  let impostorTls: { key: string; cert: string };
  let request: Buffer;
  let dir: string;

  beforeAll(async () => {
    f = await startOcspFixture({
      configure: (c) => {
        c.metering = { windowSeconds: 1, topic: usageTopic, instanceName: 'ocsp-test' };
      },
    });
    dir = f.dir;
    // The HTTPS listener's own certificate (relying parties do not use it; agencies trust it).
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'https.key'), '-out', join(dir, 'https.pem'), '-days', '2', '-subj', '/CN=localhost'], { stdio: 'ignore' });
    await f.stopOcsp();
    await f.restartOcsp((c) => {
      c.https = { host: '127.0.0.1', port: 0, certFile: join(dir, 'https.pem'), keyFile: join(dir, 'https.key') };
    });
    transport = await createEventTransport({ type: 'kafka', brokers: (process.env.PKI_TEST_KAFKA_BROKERS ?? '').split(','), clientId: 'usage-reader' }, { logger: silent() });
    await listen(transport, usageTopic, received);

    target = await f.issue(f.generations[0]);
    // An agency's client certificate, issued by our CA (generation 2), whose key the test holds.
    const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
    client = await f.issue(f.generations[1], { publicKeySpki: keys.publicKey.export({ type: 'spki', format: 'der' }) });
    writeFileSync(join(dir, 'client.key'), keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    clientTls = { key: readFileSync(join(dir, 'client.key'), 'utf8'), cert: readFileSync(client.certFile, 'utf8') };
    // A certificate that is not ours (self-signed), with its key.
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'foreign.key'), '-out', join(dir, 'foreign.pem'), '-days', '2', '-subj', '/C=TW/O=Elsewhere/CN=not-ours'], { stdio: 'ignore' });
    foreignTls = { key: readFileSync(join(dir, 'foreign.key'), 'utf8'), cert: readFileSync(join(dir, 'foreign.pem'), 'utf8') };
    // An impostor CA with our generation's exact subject DN (generations share one DN, so the name
    // proves nothing) and a client certificate from it: issuer name matches, signature does not.
    const o = (name: string) => join(dir, name);
    execFileSync('openssl', ['genrsa', '-out', o('impostor-ca.key'), '2048'], { stdio: 'ignore' });
    execFileSync('openssl', ['x509', '-x509toreq', '-in', f.generations[1].certFile, '-signkey', o('impostor-ca.key'), '-out', o('impostor-ca.csr')], { stdio: 'ignore' });
    execFileSync('openssl', ['x509', '-req', '-in', o('impostor-ca.csr'), '-signkey', o('impostor-ca.key'), '-days', '2', '-out', o('impostor-ca.pem')], { stdio: 'ignore' });
    execFileSync('openssl', ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', o('impostor.key'), '-out', o('impostor.csr'), '-subj', '/C=TW/CN=impostor'], { stdio: 'ignore' });
    execFileSync('openssl', ['x509', '-req', '-in', o('impostor.csr'), '-CA', o('impostor-ca.pem'), '-CAkey', o('impostor-ca.key'), '-set_serial', `0x${client.serialHex}`, '-days', '2', '-out', o('impostor.pem')], { stdio: 'ignore' });
    impostorTls = { key: readFileSync(o('impostor.key'), 'utf8'), cert: readFileSync(o('impostor.pem'), 'utf8') };
    await openssl(['ocsp', '-issuer', f.generations[0].certFile, '-cert', target.certFile, '-no_nonce', '-reqout', join(dir, 'plain-req.der')]);
    request = readFileSync(join(dir, 'plain-req.der'));
    await f.publish(target, { status: STATUS.VALID });
    await eventually(async () => (responseStatus(await plainPost(f.ocsp.url, request)) === 0 ? true : undefined), 'the target answered good');
    // That wait was counted (anonymous): the tests start from a new instance.
    await f.stopOcsp();
    await f.restartOcsp();
  }, 240_000);

  afterAll(async () => {
    await transport?.close();
    await f?.stop();
  });

  it('attributes the per-system URL (GET and POST), counts plain requests as anonymous, and answers both alike', async () => {
    const instance = f.ocsp.usage!.instance;
    const base = f.ocsp.url;
    const getPath = encodeURIComponent(request.toString('base64'));
    const plain = Buffer.from(await (await fetch(base + getPath)).arrayBuffer());
    const viaSystem = Buffer.from(await (await fetch(`${base}s/agency-a.tax_01/${getPath}`)).arrayBuffer());
    // The same pre-produced response, byte for byte.
    expect(viaSystem.equals(plain)).toBe(true);
    expect(readOcspResponse(viaSystem).singles[0]!.serialHex).toBe(target.serialHex);
    expect((await plainPost(`${base}s/agency-a.tax_01/`, request)).equals(plain)).toBe(true);
    expect((await plainPost(`${base}s/agency-a.tax_01`, request)).equals(plain)).toBe(true);
    await plainPost(base, request);
    // A malformed request through the per-system URL still counts for that system ("successful or not").
    expect(responseStatus(Buffer.from(await (await fetch(`${base}s/agency-b/%%%`)).arrayBuffer()))).toBe(1);

    const t = await until(received, instance, (x) => x.byCaller.get('SYSTEM_URL agency-a.tax_01') === 3 && x.anonymous === 2 && x.byCaller.get('SYSTEM_URL agency-b') === 1, 'per-system and anonymous counts');
    expect(t.overflow).toBe(0);
  }, 120_000);

  it('refuses a malformed system id with a clear 404, counting nothing', async () => {
    for (const bad of ['s/-lead/', 's/has%20space/', `s/${'x'.repeat(65)}/`, 's//']) {
      const res = await fetch(`${f.ocsp.url}${bad}${encodeURIComponent(request.toString('base64'))}`);
      expect(res.status).toBe(404);
      expect(await res.text()).toMatch(/system id is 1 to 64/);
    }
    const res = await fetch(`${f.ocsp.url}s/bad!id/`, { method: 'POST', body: request });
    expect(res.status).toBe(404);
  });

  it('identifies an agency by its client certificate on the HTTPS listener; a foreign one or none is anonymous', async () => {
    const instance = f.ocsp.usage!.instance;
    const url = f.ocsp.httpsUrl!;
    expect(url).toMatch(/^https:/);
    const callerKey = `${client.issuerKeyId}:${client.serialHex}`;
    for (let i = 0; i < 3; i++) {
      const res = await post(url, request, clientTls);
      expect(res.http).toBe(200);
      expect(readOcspResponse(res.body).singles[0]!.status.kind).toBe('good');
    }
    // mTLS wins over the per-system URL: the certificate is authenticated, the URL is not.
    expect((await post(`${url}s/agency-c/`, request, clientTls)).http).toBe(200);
    // A client certificate that is not ours, and none at all: answered, counted as anonymous.
    expect(readOcspResponse((await post(url, request, foreignTls)).body).singles[0]!.status.kind).toBe('good');
    expect(readOcspResponse((await post(url, request)).body).singles[0]!.status.kind).toBe('good');
    // Our generation's name and the agency's serial, but not our CA's signature: not that agency.
    expect(execFileSync('openssl', ['x509', '-in', join(dir, 'impostor.pem'), '-noout', '-issuer', '-nameopt', 'RFC2253'], { encoding: 'utf8' }).replace(/^issuer=/, '')).toBe(
      execFileSync('openssl', ['x509', '-in', f.generations[1].certFile, '-noout', '-subject', '-nameopt', 'RFC2253'], { encoding: 'utf8' }).replace(/^subject=/, ''),
    );
    expect(readOcspResponse((await post(url, request, impostorTls)).body).singles[0]!.status.kind).toBe('good');
    // Garbage in place of a certificate cannot even complete a handshake.
    await expect(post(url, request, { key: clientTls.key, cert: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n' })).rejects.toThrow();

    const t = await until(received, instance, (x) => x.byCaller.get(`MTLS ${callerKey}`) === 4 && x.anonymous >= 5, 'mTLS counts');
    expect([...t.byCaller.keys()].filter((k) => k.startsWith('SYSTEM_URL agency-c'))).toEqual([]);
    expect([...t.byCaller.keys()].filter((k) => k.startsWith('MTLS')).length).toBe(1);
    expect(metric(await (await fetch(`${f.ocsp.opsUrl}/metrics`)).text(), 'ocsp_tls_clients_unidentified_total')).toBe(2);
  }, 120_000);

  it('attributes a verified signed request to its signer; a bad signature or a foreign signer gets unauthorized and is not attributed', async () => {
    const instance = f.ocsp.usage!.instance;
    const callerKey = `${client.issuerKeyId}:${client.serialHex}`;
    // OpenSSL signs the request (RFC 6960 §4.1.2) and puts its certificate in `certs`, then checks the answer.
    const text = await openssl(['ocsp', '-issuer', f.generations[0].certFile, '-cert', target.certFile, '-signer', client.certFile, '-signkey', join(dir, 'client.key'), '-no_nonce', '-url', f.ocsp.url, '-CAfile', f.generations[0].chainFile, '-reqout', join(dir, 'signed-req.der')]);
    expect(text).toContain('Response verify OK');
    expect(text).toMatch(new RegExp(`${target.certFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: good`));
    const signed = readFileSync(join(dir, 'signed-req.der'));
    const parsed = parseOcspRequest(signed, { maxCertIds: 8 });
    expect(parsed.signature?.certs.length).toBeGreaterThanOrEqual(1);
    // Through the per-system URL too: the verified signature wins over the self-declared URL.
    expect(readOcspResponse(await plainPost(`${f.ocsp.url}s/agency-d/`, signed)).singles[0]!.status.kind).toBe('good');

    // Tampered: one bit of the signature flipped.
    const tampered = Buffer.from(signed);
    const at = tampered.indexOf(parsed.signature!.value);
    expect(at).toBeGreaterThan(0);
    tampered[at + 10]! ^= 0x01;
    expect(responseStatus(await plainPost(f.ocsp.url, tampered))).toBe(UNAUTHORIZED);
    // Tampered under a per-system URL: not the signer, but the URL still names the system.
    expect(responseStatus(await plainPost(`${f.ocsp.url}s/agency-e/`, tampered))).toBe(UNAUTHORIZED);
    // Signed with a certificate that is not ours (a valid signature, an unknown signer).
    await openssl(['ocsp', '-issuer', f.generations[0].certFile, '-cert', target.certFile, '-signer', join(dir, 'foreign.pem'), '-signkey', join(dir, 'foreign.key'), '-no_nonce', '-reqout', join(dir, 'foreign-req.der')]);
    expect(responseStatus(await plainPost(f.ocsp.url, readFileSync(join(dir, 'foreign-req.der'))))).toBe(UNAUTHORIZED);
    // Signed but without the certificate to verify it with.
    await openssl(['ocsp', '-issuer', f.generations[0].certFile, '-cert', target.certFile, '-signer', client.certFile, '-signkey', join(dir, 'client.key'), '-no_certs', '-no_nonce', '-reqout', join(dir, 'wrong-cert-req.der')]);
    expect(responseStatus(await plainPost(f.ocsp.url, readFileSync(join(dir, 'wrong-cert-req.der'))))).toBe(UNAUTHORIZED);

    const t = await until(received, instance, (x) => x.byCaller.get(`SIGNED_REQUEST ${callerKey}`) === 2 && x.byCaller.get('SYSTEM_URL agency-e') === 1, 'signed-request counts');
    expect(t.byCaller.get('SYSTEM_URL agency-d')).toBeUndefined();
    const metrics = await (await fetch(`${f.ocsp.opsUrl}/metrics`)).text();
    expect(metric(metrics, 'ocsp_signed_requests_total', 'outcome="rejected"')).toBe(4);
    expect(metric(metrics, 'ocsp_signed_requests_total', 'outcome="verified"')).toBe(2);
    expect(metric(metrics, 'ocsp_usage_requests_total', 'identification="signed_request"')).toBe(2);
  }, 120_000);

  it('numbers windows 1, 2, 3... per instance, records the open window at shutdown, and a restart is a new instance', async () => {
    const first = f.ocsp.usage!.instance;
    await until(received, first, (x) => x.sequences.length >= 3, 'three windows');
    const { sequences } = totals(received, first);
    expect(sequences).toEqual(Array.from({ length: sequences.length }, (_, i) => i + 1));
    for (const { producer, event } of received.filter((r) => r.event.responderInstance === first)) {
      expect(producer).toBe('ocsp');
      expect(event.windowEnd!.seconds >= event.windowStart!.seconds).toBe(true);
    }

    // An hour-long window: only the shutdown can close it.
    await f.stopOcsp();
    await f.restartOcsp((c) => {
      (c.metering as Record<string, unknown>).windowSeconds = 3_600;
    });
    const second = f.ocsp.usage!.instance;
    expect(second).not.toBe(first);
    for (let i = 0; i < 5; i++) await fetch(`${f.ocsp.url}s/flush-check/${encodeURIComponent(request.toString('base64'))}`);
    await f.stopOcsp();
    await f.restartOcsp((c) => {
      (c.metering as Record<string, unknown>).windowSeconds = 1;
    });
    expect(f.ocsp.usage!.instance).not.toBe(second);
    const t = await until(received, second, (x) => x.byCaller.get('SYSTEM_URL flush-check') === 5, 'the window flushed at shutdown');
    expect(t.sequences).toEqual([1]);
  }, 180_000);

  it('publishes nothing with metering off, and still answers', async () => {
    await f.stopOcsp();
    await f.restartOcsp((c) => {
      (c.metering as Record<string, unknown>).enabled = false;
    });
    expect(f.ocsp.usage).toBeUndefined();
    expect(readOcspResponse(await plainPost(`${f.ocsp.url}s/agency-a/`, request)).singles[0]!.status.kind).toBe('good');
    const metrics = await (await fetch(`${f.ocsp.opsUrl}/metrics`)).text();
    expect(metric(metrics, 'ocsp_usage_requests_total', 'identification="system_url"')).toBe(0);
  });
});

describe('OCSP usage metering in the embedded mode (PostgreSQL bus)', () => {
  let f: OcspFixture;
  let transport: EventTransport;
  const received: Received[] = [];
  const usageTopic = `pki.usage.v1.bus-${randomBytes(4).toString('hex')}`;

  beforeAll(async () => {
    f = await startOcspFixture({
      transport: { type: 'postgres' },
      configure: (c) => {
        c.metering = { windowSeconds: 1, topic: usageTopic };
      },
    });
    transport = await createEventTransport({ type: 'postgres', url: f.signer.databaseUrl, pollIntervalMs: 50 }, { logger: silent() });
    await listen(transport, usageTopic, received);
  }, 240_000);

  afterAll(async () => {
    await transport?.close();
    await f?.stop();
  });

  it('delivers the windows through the bus', async () => {
    const target = await f.issue(f.generations[0]);
    await openssl(['ocsp', '-issuer', f.generations[0].certFile, '-cert', target.certFile, '-no_nonce', '-reqout', join(f.dir, 'bus-req.der')]);
    const request = readFileSync(join(f.dir, 'bus-req.der'));
    await f.publish(target, { status: STATUS.VALID });
    await eventually(async () => (responseStatus(await plainPost(`${f.ocsp.url}s/embedded-system/`, request)) === 0 ? true : undefined), 'the target answered good');
    for (let i = 0; i < 3; i++) await plainPost(`${f.ocsp.url}s/embedded-system/`, request);
    await until(received, f.ocsp.usage!.instance, (x) => (x.byCaller.get('SYSTEM_URL embedded-system') ?? 0) >= 4, 'windows through the bus');
  }, 120_000);
});

describe('metering and HTTPS config', () => {
  const base = {
    log: { level: 'silent' },
    ops: { port: 0 },
    database: { url: 'postgres://x@localhost/x', schema: 'ocsp' },
    http: { port: 0 },
    tls: { caFile: 'a', certFile: 'b', keyFile: 'c' },
    caSigner: { address: 'localhost:1', serverIdentity: 'spiffe://pki.internal/ca-signer' },
    events: { transport: { type: 'postgres' } },
  };
  const parse = (extra: Record<string, unknown>) => () => parseConfig(ocspConfigSchema, { ...base, ...extra });

  it('defaults to metering on, 60 s windows, topic pki.usage.v1', () => {
    const config = parseConfig(ocspConfigSchema, base);
    expect(config.metering).toMatchObject({ enabled: true, windowSeconds: 60, topic: 'pki.usage.v1', producer: 'ocsp' });
    expect(config.https).toBeUndefined();
  });

  it('rejects bad metering settings, naming the key', () => {
    expect(parse({ metering: { windowSeconds: 0 } })).toThrow(/metering\.windowSeconds/);
    expect(parse({ metering: { windowSeconds: 1.5 } })).toThrow(/metering\.windowSeconds/);
    expect(parse({ metering: { enabled: 'yes' } })).toThrow(/metering\.enabled/);
    expect(parse({ metering: { maxCallersPerWindow: 1 } })).toThrow(/metering\.maxCallersPerWindow/);
    expect(parse({ metering: { topic: 'no spaces allowed' } })).toThrow(/metering\.topic/);
    expect(parse({ metering: { instanceName: 'a/b' } })).toThrow(/metering\.instanceName/);
    expect(parse({ metering: { window: 60 } })).toThrow(/unknown key 'metering\.window'/);
  });

  it('rejects an HTTPS listener whose certificate or key cannot be read', () => {
    const dir = join(__dirname, '..', '..', '..', 'var');
    const notPem = join(dir, `not-pem-${process.pid}.txt`);
    writeFileSync(notPem, 'hello');
    expect(parse({ https: { port: 0, certFile: '/nonexistent/cert.pem', keyFile: notPem } })).toThrow(/https\.certFile.*cannot read \/nonexistent\/cert\.pem: ENOENT/);
    expect(parse({ https: { port: 0, certFile: notPem, keyFile: notPem } })).toThrow(/https\.certFile.*holds no PEM CERTIFICATE/);
    expect(parse({ https: { port: 0, keyFile: notPem } })).toThrow(/missing key 'https\.certFile'/);
    expect(parse({ https: { port: 70_000, certFile: notPem, keyFile: notPem } })).toThrow(/https\.port/);
  });
});
