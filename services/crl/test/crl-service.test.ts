import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatPkilintFindings, lintWithPkilint, pkilintErrors } from '@pki/testing';
import { crlPartitionOf, toPem } from '@pki/x509';
import { startCrl, type Running } from '../src/app';
import { adminRequest, eventually, openssl, opensslResult, quiet, RevocationReason, startCrlEnvironment, type CrlEnvironment, type IssuedCertificate } from './crl-fixture';

/**
 * The crl service end to end: real ca-signer (SoftHSM, two issuing generations sharing one DN),
 * certificates issued through it, status events through the outbox and Kafka, CRLs checked by
 * OpenSSL and pkilint, published over HTTP.
 */
let env: CrlEnvironment;
let crl: Running;
const PARTITIONS = 4;
const certs: Record<string, IssuedCertificate> = {};
const now = () => new Date(Math.floor(Date.now() / 1000) * 1000 - 1000);

const get = (path: string, headers: Record<string, string> = {}) => fetch(`${crl.httpUrl}${path}`, { headers });
async function der(path: string): Promise<Buffer> {
  const res = await get(path);
  if (res.status !== 200) throw new Error(`${path}: ${res.status} ${await res.text()}`);
  return Buffer.from(await res.arrayBuffer());
}
const partitionOf = (cert: IssuedCertificate) => crlPartitionOf(cert.serialHex, PARTITIONS);

/** Serial (lower-case hex) -> reason text, as OpenSSL reads the CRL. */
function entriesOf(crlFile: string): Map<string, string> {
  const text = openssl(['crl', '-inform', 'DER', '-in', crlFile, '-noout', '-text']);
  const entries = new Map<string, string>();
  for (const block of text.split(/Serial Number: /).slice(1)) {
    const serial = block.slice(0, block.indexOf('\n')).trim().toLowerCase();
    const reason = /CRL Reason Code:\s*\n\s*(.+)/.exec(block)?.[1]?.trim() ?? 'unspecified';
    entries.set(serialKey(serial), reason);
  }
  return entries;
}
/** A serial's integer value in hex without leading zeros: how OpenSSL prints it, whatever the DER. */
const serialKey = (hex: string) => hex.toLowerCase().replace(/^0+(?=.)/, '');
const numberOf = (crlFile: string) => BigInt(/X509v3 CRL Number: \s*\n\s*(\d+)/.exec(openssl(['crl', '-inform', 'DER', '-in', crlFile, '-noout', '-text']))![1]!);

async function latestNumber(issuer: string, scope: string, kind: string): Promise<bigint> {
  return (await crl.store.find(issuer, scope, kind as never))?.crlNumber ?? 0n;
}
/** Waits for a CRL of `scope`/`kind` newer than `after` that covers every change applied so far. */
async function nextCrl(issuer: string, scope: string, kind: 'FULL' | 'DELTA' | 'PARTITION', after: bigint): Promise<bigint> {
  const changes = await crl.store.scopeChanges(issuer);
  const needed = changes.get(scope) ?? 0n;
  return eventually(`${kind} CRL of ${issuer}/${scope} after ${after}`, async () => {
    const record = await crl.store.find(issuer, scope, kind);
    return record && record.crlNumber > after && record.snapshotSeq >= needed ? record.crlNumber : undefined;
  });
}
async function appliedChanges(n: number): Promise<void> {
  await eventually(`${n} status changes applied`, async () => Number((await crl.store.pool.query(`SELECT value FROM change_counter`)).rows[0].value) >= n);
}
const CRL_URL = (issuer: string, file = '') => `/crl/${issuer}${file}`;

beforeAll(async () => {
  env = await startCrlEnvironment({ crlPartitions: PARTITIONS });
  crl = await startCrl(env.crlConfig(), { logger: quiet, holder: 'test-generator' });
  const { g1, g2 } = env.generations;
  for (const [name, issuer] of [['a', g1], ['b', g1], ['c', g1], ['d', g1], ['e', g2], ['f', g2]] as const) {
    certs[name] = await env.issue(issuer, name);
    await env.publishStatus(certs[name], { status: 'VALID' });
  }
  await env.publishStatus(certs.a!, { status: 'REVOKED', at: now(), reason: RevocationReason.KEY_COMPROMISE, invalidityDate: new Date(now().getTime() - 86_400_000) });
  await env.publishStatus(certs.b!, { status: 'SUSPENDED', at: now() });
  await env.publishStatus(certs.e!, { status: 'REVOKED', at: now(), reason: RevocationReason.SUPERSEDED });
  await appliedChanges(3);
}, 240_000);
afterAll(async () => {
  await crl?.runtime.stop();
  await env?.stop();
}, 60_000);

describe('CRLs of two generations', () => {
  it('publishes complete, delta and partition CRLs that OpenSSL verifies and pkilint passes, for both generations', async () => {
    const issuers = await env.asRa.getIssuers({});
    const issuerPem = (keyId: string) => env.file(`${keyId}.pem`, toPem(issuers.issuers.find((i) => i.keyId === keyId)!.certificate, 'CERTIFICATE'));
    for (const issuer of [env.generations.g1, env.generations.g2]) {
      // The first complete CRL may have been made before the status events arrived; the next one
      // comes on an operator's request (the schedule is daily).
      const { caFile, certFile, keyFile } = env.signer.identities.audit;
      const regenerated = await adminRequest(crl.adminUrl, { method: 'POST', path: '/v1/regenerations', body: { issuerKeyId: issuer, kind: 'full' }, headers: { 'idempotency-key': `first-${issuer}` }, identity: { caFile, certFile, keyFile }, caFile });
      expect(regenerated).toMatchObject({ status: 201, body: { state: 'DONE' } });
      await nextCrl(issuer, 'full', 'DELTA', 0n);
      for (let p = 0; p < PARTITIONS; p++) await nextCrl(issuer, `p${p}`, 'PARTITION', 0n);
      const files = [
        env.file(`${issuer}-full.crl`, await der(CRL_URL(issuer, '.crl'))),
        env.file(`${issuer}-delta.crl`, await der(CRL_URL(issuer, '/delta.crl'))),
        ...(await Promise.all(Array.from({ length: PARTITIONS }, async (_, p) => env.file(`${issuer}-p${p}.crl`, await der(CRL_URL(issuer, `/p${p}.crl`)))))),
      ];
      for (const file of files) {
        // -CAfile makes openssl check the signature with the generation's own certificate (two share the DN).
        const verify = opensslResult(['crl', '-inform', 'DER', '-in', file, '-CAfile', issuerPem(issuer), '-noout', '-verify']);
        expect(`${file}: ${verify.output.trim()}`).toBe(`${file}: verify OK`);
        const findings = await lintWithPkilint('crl', readFileSync(file));
        expect(formatPkilintFindings(pkilintErrors(findings))).toBe('');
      }
      const full = openssl(['crl', '-inform', 'DER', '-in', files[0]!, '-noout', '-text']);
      expect(full).toContain('Freshest CRL');
      expect(full).toContain(`/delta.crl`);
      const delta = openssl(['crl', '-inform', 'DER', '-in', files[1]!, '-noout', '-text']);
      expect(delta).toMatch(/X509v3 Delta CRL Indicator: critical/);
      const part = openssl(['crl', '-inform', 'DER', '-in', files[2]!, '-noout', '-text']);
      expect(part).toMatch(new RegExp(`Issuing Distribution Point: critical\\s+Full Name:\\s+URI:http://crl\\.pki\\.test/crl/${issuer}/p0\\.crl\\s+Only User Certificates`));
    }
  }, 300_000);

  it('lists each entry with its facts, on its own generation and partition only', async () => {
    // The entries: revocation with reason and invalidity date, suspension as certificateHold, each
    // on its own generation's CRL and its own partition.
    const g1Full = entriesOf(join(env.signer.dir, `${env.generations.g1}-full.crl`));
    expect(g1Full.get(serialKey(certs.a!.serialHex))).toBe('Key Compromise');
    expect(g1Full.get(serialKey(certs.b!.serialHex))).toBe('Certificate Hold');
    expect(g1Full.has(serialKey(certs.c!.serialHex))).toBe(false);
    expect(g1Full.has(serialKey(certs.e!.serialHex))).toBe(false);
    const text = openssl(['crl', '-inform', 'DER', '-in', join(env.signer.dir, `${env.generations.g1}-full.crl`), '-noout', '-text']);
    expect(text).toContain('Invalidity Date');
    const g2Full = entriesOf(join(env.signer.dir, `${env.generations.g2}-full.crl`));
    expect([...g2Full.keys()]).toEqual([serialKey(certs.e!.serialHex)]);
    const aPartition = entriesOf(join(env.signer.dir, `${env.generations.g1}-p${partitionOf(certs.a!)}.crl`));
    expect(aPartition.has(serialKey(certs.a!.serialHex))).toBe(true);
    for (let p = 0; p < PARTITIONS; p++) {
      if (p === partitionOf(certs.a!)) continue;
      expect(entriesOf(join(env.signer.dir, `${env.generations.g1}-p${p}.crl`)).has(serialKey(certs.a!.serialHex))).toBe(false);
    }
  });

  it('makes openssl verify -crl_check reject a revoked certificate with its own partition CRL and with the complete CRL, and -crl_check_all with the chain and the ARL', async () => {
    const { g1 } = env.generations;
    const root = join(env.signer.caDir, 'root.pem');
    const issuing = join(env.signer.caDir, 'issuing.pem');
    const crlPem = async (path: string, name: string) => env.file(name, Buffer.from(await (await get(`${path}.pem`)).arrayBuffer()));
    const own = await crlPem(CRL_URL(g1, `/p${partitionOf(certs.a!)}.crl`), 'a-partition.pem');
    const full = await crlPem(CRL_URL(g1, '.crl'), 'g1-full.pem');
    const arl = await crlPem(CRL_URL(env.rootKeyId, '.crl'), 'arl.pem');
    const verify = (cert: IssuedCertificate, crls: string[], all = false) =>
      opensslResult(['verify', all ? '-crl_check_all' : '-crl_check', '-CAfile', root, '-untrusted', issuing, ...crls.flatMap((c) => ['-CRLfile', c]), cert.pemFile]);
    for (const crls of [[own], [full]]) {
      const revoked = verify(certs.a!, crls);
      expect(revoked.ok).toBe(false);
      expect(revoked.output).toContain('certificate revoked');
    }
    const revokedAll = verify(certs.a!, [own, arl], true);
    expect(revokedAll.ok).toBe(false);
    expect(revokedAll.output).toContain('certificate revoked');
    // A good certificate passes with its partition's CRL, and with the whole chain checked.
    const cPartition = await crlPem(CRL_URL(g1, `/p${partitionOf(certs.c!)}.crl`), 'c-partition.pem');
    expect(verify(certs.c!, [cPartition]).output).toContain(': OK');
    expect(verify(certs.c!, [cPartition, arl], true).output).toContain(': OK');
    expect(verify(certs.c!, [full, arl], true).output).toContain(': OK');
    // The issuing CA certificate now names the ARL and the root certificate.
    const issuingText = openssl(['x509', '-in', issuing, '-noout', '-text']);
    expect(issuingText).toContain(`URI:http://crl.pki.test/crl/${env.rootKeyId}.crl`);
    expect(issuingText).toContain(`CA Issuers - URI:http://pki.test/ca/${env.rootKeyId}.crt`);
    const arlFindings = await lintWithPkilint('crl', await der(CRL_URL(env.rootKeyId, '.crl')), { crlType: 'ARL' });
    expect(formatPkilintFindings(pkilintErrors(arlFindings))).toBe('');
  });

  it('accepts a suspended certificate again once the CRL after its resumption is out, with removeFromCRL in the delta', async () => {
    const { g1 } = env.generations;
    const b = certs.b!;
    const scope = `p${partitionOf(b)}`;
    const root = join(env.signer.caDir, 'root.pem');
    const issuing = join(env.signer.caDir, 'issuing.pem');
    const before = await latestNumber(g1, scope, 'PARTITION');
    const held = env.file('b-held.crl', await der(CRL_URL(g1, `/${scope}.crl`)));
    const heldVerify = opensslResult(['verify', '-crl_check', '-CAfile', root, '-untrusted', issuing, '-CRLfile', env.file('b-held.pem', openssl(['crl', '-inform', 'DER', '-in', held])), b.pemFile]);
    expect(heldVerify.output).toContain('certificate revoked');
    const deltaBefore = await latestNumber(g1, 'full', 'DELTA');
    await env.publishStatus(b, { status: 'VALID', previous: 'SUSPENDED' });
    await appliedChanges(4);
    await nextCrl(g1, scope, 'PARTITION', before);
    const resumed = env.file('b-resumed.pem', Buffer.from(await (await get(CRL_URL(g1, `/${scope}.crl.pem`))).arrayBuffer()));
    expect(opensslResult(['verify', '-crl_check', '-CAfile', root, '-untrusted', issuing, '-CRLfile', resumed, b.pemFile]).output).toContain(': OK');
    await nextCrl(g1, 'full', 'DELTA', deltaBefore);
    const delta = entriesOf(env.file('b-delta.crl', await der(CRL_URL(g1, '/delta.crl'))));
    expect(delta.get(serialKey(b.serialHex))).toBe('Remove From CRL');
  });

  it('gives, applied to its base, the same set as the next complete CRL', async () => {
    const { g1 } = env.generations;
    const base = env.file('base.crl', await der(CRL_URL(g1, '.crl')));
    const baseNumber = numberOf(base);
    const deltaBefore = await latestNumber(g1, 'full', 'DELTA');
    await env.publishStatus(certs.c!, { status: 'SUSPENDED', at: now() });
    await env.publishStatus(certs.d!, { status: 'REVOKED', at: now(), reason: RevocationReason.CESSATION_OF_OPERATION });
    await env.publishStatus(certs.c!, { status: 'REVOKED', at: now(), reason: RevocationReason.KEY_COMPROMISE, previous: 'SUSPENDED' });
    await appliedChanges(7);
    await nextCrl(g1, 'full', 'DELTA', deltaBefore);
    const deltaFile = env.file('delta.crl', await der(CRL_URL(g1, '/delta.crl')));
    expect(openssl(['crl', '-inform', 'DER', '-in', deltaFile, '-noout', '-text'])).toMatch(new RegExp(`Delta CRL Indicator: critical\\s+${baseNumber}`));
    // The next complete CRL, made on an operator's request.
    const { caFile, certFile, keyFile } = env.signer.identities.audit;
    const response = await adminRequest(crl.adminUrl, { method: 'POST', path: '/v1/regenerations', body: { issuerKeyId: g1, kind: 'full' }, headers: { 'idempotency-key': 'next-full' }, identity: { caFile, certFile, keyFile }, caFile });
    expect(response).toMatchObject({ status: 201, body: { state: 'DONE' } });
    const next = env.file('next.crl', await der(CRL_URL(g1, '.crl')));
    expect(numberOf(next)).toBe(BigInt(response.body.crlNumber as string));
    const merged = entriesOf(base);
    for (const [serial, reason] of entriesOf(deltaFile)) {
      if (reason === 'Remove From CRL') merged.delete(serial);
      else merged.set(serial, reason);
    }
    expect([...merged.entries()].sort()).toEqual([...entriesOf(next).entries()].sort());
    expect(merged.get(serialKey(certs.c!.serialHex))).toBe('Key Compromise');
    expect(merged.get(serialKey(certs.d!.serialHex))).toBe('Cessation Of Operation');
  });
});

describe('publication over HTTP', () => {
  it('serves DER and PEM with ETag, Last-Modified, Cache-Control up to nextUpdate, 304 and byte ranges', async () => {
    const { g1 } = env.generations;
    const res = await get(CRL_URL(g1, '.crl'));
    expect(res.headers.get('content-type')).toBe('application/pkix-crl');
    const body = Buffer.from(await res.arrayBuffer());
    const etag = res.headers.get('etag')!;
    const lastModified = res.headers.get('last-modified')!;
    const maxAge = Number(/max-age=(\d+)/.exec(res.headers.get('cache-control')!)![1]);
    const nextUpdate = new Date(res.headers.get('expires')!);
    expect(maxAge).toBeGreaterThan(0);
    expect(Date.now() + maxAge * 1000).toBeLessThanOrEqual(nextUpdate.getTime() + 1000);
    expect((await get(CRL_URL(g1, '.crl'), { 'if-none-match': etag })).status).toBe(304);
    expect((await get(CRL_URL(g1, '.crl'), { 'if-modified-since': lastModified })).status).toBe(304);
    const range = await get(CRL_URL(g1, '.crl'), { range: 'bytes=10-99' });
    expect(range.status).toBe(206);
    expect(range.headers.get('content-range')).toBe(`bytes 10-99/${body.length}`);
    expect(Buffer.from(await range.arrayBuffer()).equals(body.subarray(10, 100))).toBe(true);
    const tail = await get(CRL_URL(g1, '.crl'), { range: 'bytes=-50' });
    expect(Buffer.from(await tail.arrayBuffer()).equals(body.subarray(body.length - 50))).toBe(true);
    expect((await get(CRL_URL(g1, '.crl'), { range: `bytes=${body.length}-` })).status).toBe(416);
    const pem = await (await get(CRL_URL(g1, '.crl.pem'))).text();
    expect(pem).toBe(openssl(['crl', '-inform', 'DER', '-in', env.file('http.crl', body)]));
  });

  it('lists what it publishes and what it keeps, serves a kept CRL, the CA certificates, and answers unknown names with 404', async () => {
    const { g1 } = env.generations;
    const index = (await (await get('/crl/index.json')).json()) as { crls: Array<{ kind: string; url: string; issuerKeyId: string }> };
    expect(index.crls.filter((c) => c.issuerKeyId === g1).map((c) => c.kind).sort()).toEqual(['DELTA', 'FULL', ...Array(PARTITIONS).fill('PARTITION')]);
    expect(index.crls.some((c) => c.kind === 'ARL')).toBe(true);
    const history = (await (await get(`/crl/${g1}/index.json`)).json()) as { crls: Array<{ kind: string; url: string; crlNumber: string }> };
    const fulls = history.crls.filter((c) => c.kind === 'FULL');
    expect(fulls.length).toBeGreaterThanOrEqual(2);
    const older = fulls[fulls.length - 1]!;
    const kept = env.file('kept.crl', await der(older.url));
    expect(numberOf(kept)).toBe(BigInt(older.crlNumber));
    const ca = await get(`/ca/${g1}.crt`);
    expect(ca.headers.get('content-type')).toBe('application/pkix-cert');
    expect(openssl(['x509', '-inform', 'DER', '-in', env.file('ca.der', Buffer.from(await ca.arrayBuffer())), '-noout', '-subject', '-nameopt', 'utf8,sep_comma_plus_space'])).toContain('內政部憑證管理中心');
    for (const path of [`/crl/${'ab'.repeat(20)}.crl`, `/crl/${g1}/p${PARTITIONS + 100}.crl`, `/crl/${g1}/nonsense.crl`, '/crl/../etc/passwd', `/ca/${'cd'.repeat(20)}.crt`]) {
      const res = await get(path);
      expect([path, res.status]).toEqual([path, 404]);
    }
  });

  it('reports size, entries and age per generation, and healthz passes while the CRLs are on schedule', async () => {
    const metrics = await (await fetch(`${crl.opsUrl}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`crl_entries\\{[^}]*issuer="${env.generations.g2}"[^}]*kind="full"[^}]*\\} 1`));
    expect(metrics).toContain('crl_size_bytes{');
    expect(metrics).toContain('crl_age_seconds{');
    expect(metrics).toContain('crl_generation_seconds_bucket{');
    expect(metrics).toContain('crl_generator_lease_held{service="crl"} 1');
    const health = await fetch(`${crl.opsUrl}/healthz`);
    expect(await health.json()).toEqual({ healthy: true, checks: { 'crl-freshness': 'ok' } });
  });
});

describe('operators: regeneration on demand', () => {
  const state = async () => ({
    requests: Number((await crl.store.pool.query(`SELECT count(*) FROM regeneration_requests`)).rows[0].count),
    audit: Number((await crl.store.pool.query(`SELECT count(*) FROM outbox WHERE topic = 'pki.audit.v1' AND position('crl.regenerate.request'::bytea in payload) > 0`)).rows[0].count),
  });

  it('regenerates a partition for an allowed operator, audited, and answers a retry with the same result', async () => {
    const { g2 } = env.generations;
    const { caFile, certFile, keyFile } = env.signer.identities.audit;
    const before = await state();
    const body = { issuerKeyId: g2, kind: 'partition', partition: 1 };
    const first = await adminRequest(crl.adminUrl, { method: 'POST', path: '/v1/regenerations', body, headers: { 'idempotency-key': 'p1-now' }, identity: { caFile, certFile, keyFile }, caFile });
    expect(first).toMatchObject({ status: 201, body: { state: 'DONE', kind: 'partition', partition: 1 } });
    const again = await adminRequest(crl.adminUrl, { method: 'POST', path: '/v1/regenerations', body, headers: { 'idempotency-key': 'p1-now' }, identity: { caFile, certFile, keyFile }, caFile });
    expect(again).toMatchObject({ status: 200, body: { id: first.body.id, crlNumber: first.body.crlNumber } });
    expect(await state()).toEqual({ requests: before.requests + 1, audit: before.audit + 1 });
  });

  describe('refuses bad input with a clear error and changes nothing', () => {
    const cases: Array<[string, () => Parameters<typeof adminRequest>[1], number, string, RegExp]> = [
      ['an unknown issuer', () => ({ ...asOperator(), body: { issuerKeyId: 'ab'.repeat(20), kind: 'full' } }), 404, 'NOT_FOUND', /no issuing CA generation with key identifier/],
      ['a root instead of an issuing generation', () => ({ ...asOperator(), body: { issuerKeyId: env.rootKeyId, kind: 'full' } }), 404, 'NOT_FOUND', /no issuing CA generation/],
      ['a partition beyond the generation', () => ({ ...asOperator(), body: { issuerKeyId: env.generations.g1, kind: 'partition', partition: PARTITIONS } }), 400, 'INVALID_ARGUMENT', /has partitions 0 to 3, not 4/],
      ['a partition kind without a number', () => ({ ...asOperator(), body: { issuerKeyId: env.generations.g1, kind: 'partition' } }), 400, 'INVALID_ARGUMENT', /needs a partition number/],
      ['an unknown kind', () => ({ ...asOperator(), body: { issuerKeyId: env.generations.g1, kind: 'weekly' } }), 400, 'INVALID_ARGUMENT', /kind/],
      ['no idempotency key', () => ({ ...asOperator(), headers: {}, body: { issuerKeyId: env.generations.g1, kind: 'full' } }), 400, 'INVALID_ARGUMENT', /idempotency-key/],
      ['a reused idempotency key with another request', () => ({ ...asOperator(), headers: { 'idempotency-key': 'p1-now' }, body: { issuerKeyId: env.generations.g2, kind: 'partition', partition: 2 } }), 409, 'CONFLICT', /already used for a different request/],
      ['no client certificate', () => ({ ...asOperator(), identity: undefined }), 401, 'UNAUTHENTICATED', /client certificate .* is required/],
      ['a certificate of a service that is not an operator', () => ({ ...asOperator(), identity: env.signer.identities.ocsp }), 403, 'PERMISSION_DENIED', /spiffe:\/\/pki\.internal\/ocsp is not an allowed operator/],
    ];
    function asOperator(): Parameters<typeof adminRequest>[1] {
      const { caFile, certFile, keyFile } = env.signer.identities.audit;
      return { method: 'POST', path: '/v1/regenerations', body: { issuerKeyId: env.generations.g1, kind: 'full' }, headers: { 'idempotency-key': `bad-${Math.random()}` }, identity: { caFile, certFile, keyFile }, caFile };
    }
    it.each(cases)('%s', async (_name, request, status, code, message) => {
      const before = await state();
      const response = await adminRequest(crl.adminUrl, request());
      expect(response.status).toBe(status);
      expect(response.body.error).toBe(code);
      expect(String(response.body.message)).toMatch(message);
      expect(await state()).toEqual(before);
    });
  });
});
