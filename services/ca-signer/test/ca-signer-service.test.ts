import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { fromBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { createGrpcClient, type ServiceClient } from '@pki/grpc';
import { caSignerV1, eventsV1 } from '@pki/proto';
import { parseCertificate, toPem } from '@pki/x509';
import { createLogger, systemClock } from '@pki/kit';
import { FakeKeyManager } from '../src/adapters/fake';
import type { KeyManager } from '../src/ports/key-manager';
import { CertificateAuthority } from '../src/domain/certificate-authority';
import { startCaSignerFixture, type CaSignerFixture } from './service-fixture';

const subject = [
  { type: 'C', value: 'TW' },
  { type: 'CN', value: '王小明' },
  { type: 'serialNumber', value: '1234567890123456' },
];
const rsaSpki = (bits = 2048) => generateKeyPairSync('rsa', { modulusLength: bits }).publicKey.export({ type: 'spki', format: 'der' });

let fixture: CaSignerFixture;
let db: pg.Pool;
let asRa: ServiceClient<typeof caSignerV1.CaSignerService>;
let asOcsp: ServiceClient<typeof caSignerV1.CaSignerService>;

/**
 * What was already committed when the HSM was asked for each signature, seen from another
 * database connection (so only committed rows): the audit events in the outbox at that moment.
 */
interface SignatureObserved {
  dataSha256: string;
  committed: Array<{ action: string; serial: string; tbsSha256: string }>;
}
const signatures: SignatureObserved[] = [];
const committedAuditEvents = async () => {
  const { rows } = await db.query(`SELECT payload FROM outbox WHERE topic = 'pki.audit.v1' ORDER BY seq`);
  return rows.map((r) => fromBinary(eventsV1.AuditEventSchema, r.payload)).map((e) => ({ action: e.action, serial: e.attributes.serial ?? '', tbsSha256: e.attributes.tbsSha256 ?? '' }));
};
const observeSignatures = (inner: KeyManager): KeyManager => ({
  generateKeyPair: (request) => inner.generateKeyPair(request),
  getPublicKey: (request) => inner.getPublicKey(request),
  healthCheck: () => inner.healthCheck(),
  close: () => inner.close(),
  async sign(request) {
    signatures.push({ dataSha256: createHash('sha256').update(request.data).digest('hex'), committed: db ? await committedAuditEvents() : [] });
    return inner.sign(request);
  },
});

beforeAll(async () => {
  fixture = await startCaSignerFixture({ wrapKeyManager: observeSignatures });
  db = new pg.Pool({ connectionString: fixture.databaseUrl, options: '-c search_path=ca_signer' });
  const connect = (who: 'ra' | 'ocsp') =>
    createGrpcClient(caSignerV1.CaSignerService, { address: fixture.signer.grpcAddress, serverIdentity: fixture.identities['ca-signer'].identity, tls: fixture.identities[who], deadlineMs: 20_000 });
  asRa = connect('ra');
  asOcsp = connect('ocsp');
});
afterAll(async () => {
  asRa?.close();
  asOcsp?.close();
  await db?.end();
  await fixture?.stop();
});

const issuanceCount = async () => Number((await db.query('SELECT count(*) FROM issuances')).rows[0].count);

describe('ca-signer IssueCertificate over gRPC, signing in SoftHSM', () => {
  it('issues a citizen certificate that OpenSSL verifies against the CA chain', async () => {
    const response = await asRa.issueCertificate({ idempotencyKey: 'app-1/SIGN', profile: 'citizen-signature', publicKeySpki: rsaSpki(), subject });
    const leaf = join(fixture.dir, 'leaf.pem');
    writeFileSync(leaf, toPem(response.certificate, 'CERTIFICATE'));
    const out = execFileSync('openssl', ['verify', '-x509_strict', '-CAfile', join(fixture.caDir, 'root.pem'), '-untrusted', join(fixture.caDir, 'issuing.pem'), leaf], { encoding: 'utf8' });
    expect(out.trim()).toBe(`${leaf}: OK`);
    const text = execFileSync('openssl', ['x509', '-in', leaf, '-noout', '-text', '-nameopt', 'utf8,sep_comma_plus_space'], { encoding: 'utf8' });
    expect(text).toContain('Subject: C=TW, CN=王小明, serialNumber=1234567890123456');
    expect(text).toContain('Issuer: C=TW, O=行政院, OU=內政部憑證管理中心');
    expect(text).toContain(`Serial Number:`);
    expect(response.serialHex).toMatch(/^[0-9a-f]{32}$/);
    const issuers = await asRa.getIssuers({});
    expect(response.issuerKeyId).toBe(issuers.issuers.find((i) => i.active)?.keyId);
  });

  it('returns the same certificate for a retried idempotency key, and refuses the key with a different request', async () => {
    const spki = rsaSpki();
    const first = await asRa.issueCertificate({ idempotencyKey: 'app-2/SIGN', profile: 'citizen-signature', publicKeySpki: spki, subject });
    const before = await issuanceCount();
    const retry = await asRa.issueCertificate({ idempotencyKey: 'app-2/SIGN', profile: 'citizen-signature', publicKeySpki: spki, subject });
    expect(Buffer.from(retry.certificate).equals(Buffer.from(first.certificate))).toBe(true);
    await expect(asRa.issueCertificate({ idempotencyKey: 'app-2/SIGN', profile: 'citizen-encryption', publicKeySpki: spki, subject })).rejects.toMatchObject({
      code: 'CONFLICT',
      message: expect.stringContaining("idempotency key 'app-2/SIGN' was already used with a different request"),
    });
    expect(await issuanceCount()).toBe(before);
  });

  it('commits the audit intent naming the exact bytes before the HSM signs them, and the result after, without personal data', async () => {
    const response = await asRa.issueCertificate({ idempotencyKey: 'app-3/SIGN', profile: 'citizen-signature', publicKeySpki: rsaSpki(), subject });
    const tbsSha256 = createHash('sha256').update(parseCertificate(response.certificate).tbsDer).digest('hex');

    // The HSM was asked once for this certificate's bytes, and at that moment the intent for this
    // serial, naming the hash of those bytes, was already committed; the result was not yet.
    const asked = signatures.filter((s) => s.dataSha256 === tbsSha256);
    expect(asked).toHaveLength(1);
    const mineAtSigning = asked[0]!.committed.filter((e) => e.serial === response.serialHex);
    expect(mineAtSigning).toEqual([{ action: 'certificate.issue.intent', serial: response.serialHex, tbsSha256 }]);

    const { rows } = await db.query(`SELECT seq, payload FROM outbox WHERE topic = 'pki.audit.v1' ORDER BY seq`);
    const events = rows.map((r) => ({ seq: Number(r.seq), event: fromBinary(eventsV1.AuditEventSchema, r.payload) }));
    const mine = events.filter((e) => e.event.attributes.serial === response.serialHex);
    expect(mine.map((e) => e.event.action)).toEqual(['certificate.issue.intent', 'certificate.issue.result']);
    expect(mine[0]!.seq).toBeLessThan(mine[1]!.seq);
    expect(mine[0]!.event.outcome).toBe(eventsV1.AuditOutcome.INTENT);
    expect(mine[0]!.event.attributes.tbsSha256).toBe(tbsSha256);
    expect(mine[1]!.event.attributes.certificateSha256).toBe(createHash('sha256').update(response.certificate).digest('hex'));
    expect(mine[0]!.event.actor).toMatchObject({ type: eventsV1.AuditActorType.SERVICE, id: 'spiffe://pki.internal/ra' });
    expect(mine.map((e) => e.event.objects.map((o) => `${o.type}:${o.id}`))).toEqual([
      [`certificate:${response.serialHex}`, `issuer:${response.issuerKeyId}`],
      [`certificate:${response.serialHex}`, `issuer:${response.issuerKeyId}`],
    ]);
    expect(new Set(mine.map((e) => e.event.eventId)).size).toBe(2);
    const all = JSON.stringify(mine.map((e) => e.event.attributes));
    expect(all).not.toContain('王小明');
    expect(all).not.toContain('1234567890123456');
  });

  describe('refuses bad requests with a clear error and signs nothing', () => {
    type RequestChange = Omit<Partial<caSignerV1.IssueCertificateRequest>, "$typeName" | "$unknown" | "subject"> & { subject?: Array<{ type: string; value: string }> };
    const cases: Array<[string, () => RequestChange, string, RegExp]> = [
      ['an RSA-1024 key', () => ({ publicKeySpki: rsaSpki(1024) }), 'INVALID_ARGUMENT', /RSA-1024.*RSA-2048|RSA-2048.*RSA-1024/],
      ['an EC key for an RSA profile', () => ({ publicKeySpki: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' }) }), 'INVALID_ARGUMENT', /P-256|EC/],
      ['a malformed public key', () => ({ publicKeySpki: Buffer.from('not a key') }), 'INVALID_ARGUMENT', /public key/],
      ['an empty public key', () => ({ publicKeySpki: new Uint8Array() }), 'INVALID_ARGUMENT', /public_key_spki is empty/],
      ['an unknown profile', () => ({ profile: 'citizen-superuser' }), 'INVALID_ARGUMENT', /unknown profile 'citizen-superuser'/],
      ['an unknown issuer', () => ({ issuerKeyId: 'ab'.repeat(20) }), 'NOT_FOUND', /no issuing CA generation with key identifier/],
      ['a validity beyond the profile', () => ({ notAfter: timestampFromDate(new Date(Math.floor(Date.now() / 1000 + 6 * 365 * 86_400) * 1000)) }), 'INVALID_ARGUMENT', /validity longer than the 5 years/],
      ['a notAfter that is not a whole second', () => ({ notAfter: timestampFromDate(new Date(Date.now() + 86_400_000 + 1)) }), 'INVALID_ARGUMENT', /notAfter must be a whole second/],
      ['a subject that breaks the profile', () => ({ subject: [{ type: 'C', value: 'TW' }, { type: 'CN', value: 'x' }, { type: 'serialNumber', value: '12' }] }), 'INVALID_ARGUMENT', /serialNumber must be 16 digits/],
      ['an empty idempotency key', () => ({ idempotencyKey: '' }), 'INVALID_ARGUMENT', /idempotency key/],
    ];
    it.each(cases)('%s', async (_name, change, code, message) => {
      const before = await issuanceCount();
      const request = { idempotencyKey: `bad-${Math.random()}`, profile: 'citizen-signature', publicKeySpki: rsaSpki(), subject, ...change() };
      const error = await asRa.issueCertificate(request).then(() => undefined, (e: unknown) => e as Error & { code: string });
      expect(error?.message).toMatch(message);
      expect(error?.code).toBe(code);
      expect(await issuanceCount()).toBe(before);
    });

    it('a caller that is not on the allow-list (PERMISSION_DENIED)', async () => {
      const before = await issuanceCount();
      await expect(asOcsp.issueCertificate({ idempotencyKey: 'x', profile: 'citizen-signature', publicKeySpki: rsaSpki(), subject })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
      expect(await issuanceCount()).toBe(before);
      // GetIssuers is open to every service
      await expect(asOcsp.getIssuers({})).resolves.toMatchObject({ issuers: [expect.objectContaining({ active: true })] });
    });
  });

  describe('IssueCertificates: the pair of a card in one call', () => {
    const pair = (card: string, sign = rsaSpki(), keyx = rsaSpki()) => [
      { idempotencyKey: `${card}/SIGN`, profile: 'citizen-signature', publicKeySpki: sign, subject, nationalIdLastFour: '6789' },
      { idempotencyKey: `${card}/KEYX`, profile: 'citizen-encryption', publicKeySpki: keyx, subject, nationalIdLastFour: '6789' },
    ];

    it('issues each certificate as IssueCertificate would, in request order, each with its own audit intent and result; a retry answers the same certificates', async () => {
      const requests = pair('card-pair-1');
      const { certificates } = await asRa.issueCertificates({ certificates: requests });
      expect(certificates).toHaveLength(2);
      for (const [i, response] of certificates.entries()) {
        const leaf = join(fixture.dir, `pair-${i}.pem`);
        writeFileSync(leaf, toPem(response.certificate, 'CERTIFICATE'));
        expect(execFileSync('openssl', ['verify', '-x509_strict', '-CAfile', join(fixture.caDir, 'root.pem'), '-untrusted', join(fixture.caDir, 'issuing.pem'), leaf], { encoding: 'utf8' }).trim()).toBe(`${leaf}: OK`);
        const parsed = parseCertificate(response.certificate);
        expect(parsed.subjectPublicKeyInfo.equals(Buffer.from(requests[i]!.publicKeySpki))).toBe(true);
        expect(parsed.serialNumber.toString('hex')).toBe(response.serialHex);
      }
      // Signature then encryption: the key usages of each profile, in the order asked.
      const usages = certificates.map((c, i) => execFileSync('openssl', ['x509', '-in', join(fixture.dir, `pair-${i}.pem`), '-noout', '-ext', 'keyUsage'], { encoding: 'utf8' }));
      expect(usages[0]).toContain('Digital Signature');
      expect(usages[1]).toContain('Key Encipherment');
      const events = (await committedAuditEvents()).filter((e) => certificates.some((c) => c.serialHex === e.serial));
      expect(events.map((e) => e.action).sort()).toEqual(['certificate.issue.intent', 'certificate.issue.intent', 'certificate.issue.result', 'certificate.issue.result']);

      const before = await issuanceCount();
      const again = await asRa.issueCertificates({ certificates: requests });
      expect(again.certificates.map((c) => c.serialHex)).toEqual(certificates.map((c) => c.serialHex));
      expect(await issuanceCount()).toBe(before);
    });

    it('fails the call when one certificate fails, keeps the other, and a corrected retry with the same keys completes the pair', async () => {
      const [sign, keyx] = pair('card-pair-2');
      const before = await issuanceCount();
      await expect(asRa.issueCertificates({ certificates: [sign!, { ...keyx!, publicKeySpki: rsaSpki(1024) }] })).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
        message: expect.stringMatching(/RSA-1024/),
      });
      // The signature certificate was issued (its key is its own), the encryption one refused before anything was reserved.
      expect(await issuanceCount()).toBe(before + 1);
      const { certificates } = await asRa.issueCertificates({ certificates: [sign!, keyx!] });
      expect(certificates).toHaveLength(2);
      expect(await issuanceCount()).toBe(before + 2);
    });

    const badCalls: Array<[string, () => Parameters<typeof asRa.issueCertificates>[0], RegExp]> = [
      ['no certificates', () => ({ certificates: [] }), /no certificates requested/],
      ['more than 16', () => { const one = pair('card-many')[0]!; return { certificates: Array.from({ length: 17 }, (_, i) => ({ ...one, idempotencyKey: `card-many/${i}` })) }; }, /17 certificates in one call; at most 16/],
      ['one idempotency key twice', () => ({ certificates: [pair('card-twice')[0]!, { ...pair('card-twice')[1]!, idempotencyKey: 'card-twice/SIGN' }] }), /certificate 1: idempotency key 'card-twice\/SIGN' is used twice/],
      ['an empty public key in the second', () => ({ certificates: [pair('card-empty')[0]!, { ...pair('card-empty')[1]!, publicKeySpki: new Uint8Array() }] }), /certificate 1: public_key_spki is empty/],
    ];
    it.each(badCalls)('refuses %s (INVALID_ARGUMENT), issuing nothing', async (_name, call, message) => {
      const before = await issuanceCount();
      await expect(asRa.issueCertificates(call())).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(message) });
      expect(await issuanceCount()).toBe(before);
    });

    it('refuses a caller that is not on its allow-list (PERMISSION_DENIED)', async () => {
      const before = await issuanceCount();
      await expect(asOcsp.issueCertificates({ certificates: pair('card-ocsp') })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
      expect(await issuanceCount()).toBe(before);
    });
  });

  it('refuses to sign what its own pre-issuance lint rejects, and audits that refusal', async () => {
    // A broken serial source (2 octets: too little entropy) passes every request check, so the
    // lint over the built TBS is the line that refuses; the HSM is never asked.
    const fake = new FakeKeyManager();
    const authority = new CertificateAuthority({
      pool: db, registry: fixture.signer.domain.registry, keyManager: fake, clock: systemClock,
      logger: createLogger({ service: 'test', level: 'silent' }), producer: 'ca-signer',
      publication: { ...fixture.config.publication }, serials: () => Buffer.from([0x12, 0x34]),
    });
    const before = await issuanceCount();
    await expect(authority.issue({ caller: 'spiffe://pki.internal/ra', idempotencyKey: 'lint-1', profile: 'citizen-signature', publicKeySpki: rsaSpki(), subject })).rejects.toMatchObject({
      code: 'INTERNAL', message: expect.stringContaining('e_serial_number_low_entropy'),
    });
    expect(await issuanceCount()).toBe(before);
    expect(fake.signatures).toHaveLength(0);
    const { rows } = await db.query(`SELECT payload FROM outbox WHERE topic = 'pki.audit.v1' ORDER BY seq DESC LIMIT 1`);
    const event = fromBinary(eventsV1.AuditEventSchema, rows[0].payload);
    expect(event).toMatchObject({ action: 'certificate.issue.lint', outcome: eventsV1.AuditOutcome.FAILURE });
    expect(event.attributes.lintErrors).toContain('e_serial_number_low_entropy');
  });

  it('puts the last four ID digits in subjectDirectoryAttributes and the e-mail in subjectAltName when asked, and counts them in the request', async () => {
    const spki = rsaSpki();
    const response = await asRa.issueCertificate({ idempotencyKey: 'app-sda/SIGN', profile: 'citizen-signature', publicKeySpki: spki, subject, nationalIdLastFour: '6789', email: 'citizen@example.tw' });
    const leaf = join(fixture.dir, 'sda.pem');
    writeFileSync(leaf, toPem(response.certificate, 'CERTIFICATE'));
    const der = execFileSync('openssl', ['x509', '-in', leaf, '-outform', 'DER']);
    // 2.5.29.9 holds a SEQUENCE OF Attribute: 2.16.886.1.100.2.51 with the PrintableString "6789".
    const parsed = execFileSync('openssl', ['asn1parse', '-inform', 'DER', '-i'], { input: der, encoding: 'utf8' });
    const at = /(\d+):d=\d+\s+hl=\d+ l=\s*\d+ prim:\s+OCTET STRING/.exec(parsed.slice(parsed.indexOf('X509v3 Subject Directory Attributes')))?.[1];
    const sda = execFileSync('openssl', ['asn1parse', '-inform', 'DER', '-i', '-strparse', at!], { input: der, encoding: 'utf8' });
    expect(sda).toMatch(/OBJECT\s*:2\.16\.886\.1\.100\.2\.51/);
    expect(sda).toMatch(/PRINTABLESTRING\s*:6789/);
    expect(execFileSync('openssl', ['x509', '-in', leaf, '-noout', '-ext', 'subjectAltName'], { encoding: 'utf8' })).toContain('email:citizen@example.tw');
    // The same key with other subject facts is another request.
    await expect(asRa.issueCertificate({ idempotencyKey: 'app-sda/SIGN', profile: 'citizen-signature', publicKeySpki: spki, subject, nationalIdLastFour: '0000', email: 'citizen@example.tw' })).rejects.toMatchObject({ code: 'CONFLICT' });
    await expect(asRa.issueCertificate({ idempotencyKey: 'app-sda/KEYX', profile: 'citizen-signature', publicKeySpki: spki, subject, nationalIdLastFour: '67a9' })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT', message: expect.stringContaining('nationalIdLastFour must be 4 digits'),
    });
  });

  it('lists a caller its own issuances page by page, oldest first, and nobody else its', async () => {
    const mine: string[] = [];
    let token = '';
    do {
      const page = await asRa.listIssuances({ pageToken: token, pageSize: 2 });
      expect(page.issuances.length).toBeLessThanOrEqual(2);
      mine.push(...page.issuances.map((i) => i.serialHex));
      for (const i of page.issuances) {
        expect(i.state).toBe(caSignerV1.IssuanceState.ISSUED);
        expect(createHash('sha256').update(i.certificate).digest('hex')).toHaveLength(64);
        expect(i.idempotencyKey).not.toBe('');
      }
      token = page.nextPageToken;
    } while (token !== '');
    const { rows } = await db.query(`SELECT serial_hex FROM issuances WHERE caller = 'spiffe://pki.internal/ra' ORDER BY created_at, serial_hex`);
    expect(mine).toEqual(rows.map((r) => r.serial_hex));
    expect(mine.length).toBeGreaterThan(2);
    // ocsp may not list (not on the allow-list); a forged token is refused.
    await expect(asOcsp.listIssuances({})).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
    await expect(asRa.listIssuances({ pageToken: 'bm90IGEgdG9rZW4' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('page_token') });
    await expect(asRa.listIssuances({ pageSize: 5000 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('page_size') });
  });

  it('reports ready through its ops endpoint, with the HSM and database checked', async () => {
    const res = await fetch(`${fixture.signer.opsUrl}/readyz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ ready: true, checks: { database: 'ok', hsm: 'ok' } });
    const metrics = await (await fetch(`${fixture.signer.opsUrl}/metrics`)).text();
    expect(metrics).toMatch(/grpc_server_handled_total\{[^}]*method="IssueCertificate"[^}]*code="OK"/);
  });
});
