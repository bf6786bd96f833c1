import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { createGrpcClient, type ServiceClient } from '@pki/grpc';
import { caSignerV1 } from '@pki/proto';
import { readOcspResponse } from '@pki/x509';
import { expectNoPkilintErrors } from '@pki/testing';
import { startCaSignerFixture, type CaSignerFixture } from './service-fixture';

// SignLiveOcspResponses: the signer side of live OCSP answers (nonce echo, several CertIDs,
// extended revoke). The responder's tests check these answers with OpenSSL end to end; here, the
// signer's own rules and its audit.
const { CertificateStatusKind, CertIdHashAlgorithm, RevocationReason } = caSignerV1;
type Client = ServiceClient<typeof caSignerV1.CaSignerService>;

let fixture: CaSignerFixture;
let db: pg.Pool;
let asOcsp: Client;
let asCrl: Client;
let issuerKeyId: string;
const second = (offsetMs = 0) => new Date(Math.floor((Date.now() + offsetMs) / 1000) * 1000);
const ts = (offsetMs = 0) => timestampFromDate(second(offsetMs));
const item = (serialHex: string, status = CertificateStatusKind.GOOD) => ({
  issuerKeyId,
  serialHex,
  status,
  certIdHash: CertIdHashAlgorithm.SHA1,
  thisUpdate: ts(),
  nextUpdate: ts(3_600_000),
  ...(status === CertificateStatusKind.REVOKED ? { revocationTime: timestampFromDate(new Date(0)), revocationReason: RevocationReason.CERTIFICATE_HOLD } : {}),
});
const audits = async (action: string) => Number((await db.query(`SELECT count(*) FROM outbox WHERE topic = 'pki.audit.v1' AND position(convert_to($1, 'UTF8') in payload) > 0`, [action])).rows[0].count);

beforeAll(async () => {
  fixture = await startCaSignerFixture();
  db = new pg.Pool({ connectionString: fixture.databaseUrl, options: '-c search_path=ca_signer' });
  const connect = (who: 'ocsp' | 'crl') => createGrpcClient(caSignerV1.CaSignerService, { address: fixture.signer.grpcAddress, serverIdentity: fixture.identities['ca-signer'].identity, tls: fixture.identities[who], deadlineMs: 30_000 });
  asOcsp = connect('ocsp');
  asCrl = connect('crl');
  const issuers = await asOcsp.getIssuers({});
  const active = issuers.issuers.find((i) => i.active)!;
  issuerKeyId = active.keyId;
  // GetIssuers names the generation's responder certificate (the responder bounds nextUpdate by it).
  expect(active.ocspResponderCertificate.length).toBeGreaterThan(0);
});
afterAll(async () => {
  asOcsp?.close();
  asCrl?.close();
  await db?.end();
  await fixture?.stop();
});

it('signs one answer per request: nonce echoed byte for byte, several SingleResponses, extended revoke; one audit event per batch', async () => {
  const nonce = Buffer.concat([Buffer.from([0x04, 0x20]), randomBytes(32)]);
  const before = await audits('ocsp.sign-live.result');
  const { responses } = await asOcsp.signLiveOcspResponses({
    requests: [
      { responses: [item('0a0b')], nonce },
      { responses: [item('0c'), item('0d', CertificateStatusKind.REVOKED)] },
      { responses: [item('7f00ff', CertificateStatusKind.REVOKED)], extendedRevoke: true },
    ],
  });
  expect(responses).toHaveLength(3);
  const [first, second, third] = responses.map((r) => readOcspResponse(r));
  expect(first!.nonce?.equals(nonce)).toBe(true);
  expect(second!.singles.map((s) => [s.serialHex, s.status.kind])).toEqual([['0c', 'good'], ['0d', 'revoked']]);
  expect(second!.nonce).toBeUndefined();
  expect(third!.extendedRevoke).toBe(true);
  expect(third!.singles[0]!.status).toEqual({ kind: 'revoked', revocationTime: new Date(0), reason: 6 });
  for (const r of responses) await expectNoPkilintErrors('ocsp-response', r);
  expect(await audits('ocsp.sign-live.result')).toBe(before + 1);
});

it('refuses what it must not sign, and signs none of the batch', async () => {
  const before = await audits('ocsp.sign-live.intent');
  const refuse = async (request: Parameters<Client['signLiveOcspResponses']>[0], message: RegExp) => {
    const error = await asOcsp.signLiveOcspResponses(request).then(() => undefined, (e: Error & { code: string }) => e);
    expect(error?.code).toBe('INVALID_ARGUMENT');
    expect(error?.message).toMatch(message);
  };
  await refuse({ requests: [] }, /the batch is empty/);
  await refuse({ requests: [{ responses: [] }] }, /request 0: no responses/);
  await refuse({ requests: [{ responses: Array.from({ length: 21 }, () => item('01')) }] }, /21 responses; at most 20/);
  await refuse({ requests: [{ responses: [item('01')], nonce: randomBytes(35) }] }, /nonce of 35 octets; at most 34/);
  await refuse({ requests: [{ responses: [item('01'), { ...item('02'), issuerKeyId: 'ab'.repeat(20) }] }] }, /same issuer/);
  await refuse({ requests: [{ responses: [{ ...item('01'), nextUpdate: ts(400 * 86_400_000) }] }] }, /after the responder certificate expires/);
  expect(await audits('ocsp.sign-live.intent')).toBe(before);
  // Only ocsp may ask for live answers.
  await expect(asCrl.signLiveOcspResponses({ requests: [{ responses: [item('01')] }] })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
});
