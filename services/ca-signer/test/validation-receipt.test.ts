import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { createGrpcClient, type ServiceClient } from '@pki/grpc';
import { caSignerV1 } from '@pki/proto';
import { toPem } from '@pki/x509';
import { startCaSignerFixture, type CaSignerFixture } from './service-fixture';

type Client = ServiceClient<typeof caSignerV1.CaSignerService>;

let fixture: CaSignerFixture;
let db: pg.Pool;
let asRa: Client;
let asOcsp: Client;
const openssl = (args: string[]) => execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const file = (name: string, data: string | Uint8Array) => {
  const path = join(fixture.dir, name);
  writeFileSync(path, data);
  return path;
};
const receipt = (extra: Record<string, unknown> = {}) => Buffer.from(JSON.stringify({ format: 'pki-certificate-validation v1', valid: true, verdict: 'VALID', ...extra }));

beforeAll(async () => {
  fixture = await startCaSignerFixture();
  db = new pg.Pool({ connectionString: fixture.databaseUrl, options: '-c search_path=ca_signer' });
  const connect = (who: 'ocsp' | 'ra') =>
    createGrpcClient(caSignerV1.CaSignerService, { address: fixture.signer.grpcAddress, serverIdentity: fixture.identities['ca-signer'].identity, tls: fixture.identities[who], deadlineMs: 30_000 });
  asRa = connect('ra');
  asOcsp = connect('ocsp');
});
afterAll(async () => {
  for (const c of [asRa, asOcsp]) c?.close();
  await db?.end();
  await fixture?.stop();
});

describe('SignValidationReceipt', () => {
  it('signs a receipt an agency verifies with OpenSSL alone, with a key certified by the CA for documents only', async () => {
    const body = receipt({ reference: 'case-1' });
    const signed = await asRa.signValidationReceipt({ receipt: body });
    const cert = new X509Certificate(Buffer.from(signed.signerCertificate));
    const pub = file('receipt-signer.pub', cert.publicKey.export({ type: 'spki', format: 'pem' }) as string);
    expect(openssl(['dgst', '-sha256', '-verify', pub, '-signature', file('receipt.sig', signed.signature), file('receipt.json', body)]).trim()).toBe('Verified OK');
    const signerPem = file('receipt-signer.pem', toPem(signed.signerCertificate, 'CERTIFICATE'));
    expect(openssl(['verify', '-CAfile', join(fixture.caDir, 'root.pem'), '-untrusted', join(fixture.caDir, 'issuing.pem'), signerPem]).trim()).toBe(`${signerPem}: OK`);
    const text = openssl(['x509', '-in', signerPem, '-noout', '-text']);
    expect(text).toMatch(/Subject: .*CN = Validation Receipt Signer DEV-G1/);
    expect(text).toMatch(/X509v3 Extended Key Usage:\s*\n\s*(Document Signing|1\.3\.6\.1\.5\.5\.7\.3\.36)/);
    // Not the audit checkpoint key: the two kinds of evidence cannot pass for each other.
    const { rows } = await db.query(`SELECT purpose FROM delegated_signers WHERE active AND certificate_der = $1`, [Buffer.from(signed.signerCertificate)]);
    expect(rows).toEqual([{ purpose: 'VALIDATION_RECEIPT' }]);
    expect(signed.signatureAlgorithm).toMatch(/^(sha256WithRSAEncryption|ecdsa-with-SHA256)$/);
  });

  it('records each signature as an audited action with the receipt digest', async () => {
    const body = receipt({ reference: 'case-audited' });
    await asRa.signValidationReceipt({ receipt: body });
    const digest = createHash('sha256').update(body).digest('hex');
    const { rows } = await db.query(`SELECT count(*)::int AS n FROM outbox WHERE producer = 'ca-signer' AND topic = 'pki.audit.v1' AND position($1::bytea IN payload) > 0`, [Buffer.from(digest)]);
    expect(rows[0].n).toBe(1);
  });

  it('signs only receipts: other bytes are refused with the reason, and nothing is signed', async () => {
    const cases: Array<[Buffer, RegExp]> = [
      [Buffer.alloc(0), /empty/],
      [Buffer.from('not json'), /not UTF-8 JSON/],
      [Buffer.from([0xff, 0xfe, 0x7b, 0x7d]), /not UTF-8 JSON/],
      [Buffer.from('[1,2]'), /not a JSON object/],
      [Buffer.from(JSON.stringify({ format: 'pki-audit-checkpoint v2' })), /format must be 'pki-certificate-validation v1'/],
      [Buffer.from(JSON.stringify({ valid: true })), /format must be/],
      [receipt({ padding: 'x'.repeat(70_000) }), /at most 65536/],
    ];
    const before = (await db.query(`SELECT count(*)::int AS n FROM outbox WHERE producer = 'ca-signer'`)).rows[0].n;
    for (const [body, message] of cases) {
      await expect(asRa.signValidationReceipt({ receipt: body })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(message) });
    }
    expect((await db.query(`SELECT count(*)::int AS n FROM outbox WHERE producer = 'ca-signer'`)).rows[0].n).toBe(before);
  });

  it('answers only the services its allow-list names', async () => {
    await expect(asOcsp.signValidationReceipt({ receipt: receipt() })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
  });
});
