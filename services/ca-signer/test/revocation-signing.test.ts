import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { createGrpcClient, type ServiceClient } from '@pki/grpc';
import { caSignerV1 } from '@pki/proto';
import { formatPkilintFindings, lintWithPkilint, pkilintErrors } from '@pki/testing';
import { startCaSignerFixture, type CaSignerFixture } from './service-fixture';

const { RevocationReason, CertificateStatusKind, CertIdHashAlgorithm } = caSignerV1;
type Client = ServiceClient<typeof caSignerV1.CaSignerService>;

let fixture: CaSignerFixture;
let db: pg.Pool;
let asCrl: Client;
let asOcsp: Client;
let asAudit: Client;
let asRa: Client;
let issuerKeyId: string;

const second = (offsetMs = 0) => new Date(Math.floor((Date.now() + offsetMs) / 1000) * 1000);
const ts = (offsetMs = 0) => timestampFromDate(second(offsetMs));
const openssl = (args: string[]) => execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const file = (name: string, data: string | Uint8Array) => {
  const path = join(fixture.dir, name);
  writeFileSync(path, data);
  return path;
};
/** Independent check: pkilint reports nothing of ERROR severity or worse. Returns the rest to inspect. */
async function pkilintClean(kind: 'crl' | 'ocsp-response', der: Uint8Array) {
  const findings = await lintWithPkilint(kind, der);
  expect(formatPkilintFindings(pkilintErrors(findings))).toBe('');
  return findings;
}
const auditCount = async () => Number((await db.query(`SELECT count(*) FROM outbox WHERE topic = 'pki.audit.v1'`)).rows[0].count);

beforeAll(async () => {
  fixture = await startCaSignerFixture();
  db = new pg.Pool({ connectionString: fixture.databaseUrl, options: '-c search_path=ca_signer' });
  const connect = (who: 'crl' | 'ocsp' | 'audit' | 'ra') =>
    createGrpcClient(caSignerV1.CaSignerService, { address: fixture.signer.grpcAddress, serverIdentity: fixture.identities['ca-signer'].identity, tls: fixture.identities[who], deadlineMs: 30_000 });
  asCrl = connect('crl');
  asOcsp = connect('ocsp');
  asAudit = connect('audit');
  asRa = connect('ra');
  issuerKeyId = (await asCrl.getIssuers({})).issuers.find((i) => i.active)!.keyId;
});
afterAll(async () => {
  for (const c of [asCrl, asOcsp, asAudit, asRa]) c?.close();
  await db?.end();
  await fixture?.stop();
});

describe('SignCrl', () => {
  let crlNumber = 2026112300;
  const next = () => String(++crlNumber);
  const entries = [
    { serialHex: '7f'.padEnd(32, '1'), revocationDate: ts(-3_600_000), reason: RevocationReason.KEY_COMPROMISE },
    { serialHex: '40'.padEnd(32, '2'), revocationDate: ts(-7_200_000), reason: RevocationReason.CERTIFICATE_HOLD },
    { serialHex: '12'.padEnd(32, '3'), revocationDate: ts(-60_000), reason: RevocationReason.UNSPECIFIED },
  ];

  it('signs a full CRL that OpenSSL verifies against the issuing CA, with the entries, number and AKI', async () => {
    const number = next();
    const { crl } = await asCrl.signCrl({ idempotencyKey: `full-${number}`, issuerKeyId, crlNumber: number, thisUpdate: ts(), nextUpdate: ts(86_400_000), entries });
    const crlFile = file('full.crl', crl);
    const out = execFileSync('openssl', ['crl', '-inform', 'DER', '-in', crlFile, '-CAfile', join(fixture.caDir, 'chain.pem'), '-noout', '-text'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(out).toContain('X509v3 CRL Number: \n                ' + number);
    expect(out).toMatch(new RegExp(`Authority Key Identifier:\\s*\\n\\s*(keyid:)?${issuerKeyId.toUpperCase().match(/../g)!.join(':')}`));
    expect(out).toContain('Key Compromise');
    expect(out).toContain('Certificate Hold');
    expect(out.match(/Serial Number:/g)).toHaveLength(3);
    // -CAfile makes openssl check the signature; it prints "verify OK" on stderr
    const verify = execFileSync('sh', ['-c', `openssl crl -inform DER -in ${crlFile} -CAfile ${join(fixture.caDir, 'chain.pem')} -noout 2>&1`], { encoding: 'utf8' });
    expect(verify.trim()).toBe('verify OK');
    const findings = await pkilintClean('crl', crl);
    expect(findings.map((f) => `${f.severity} ${f.code}`)).toEqual([]);
  });

  it('signs a delta CRL (critical deltaCRLIndicator) and a partition (critical issuingDistributionPoint)', async () => {
    const base = String(crlNumber);
    const delta = next();
    const { crl } = await asCrl.signCrl({
      idempotencyKey: `delta-${delta}`, issuerKeyId, crlNumber: delta, deltaBaseCrlNumber: base, thisUpdate: ts(), nextUpdate: ts(3_600_000),
      entries: [{ serialHex: entries[1]!.serialHex, revocationDate: ts(-7_200_000), reason: RevocationReason.REMOVE_FROM_CRL }],
    });
    const text = openssl(['crl', '-inform', 'DER', '-in', file('delta.crl', crl), '-noout', '-text']);
    expect(text).toMatch(/X509v3 Delta CRL Indicator: critical\s+\d+/);
    expect(text).toContain('Remove From CRL');

    const { crl: part } = await asCrl.signCrl({ idempotencyKey: 'part-7', issuerKeyId, partition: 'p7', crlNumber: next(), thisUpdate: ts(), nextUpdate: ts(86_400_000), entries: [] });
    const partText = openssl(['crl', '-inform', 'DER', '-in', file('p7.crl', part), '-noout', '-text']);
    expect(partText).toMatch(/X509v3 Issuing Distribution Point: critical\s+Full Name:\s+URI:http:\/\/crl\.pki\.test\/crl\/[0-9a-f]+\/p7\.crl\s+Only User Certificates/);
    expect(partText).toContain('No Revoked Certificates');
    await pkilintClean('crl', crl);
    await pkilintClean('crl', part);
  });

  it('returns the same CRL for a retried idempotency key and refuses the key with another request', async () => {
    const number = next();
    const request = { idempotencyKey: `retry-${number}`, issuerKeyId, crlNumber: number, thisUpdate: ts(), nextUpdate: ts(86_400_000), entries };
    const first = await asCrl.signCrl(request);
    const again = await asCrl.signCrl(request);
    expect(Buffer.from(again.crl).equals(Buffer.from(first.crl))).toBe(true);
    await expect(asCrl.signCrl({ ...request, entries: entries.slice(1) })).rejects.toMatchObject({ code: 'CONFLICT' });
  });

  describe('refuses, with a clear error, and signs nothing', () => {
    const cases: Array<[string, () => Record<string, unknown>, string, RegExp]> = [
      ['a CRL number that does not increase', () => ({ crlNumber: '2026112300' }), 'FAILED_PRECONDITION', /does not exceed the last one signed/],
      ['removeFromCRL on a full CRL', () => ({ entries: [{ serialHex: '0a0b', revocationDate: ts(-1000), reason: RevocationReason.REMOVE_FROM_CRL }] }), 'INVALID_ARGUMENT', /only allowed on a delta CRL/],
      ['a negative serial', () => ({ entries: [{ serialHex: '80aa', revocationDate: ts(-1000), reason: 0 }] }), 'INVALID_ARGUMENT', /serial 80aa is negative/],
      ['a serial that is not hex', () => ({ entries: [{ serialHex: 'xyz', revocationDate: ts(-1000), reason: 0 }] }), 'INVALID_ARGUMENT', /must be lower-case hex/],
      ['a serial listed twice', () => ({ entries: [entries[0], entries[0]] }), 'INVALID_ARGUMENT', /listed twice/],
      ['a thisUpdate far from now', () => ({ thisUpdate: ts(-86_400_000) }), 'INVALID_ARGUMENT', /more than 10 minutes from the signer's clock/],
      ['a nextUpdate before thisUpdate', () => ({ nextUpdate: ts(-60_000) }), 'INVALID_ARGUMENT', /next_update must be after this_update/],
      ['an unknown issuer', () => ({ issuerKeyId: 'ab'.repeat(20) }), 'NOT_FOUND', /no issuing CA generation/],
      ['a malformed CRL number', () => ({ crlNumber: '12a' }), 'INVALID_ARGUMENT', /crl_number must be a decimal number/],
      ['a bad partition name', () => ({ partition: '../etc' }), 'INVALID_ARGUMENT', /partition/],
    ];
    it.each(cases)('%s', async (_name, change, code, message) => {
      const before = await auditCount();
      const request = { idempotencyKey: `bad-${Math.random()}`, issuerKeyId, crlNumber: next(), thisUpdate: ts(), nextUpdate: ts(86_400_000), entries, ...change() };
      const error = await asCrl.signCrl(request as never).then(() => undefined, (e: Error & { code: string }) => e);
      expect(error?.message).toMatch(message);
      expect(error?.code).toBe(code);
      expect(await auditCount()).toBe(before);
    });

    it('a caller other than crl', async () => {
      await expect(asRa.signCrl({ idempotencyKey: 'x', issuerKeyId, crlNumber: next(), thisUpdate: ts(), nextUpdate: ts(60_000) })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    });
  });
});

describe('SignOcspResponses', () => {
  it('signs pre-produced responses that OpenSSL verifies, for SHA-1 and SHA-256 CertIDs and every status', async () => {
    const serials = { good: '5a'.padEnd(32, '0'), revoked: '5b'.padEnd(32, '0'), unknown: '5c'.padEnd(32, '0') };
    const item = (serialHex: string, status: caSignerV1.CertificateStatusKind, certIdHash: caSignerV1.CertIdHashAlgorithm) => ({
      issuerKeyId, serialHex, status, certIdHash, thisUpdate: ts(), nextUpdate: ts(86_400_000),
      ...(status === CertificateStatusKind.REVOKED ? { revocationTime: ts(-3_600_000), revocationReason: RevocationReason.KEY_COMPROMISE } : {}),
    });
    const { responses } = await asOcsp.signOcspResponses({
      responses: [
        item(serials.good, CertificateStatusKind.GOOD, CertIdHashAlgorithm.SHA1),
        item(serials.revoked, CertificateStatusKind.REVOKED, CertIdHashAlgorithm.SHA1),
        item(serials.unknown, CertificateStatusKind.UNKNOWN, CertIdHashAlgorithm.SHA1),
        item(serials.good, CertificateStatusKind.GOOD, CertIdHashAlgorithm.SHA256),
      ],
    });
    expect(responses).toHaveLength(4);
    const chain = join(fixture.caDir, 'chain.pem');
    const issuing = join(fixture.caDir, 'issuing.pem');
    // the CertID digest option must precede -issuer/-serial, which build the CertID to look up
    const check = (index: number, serialHex: string, digest: string) =>
      execFileSync('sh', ['-c', `openssl ocsp -respin ${file(`r${index}.der`, responses[index]!)} ${digest} -issuer ${issuing} -serial 0x${serialHex} -CAfile ${chain} -no_nonce 2>&1`], { encoding: 'utf8' });
    expect(check(0, serials.good, '')).toMatch(/Response verify OK[\s\S]*0x5a0+: good/);
    expect(check(1, serials.revoked, '')).toMatch(/Response verify OK[\s\S]*0x5b0+: revoked[\s\S]*Reason: keyCompromise/);
    expect(check(2, serials.unknown, '')).toMatch(/Response verify OK[\s\S]*0x5c0+: unknown/);
    expect(check(3, serials.good, '-sha256')).toMatch(/Response verify OK[\s\S]*0x5a0+: good/);
    // the responder certificate travels in the response and is a delegated responder
    const text = openssl(['ocsp', '-respin', file('r0.der', responses[0]!), '-resp_text', '-noverify']);
    expect(text).toContain('OCSP Signing');
    expect(text).toContain('OCSP No Check');
    for (const response of responses) await pkilintClean('ocsp-response', response);
  });

  it('refuses a batch with one bad item and signs none of it', async () => {
    const before = await auditCount();
    const good = { issuerKeyId, serialHex: '0a', status: CertificateStatusKind.GOOD, certIdHash: CertIdHashAlgorithm.SHA1, thisUpdate: ts(), nextUpdate: ts(60_000) };
    await expect(asOcsp.signOcspResponses({ responses: [good, { ...good, certIdHash: CertIdHashAlgorithm.UNSPECIFIED }] })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT', message: expect.stringContaining('response 1: cert_id_hash must be SHA1 or SHA256'),
    });
    await expect(asOcsp.signOcspResponses({ responses: [{ ...good, status: CertificateStatusKind.REVOKED }] })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT', message: expect.stringContaining('revocation_time is required'),
    });
    await expect(asOcsp.signOcspResponses({ responses: Array.from({ length: 1001 }, () => good) })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('at most 1000') });
    await expect(asOcsp.signOcspResponses({ responses: [] })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('the batch is empty') });
    await expect(asRa.signOcspResponses({ responses: [good] })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    expect(await auditCount()).toBe(before);
  });
});
