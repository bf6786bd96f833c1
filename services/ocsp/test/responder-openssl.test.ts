import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expectNoPkilintErrors } from '@pki/testing';
import { parseOcspRequest, readOcspResponse } from '@pki/x509';
import { eventually, openssl, REASON, STATUS, startOcspFixture, type Generation, type IssuedCertificate, type OcspFixture } from './ocsp-fixture';

// The "Must show" of issue 9, with OpenSSL as the independent client and judge: `openssl ocsp`
// over POST and GET, with and without nonce, SHA-1 and SHA-256 CertIDs, for every status, two CA
// generations sharing one DN at once, never-issued serials and an unknown issuer; pkilint on every
// distinct kind of response.

let f: OcspFixture;
let run = 0;

interface Combo {
  method: 'POST' | 'GET';
  nonce: boolean;
  hash: 'SHA1' | 'SHA256';
}
const COMBOS: Combo[] = (['POST', 'GET'] as const).flatMap((method) => [true, false].flatMap((nonce) => (['SHA1', 'SHA256'] as const).map((hash) => ({ method, nonce, hash }))));
const label = (c: Combo) => `${c.method} ${c.hash}${c.nonce ? ' nonce' : ''}`;

/** Asks the responder about a certificate (or a bare serial) with openssl; returns openssl's verdict and the response DER. */
async function ask(generation: Generation, subject: { certFile: string } | { serial: string }, combo: Combo, issuerFile = generation.certFile): Promise<{ text: string; der: Buffer }> {
  const n = run++;
  const req = join(f.dir, `req-${n}.der`);
  const resp = join(f.dir, `resp-${n}.der`);
  // The digest option must come before -cert/-serial, which build the CertID.
  const id = [...(combo.hash === 'SHA256' ? ['-sha256'] : []), '-issuer', issuerFile, ...('certFile' in subject ? ['-cert', subject.certFile] : ['-serial', `0x${subject.serial}`])];
  const nonce = combo.nonce ? [] : ['-no_nonce'];
  if (combo.method === 'POST') {
    const text = await openssl(['ocsp', ...id, ...nonce, '-url', f.ocsp.url, '-CAfile', generation.chainFile, '-respout', resp]);
    return { text, der: readFileSync(resp) };
  }
  await openssl(['ocsp', ...id, ...nonce, '-reqout', req]);
  // RFC 5019 §5: the base64 of the DER request, URL-encoded, after the responder URL.
  const res = await fetch(f.ocsp.url + encodeURIComponent(readFileSync(req).toString('base64')));
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('application/ocsp-response');
  writeFileSync(resp, Buffer.from(await res.arrayBuffer()));
  // OpenSSL checks the signature and prints the status; with -cert it builds a request of its own
  // (a new nonce), so the echo of the nonce sent in the URL is compared here, byte for byte.
  const text = await openssl(['ocsp', '-respin', resp, ...id, '-no_nonce', '-CAfile', generation.chainFile]);
  const der = readFileSync(resp);
  const sent = parseOcspRequest(readFileSync(req), { maxCertIds: 1 }).nonce;
  if (der.length > 5) expect(readOcspResponse(der).nonce?.toString('hex')).toBe(sent?.toString('hex'));
  return { text, der };
}

/** The verdict line for one certificate, and that the response verified and echoed the nonce. */
function expectVerified(text: string, combo: Combo, status: RegExp): void {
  expect(text).toContain('Response verify OK');
  expect(text).toMatch(status);
  expect(text).not.toMatch(/nonce/i); // neither "WARNING: no nonce in response" nor a nonce verify error
  void combo;
}

async function statusOf(generation: Generation, cert: IssuedCertificate): Promise<string> {
  return (await ask(generation, cert, { method: 'POST', nonce: false, hash: 'SHA1' })).text;
}

interface Case {
  name: string;
  cert: IssuedCertificate;
  expected: RegExp;
  reason?: number;
}

const REASONS: Array<[number, string | undefined]> = [
  [REASON.UNSPECIFIED, undefined],
  [REASON.KEY_COMPROMISE, 'keyCompromise'],
  [REASON.CA_COMPROMISE, 'cACompromise'],
  [REASON.AFFILIATION_CHANGED, 'affiliationChanged'],
  [REASON.SUPERSEDED, 'superseded'],
  [REASON.CESSATION_OF_OPERATION, 'cessationOfOperation'],
  [REASON.PRIVILEGE_WITHDRAWN, undefined],
  [REASON.AA_COMPROMISE, undefined],
];

const cases: Record<string, Case[]> = {};
const linted = new Set<string>();

beforeAll(async () => {
  // Expired certificates: no retention, so they are answered `unauthorized` once notAfter passes.
  f = await startOcspFixture({ configure: (c) => void (c.responses = { expiredRetentionDays: 0 }) });
  for (const [g, generation] of f.generations.entries()) {
    const list: Case[] = [];
    const good = await f.issue(generation);
    list.push({ name: 'good', cert: good, expected: /: good/ });
    for (const [reason, text] of REASONS) {
      const cert = await f.issue(generation);
      list.push({ name: `revoked (reason ${reason})`, cert, reason, expected: text ? new RegExp(`: revoked[\\s\\S]*Reason: ${text}`) : /: revoked/ });
    }
    const suspended = await f.issue(generation);
    list.push({ name: 'suspended', cert: suspended, reason: 6, expected: /: revoked[\s\S]*Reason: certificateHold/ });
    const resumed = await f.issue(generation);
    list.push({ name: 'resumed', cert: resumed, expected: /: good/ });
    const expired = await f.issue(generation, { notAfter: new Date(Math.floor(Date.now() / 1000) * 1000 + 4_000) });
    list.push({ name: 'expired', cert: expired, expected: /Responder Error: unauthorized/ });
    cases[`G${g + 1}`] = list;

    for (const c of list) await f.publish(c.cert, { status: STATUS.VALID });
    for (const c of list.filter((c) => c.name.startsWith('revoked'))) await f.publish(c.cert, { status: STATUS.REVOKED, reason: c.reason, previous: STATUS.VALID });
    await f.publish(suspended, { status: STATUS.SUSPENDED, previous: STATUS.VALID });
    await f.publish(resumed, { status: STATUS.SUSPENDED, previous: STATUS.VALID });
    await f.publish(resumed, { status: STATUS.VALID, reason: REASON.REMOVE_FROM_CRL, previous: STATUS.SUSPENDED });
  }
  // Every case settles to its final answer (the expired ones once notAfter has passed).
  for (const [g, list] of Object.entries(cases)) {
    for (const c of list) await eventually(async () => ((c.expected.test(await statusOf(c.cert.generation, c.cert))) ? true : undefined), `${g} ${c.name} settles`);
  }
}, 300_000);

afterAll(async () => {
  await f?.stop();
});

describe.each(['G1', 'G2'])('generation %s (both generations share one issuer DN)', (g) => {
  it.each(COMBOS.map((c) => [label(c), c] as const))('%s: every status, verified by openssl', async (_label, combo) => {
    for (const c of cases[g]!) {
      const { text, der } = await ask(c.cert.generation, c.cert, combo);
      if (c.name === 'expired') {
        expect(text).toMatch(c.expected);
        continue;
      }
      expectVerified(text, combo, c.expected);
      const read = readOcspResponse(der);
      expect(read.singles[0]!.serialHex).toBe(c.cert.serialHex);
      expect(read.singles[0]!.hash).toBe(combo.hash);
      if (c.reason !== undefined && c.reason !== 0) expect(read.singles[0]!.status).toMatchObject({ kind: 'revoked', reason: c.reason });
      if (c.reason === 0) expect(read.singles[0]!.status).toEqual({ kind: 'revoked', revocationTime: expect.any(Date) });
      // Live answers echo the nonce; pre-produced ones have none, so that they can be cached.
      expect(read.nonce !== undefined).toBe(combo.nonce);
      // pkilint on each distinct kind of response: status and reason, hash, pre-produced or live.
      const kind = `${g}/${c.name}/${combo.hash}/${combo.nonce}`;
      if (!linted.has(kind) && (combo.method === 'POST' || c.name === 'good')) {
        linted.add(kind);
        await expectNoPkilintErrors('ocsp-response', der);
      }
    }
  }, 240_000);

  it.each(COMBOS.map((c) => [label(c), c] as const))('%s: a serial never issued is never good (policy unauthorized)', async (_label, combo) => {
    const generation = f.generations[g === 'G1' ? 0 : 1];
    const { text } = await ask(generation, { serial: randomBytes(16).toString('hex').replace(/^[89a-f]/, '1') }, combo);
    expect(text).toContain('Responder Error: unauthorized (6)');
  });

  it('a serial of the other generation is never issued by this one', async () => {
    const [mine, other] = g === 'G1' ? f.generations : [f.generations[1], f.generations[0]];
    const cert = cases[g === 'G1' ? 'G2' : 'G1']![0]!.cert; // a good certificate of the other generation
    const { text } = await ask(mine, { serial: cert.serialHex }, { method: 'POST', nonce: false, hash: 'SHA1' });
    expect(text).toContain('Responder Error: unauthorized (6)');
    expect((await ask(other, cert, { method: 'POST', nonce: false, hash: 'SHA1' })).text).toMatch(/: good/);
  });
});

it.each(COMBOS.map((c) => [label(c), c] as const))('%s: an unknown issuer (same DN, another key) gets unauthorized', async (_label, combo) => {
  const key = join(f.dir, 'stranger.key');
  const cert = join(f.dir, 'stranger.pem');
  await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '30', '-utf8', '-subj', '/C=TW/O=行政院/OU=內政部憑證管理中心']);
  const { text } = await ask(f.generations[0], { serial: '0123456789abcdef' }, combo, cert);
  expect(text).toContain('Responder Error: unauthorized (6)');
});

it('answers several CertIDs of one generation in one live response', async () => {
  const [a, b] = [cases.G1![0]!.cert, cases.G1![1]!.cert];
  const resp = join(f.dir, 'multi.der');
  const text = await openssl(['ocsp', '-issuer', f.generations[0].certFile, '-cert', a.certFile, '-cert', b.certFile, '-url', f.ocsp.url, '-CAfile', f.generations[0].chainFile, '-respout', resp]);
  expect(text).toContain('Response verify OK');
  expect(text).toMatch(new RegExp(`${a.certFile}: good[\\s\\S]*${b.certFile}: revoked`));
  await expectNoPkilintErrors('ocsp-response', readFileSync(resp));
});

it('policy revoked: a never-issued serial is revoked (certificateHold, 1970-01-01) with the extended-revoke extension', async () => {
  await f.stopOcsp();
  await f.restartOcsp((c) => void (c.policy = { neverIssued: 'revoked' }));
  const serial = randomBytes(16).toString('hex').replace(/^[89a-f]/, '2');
  for (const combo of COMBOS) {
    const { text, der } = await ask(f.generations[1], { serial }, combo);
    expect(text).toContain('Response verify OK');
    expect(text).toMatch(/: revoked[\s\S]*Reason: certificateHold[\s\S]*Revocation Time: Jan {2}1 00:00:00 1970 GMT/);
    const read = readOcspResponse(der);
    expect(read.extendedRevoke).toBe(true);
    expect(read.nonce !== undefined).toBe(combo.nonce);
    if (combo.method === 'POST' && combo.hash === 'SHA1') await expectNoPkilintErrors('ocsp-response', der);
  }
  // still: a certificate that was issued keeps its real status
  expect(await statusOf(f.generations[0], cases.G1![0]!.cert)).toMatch(/: good/);
}, 120_000);
