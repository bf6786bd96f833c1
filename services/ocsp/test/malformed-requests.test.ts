import { randomBytes, randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, Extension, Extensions } from '@peculiar/asn1-x509';
import { CertID, OCSPRequest, Request, TBSRequest } from '@peculiar/asn1-ocsp';
import { id_pkix_ocsp_nonce, readOcspResponse } from '@pki/x509';
import { eventually, openssl, STATUS, startOcspFixture, type IssuedCertificate, type OcspFixture } from './ocsp-fixture';

// "Bad input" of issue 9: over 100,000 generated malformed requests (truncated, wrong tags, huge
// lengths, deep nesting, unknown hash algorithm, too many CertIDs, bad base64, oversized bodies,
// random bytes, bit flips) and slow senders. None may crash or hang the responder, each gets only
// a designed answer (malformedRequest, or for a mutation that happens to stay well-formed,
// unauthorized or a real status), and a valid request still works afterwards.

const TOTAL = 100_000;
let f: OcspFixture;
let cert: IssuedCertificate;
let valid: Buffer;
let agent: http.Agent;
let url: URL;

const MALFORMED = 1;
const UNAUTHORIZED = 6;

beforeAll(async () => {
  f = await startOcspFixture({
    transport: { type: 'postgres' },
    configure: (c) => void Object.assign(c.http as object, { requestTimeoutMs: 2_000, headersTimeoutMs: 1_000 }),
  });
  cert = await f.issue(f.generations[0]);
  await f.publish(cert, { status: STATUS.VALID });
  await openssl(['ocsp', '-issuer', f.generations[0].certFile, '-cert', cert.certFile, '-no_nonce', '-reqout', `${f.dir}/valid.der`]);
  valid = readFileSync(`${f.dir}/valid.der`);
  url = new URL(f.ocsp.url);
  agent = new http.Agent({ keepAlive: true, maxSockets: 24 });
  await eventually(async () => ((await request('POST', url.pathname, valid)).status === 0 ? true : undefined), 'the certificate is answered');
}, 180_000);

afterAll(async () => {
  agent?.destroy();
  await f?.stop();
});

interface Answer {
  http: number;
  /** OCSPResponseStatus, or -1 when the body is not an OCSPResponse. */
  status: number;
}

function request(method: 'GET' | 'POST', path: string, body?: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, method, path, agent, headers: body ? { 'content-type': 'application/ocsp-request', 'content-length': body.length } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const data = Buffer.concat(chunks);
        // OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED, ... }: 30 len 0a 01 status
        const status = data.length >= 5 && data[0] === 0x30 ? data[data[1]! & 0x80 ? 2 + (data[1]! & 0x7f) + 2 : 4]! : -1;
        resolve({ http: res.statusCode ?? 0, status });
      });
    });
    req.setTimeout(15_000, () => req.destroy(new Error(`no answer within 15 s to a ${method} of ${body?.length ?? path.length} octets`)));
    req.on('error', reject);
    req.end(body);
  });
}
const get = (der: Buffer | string) => request('GET', url.pathname + (typeof der === 'string' ? der : encodeURIComponent(der.toString('base64'))));

function certId(hashOid = '1.3.14.3.2.26', length = 20): CertID {
  return new CertID({ hashAlgorithm: new AlgorithmIdentifier({ algorithm: hashOid, parameters: null }), issuerNameHash: new OctetString(length), issuerKeyHash: new OctetString(length), serialNumber: new Uint8Array([1, 2, 3]).buffer });
}
function requestOf(ids: CertID[], extensions?: Extension[]): Buffer {
  const tbs = new TBSRequest({ requestList: ids.map((reqCert) => new Request({ reqCert })) });
  if (extensions) tbs.requestExtensions = new Extensions(extensions);
  return Buffer.from(AsnConvert.serialize(new OCSPRequest({ tbsRequest: tbs })));
}
function nested(depth: number): Buffer {
  let inner = Buffer.from([0x05, 0x00]);
  for (let i = 0; i < depth; i++) {
    const n = inner.length;
    const header = n < 0x80 ? Buffer.from([0x30, n]) : n < 0x100 ? Buffer.from([0x30, 0x81, n]) : n < 0x10000 ? Buffer.from([0x30, 0x82, n >> 8, n & 0xff]) : Buffer.from([0x30, 0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
    inner = Buffer.concat([header, inner]);
  }
  return inner;
}

// Requests the schema layer builds are made once, in variants (it is slower than the responder).
const pick = (list: Buffer[]) => list[randomInt(list.length)]!;
const UNKNOWN_HASH = Array.from({ length: 60 }, (_, i) => requestOf([certId(['1.2.840.113549.2.5', '2.16.840.1.101.3.4.2.3', '1.2.3.4'][i % 3]!, 16 + (i % 20))]));
const TOO_MANY = Array.from({ length: 40 }, (_, i) => requestOf(Array.from({ length: 9 + i }, () => certId())));
const LONG_NONCE = Array.from({ length: 40 }, (_, i) => requestOf([certId()], [new Extension({ extnID: id_pkix_ocsp_nonce, critical: false, extnValue: new OctetString(AsnConvert.serialize(new OctetString(33 + i * 3))) })]));
// SEQUENCEs nested 100 to 1,000 deep (within the body limit), made once.
const NESTED = [100, 250, 500, 750, 1_000].map(nested);

/** One malformed request of a category, and the answers it may get. */
type Generator = () => { method: 'GET' | 'POST'; body: Buffer | string; allowed: number[] };
const strictly = [MALFORMED];
const mutated = [MALFORMED, UNAUTHORIZED, 0];
const CATEGORIES: Record<string, Generator> = {
  truncated: () => ({ method: 'POST', body: valid.subarray(0, randomInt(valid.length)), allowed: strictly }),
  'wrong tag': () => {
    const b = Buffer.from(valid);
    // Flip a tag octet of one of the first structural elements.
    const at = [0, 2, 4, 6][randomInt(4)]!;
    b[at] = [0x31, 0x04, 0x02, 0xa3, 0x10, 0x00][randomInt(6)]!;
    return { method: 'POST', body: b, allowed: strictly };
  },
  'huge length': () => {
    const b = Buffer.from(valid);
    return { method: 'POST', body: Buffer.concat([b.subarray(0, 1), Buffer.from([0x84, 0x7f, 0xff, 0xff, 0xff]), b.subarray(2)]), allowed: strictly };
  },
  'deep nesting': () => ({ method: 'POST', body: NESTED[randomInt(NESTED.length)]!, allowed: strictly }),
  'unknown hash algorithm': () => ({ method: 'POST', body: pick(UNKNOWN_HASH), allowed: strictly }),
  'too many CertIDs': () => ({ method: 'POST', body: pick(TOO_MANY), allowed: strictly }),
  'nonce too long': () => ({ method: 'POST', body: pick(LONG_NONCE), allowed: strictly }),
  'bad base64': () => ({ method: 'GET', body: ['%%%', '!!!!', 'MEMwQT%2', '====', 'a', 'MEM*'][randomInt(6)]! + randomBytes(4).toString('hex'), allowed: strictly }),
  'bad base64 of garbage': () => ({ method: 'GET', body: encodeURIComponent(randomBytes(1 + randomInt(200)).toString('base64')), allowed: strictly }),
  'random bytes': () => ({ method: 'POST', body: randomBytes(1 + randomInt(600)), allowed: strictly }),
  'bit flip': () => {
    const b = Buffer.from(valid);
    b[randomInt(b.length)]! ^= 1 << randomInt(8);
    return { method: randomInt(2) ? 'POST' : 'GET', body: b, allowed: mutated };
  },
};
const OVERSIZED = 200;

/**
 * HTTP/1.1 with pipelining on one keep-alive connection: the generator must be cheaper than the
 * server it tests, or a hundred thousand requests take minutes on a loaded machine.
 */
class PipelinedConnection {
  readonly #socket: net.Socket;
  readonly #waiting: Array<{ resolve: (a: Answer) => void; reject: (e: Error) => void }> = [];
  #buffer: Buffer = Buffer.alloc(0);

  constructor(port: number, host: string) {
    this.#socket = net.connect(port, host);
    this.#socket.on('data', (chunk: Buffer) => {
      this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
      this.#parse();
    });
    const fail = () => {
      for (const w of this.#waiting.splice(0)) w.reject(new Error('connection closed with requests unanswered'));
    };
    this.#socket.on('close', fail);
    this.#socket.on('error', fail);
  }

  send(raw: Buffer): Promise<Answer> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
      this.#socket.write(raw);
    });
  }

  #parse(): void {
    for (;;) {
      const end = this.#buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = this.#buffer.subarray(0, end).toString('latin1');
      const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
      if (this.#buffer.length < end + 4 + length) return;
      const body = this.#buffer.subarray(end + 4, end + 4 + length);
      this.#buffer = this.#buffer.subarray(end + 4 + length);
      const status = body.length >= 5 && body[0] === 0x30 ? body[body[1]! & 0x80 ? 2 + (body[1]! & 0x7f) + 2 : 4]! : -1;
      this.#waiting.shift()?.resolve({ http: Number(head.slice(9, 12)), status });
    }
  }

  close(): void {
    this.#socket.end();
  }
}

function raw(method: 'GET' | 'POST', body: Buffer | string): Buffer {
  if (method === 'GET') return Buffer.from(`GET ${url.pathname}${typeof body === 'string' ? body : encodeURIComponent(body.toString('base64'))} HTTP/1.1\r\nHost: ocsp\r\n\r\n`, 'latin1');
  const data = body as Buffer;
  return Buffer.concat([Buffer.from(`POST ${url.pathname} HTTP/1.1\r\nHost: ocsp\r\nContent-Type: application/ocsp-request\r\nContent-Length: ${data.length}\r\n\r\n`, 'latin1'), data]);
}

describe('malformed requests', () => {
  const counts: Record<string, number> = {};
  it(`answers ${TOTAL.toLocaleString('en')} generated malformed requests with designed answers only, and stays up`, async () => {
    const names = Object.keys(CATEGORIES);
    let sent = 0;
    const wrong: string[] = [];
    // 8 connections, 16 requests in flight on each.
    const connections = Array.from({ length: 8 }, () => new PipelinedConnection(Number(url.port), url.hostname));
    const lane = async (connection: PipelinedConnection) => {
      while (sent < TOTAL - OVERSIZED) {
        const name = names[sent++ % names.length]!;
        const { method, body, allowed } = CATEGORIES[name]!();
        const answer = await connection.send(raw(method, body));
        counts[name] = (counts[name] ?? 0) + 1;
        if (answer.http !== 200 || !allowed.includes(answer.status)) wrong.push(`${name}: HTTP ${answer.http}, OCSP status ${answer.status}`);
      }
    };
    try {
      await Promise.all(connections.flatMap((c) => Array.from({ length: 16 }, () => lane(c))));
    } finally {
      for (const c of connections) c.close();
    }
    // Oversized bodies: refused without being read to the end.
    for (let i = 0; i < OVERSIZED; i++) {
      const answer = await request('POST', url.pathname, randomBytes(4_097 + randomInt(60_000)));
      counts.oversized = (counts.oversized ?? 0) + 1;
      if (answer.http !== 200 || answer.status !== MALFORMED) wrong.push(`oversized: HTTP ${answer.http}, OCSP status ${answer.status}`);
    }
    // Oversized GET: longer than any request we accept.
    const long = await get('A'.repeat(20_000));
    if (long.http !== 200 && long.http !== 431) wrong.push(`oversized URL: HTTP ${long.http}`);
    expect(wrong.slice(0, 20)).toEqual([]);
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(TOTAL);
    expect(Object.keys(counts)).toEqual(expect.arrayContaining([...names, 'oversized']));
  }, 300_000);

  it('times slow senders out without holding up anyone else', async () => {
    const { port, hostname } = url;
    const slow = Array.from({ length: 20 }, (_, i) =>
      new Promise<string>((resolve) => {
        const socket = net.connect(Number(port), hostname);
        let received = '';
        socket.on('data', (d) => (received += d.toString('latin1')));
        socket.on('close', () => resolve(received));
        socket.on('error', () => undefined);
        // Half send headers one byte at a time, half a body that never completes.
        const text = i % 2 === 0 ? `POST ${url.pathname} HTTP/1.1\r\nHost: x\r\n` : `POST ${url.pathname} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0`;
        let at = 0;
        const timer = setInterval(() => {
          if (at < text.length && !socket.destroyed) socket.write(text[at++]!);
          else clearInterval(timer);
        }, 200);
        socket.on('close', () => clearInterval(timer));
      }),
    );
    // Meanwhile, ordinary requests are answered.
    for (let i = 0; i < 50; i++) expect((await request('POST', url.pathname, valid)).status).toBe(0);
    const outcomes = await Promise.all(slow);
    // Each was cut off by the server (408, or closed), none answered as if it were a request.
    for (const received of outcomes) expect(received === '' || /^HTTP\/1\.1 (408|400)/.test(received)).toBe(true);
  }, 60_000);

  it('still answers a valid request correctly afterwards, and never answered internalError', async () => {
    const res = await fetch(f.ocsp.url + encodeURIComponent(valid.toString('base64')));
    const read = readOcspResponse(Buffer.from(await res.arrayBuffer()));
    expect(read.singles[0]).toMatchObject({ serialHex: cert.serialHex, status: { kind: 'good' } });
    const text = await openssl(['ocsp', '-issuer', f.generations[0].certFile, '-cert', cert.certFile, '-url', f.ocsp.url, '-CAfile', f.generations[0].chainFile]);
    expect(text).toMatch(/Response verify OK[\s\S]*: good|: good[\s\S]*Response verify OK/);
    const metrics = await (await fetch(`${f.ocsp.opsUrl}/metrics`)).text();
    expect(metrics).toMatch(/ocsp_answers_total\{status="internalError",service="ocsp"\} 0/);
    expect(Number(/ocsp_answers_total\{status="malformedRequest",service="ocsp"\} (\d+)/.exec(metrics)?.[1])).toBeGreaterThan(TOTAL * 0.8);
    expect((await fetch(`${f.ocsp.opsUrl}/readyz`)).status).toBe(200);
  });
});

