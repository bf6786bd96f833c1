import { execFileSync } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { createGrpcClient } from '@pki/grpc';
import { FixedClock } from '@pki/kit';
import { caSignerV1 } from '@pki/proto';
import { fromPem, toPem } from '@pki/x509';
import { GrpcCertificateSigner } from '../src/adapters/grpc/ca-signer-client';
import { CertificateValidator, type ValidationResult, type ValidationVerdict } from '../src/domain/certificate-validation';
import { IssuerDirectory } from '../src/domain/issuer-directory';
import { Agent, fetch as undiciFetch } from 'undici';
import { startRaFixture, type RaFixture } from './ra-fixture';
import { onboard, type AgencyClient } from './agency-helpers';
import { issueCard, person, register } from './lifecycle-helpers';

/**
 * The validation API's judgement against OpenSSL's (`openssl verify -crl_check`, given the same
 * roots, generations and CRLs) on good, revoked, suspended, expired, wrong-generation and wrongly
 * chained certificates, through the real ca-signer (SoftHSM) and ra's real registry.
 */
let f: RaFixture;
let agency: AgencyClient;
const pems: Record<string, string> = {};
let g1: string;
let g2: string;
const crlFiles: string[] = [];

const file = (name: string, data: string | Uint8Array) => {
  const path = join(f.dir, `validation-${name}`);
  writeFileSync(path, data);
  return path;
};
const run = (args: string[]) => execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** OpenSSL's verdict: the roots as anchors, every generation (and what the caller sent) as intermediates, the CRLs. */
function opensslVerify(leafPem: string, submittedChain: string[], at?: Date): string {
  const tag = randomBytes(4).toString('hex');
  const trust = file(`root-${tag}.pem`, pems.root!);
  const untrusted = file(`untrusted-${tag}.pem`, [pems.g1!, pems.g2!, ...submittedChain].join(''));
  const leaf = file(`leaf-${tag}.pem`, leafPem);
  const crls = file(`crls-${tag}.pem`, crlFiles.join(''));
  try {
    return run(['verify', '-x509_strict', '-crl_check', '-CRLfile', crls, ...(at ? ['-attime', String(Math.floor(at.getTime() / 1000))] : []), '-CAfile', trust, '-untrusted', untrusted, leaf]).trim().replace(`${leaf}: `, '');
  } catch (err) {
    const out = `${(err as { stdout?: string }).stdout ?? ''}${(err as { stderr?: string }).stderr ?? ''}`;
    // Every error OpenSSL met (at -attime the CRL's own times fail too), one per line.
    const errors = [...out.matchAll(/error \d+ at \d+ depth lookup: (.*)/g)].map((m) => m[1]);
    return errors.length > 0 ? errors.join('\n') : out.trim();
  }
}

function validatorAt(now: Date): CertificateValidator {
  const client = createGrpcClient(caSignerV1.CaSignerService, { ...f.config.caSigner, tls: f.config.tls });
  const signer = new GrpcCertificateSigner(client);
  const issuers = new IssuerDirectory(signer);
  return new CertificateValidator(
    { trust: () => issuers.trustMaterial(), registered: (s) => f.ra.registry.reads.getCertificate(s), signReceipt: (r) => signer.signValidationReceipt(r) },
    { clock: new FixedClock(now), acceptedPolicies: f.config.validation.acceptedPolicies },
  );
}

const der = (pem: string) => fromPem(pem, 'CERTIFICATE');

/** A CA of another hierarchy under our issuing CA's very name; `keyIdOf` forges a key identifier too. */
function foreignCa(name: string, options: { forgeKeyIdOf?: string } = {}): { certPem: string; keyFile: string; certFile: string } {
  const keyFile = file(`${name}.key`, '');
  run(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyFile]);
  const ski = options.forgeKeyIdOf ? skiOf(options.forgeKeyIdOf) : 'hash';
  const ext = file(`${name}.ext`, `[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=${ski}\nauthorityKeyIdentifier=keyid\ncertificatePolicies=2.5.29.32.0\n`);
  const csr = file(`${name}.csr`, '');
  // The same subject DN, byte for byte: -x509toreq copies it from our issuing CA.
  run(['x509', '-x509toreq', '-in', file('g1-for-name.pem', pems.g1!), '-key', keyFile, '-out', csr]);
  const certFile = file(`${name}.pem`, '');
  run(['x509', '-req', '-in', csr, '-key', keyFile, '-days', '365', '-extfile', ext, '-extensions', 'ca', '-out', certFile]);
  return { certPem: run(['x509', '-in', certFile]), keyFile, certFile };
}

function skiOf(pem: string): string {
  const text = run(['x509', '-in', file(`ski-${randomBytes(3).toString('hex')}.pem`, pem), '-noout', '-ext', 'subjectKeyIdentifier']);
  return text.split('\n')[1]!.trim();
}

function leafUnder(ca: { keyFile: string; certFile: string }, name: string): string {
  const keyFile = file(`${name}-leaf.key`, '');
  run(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyFile]);
  const csr = file(`${name}-leaf.csr`, '');
  run(['req', '-new', '-key', keyFile, '-subj', '/C=TW/CN=Forged Citizen/serialNumber=0000000000000001', '-out', csr]);
  const ext = file(`${name}-leaf.ext`, `[ee]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\ncertificatePolicies=2.16.886.101.0.3.3\n`);
  const out = file(`${name}-leaf.pem`, '');
  run(['x509', '-req', '-in', csr, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-set_serial', `0x${randomBytes(12).toString('hex')}`, '-days', '365', '-extfile', ext, '-extensions', 'ee', '-out', out]);
  return run(['x509', '-in', out]);
}

const cases: Record<string, { leaf: string; submitted: string[]; at?: Date; expect: ValidationVerdict }> = {};

beforeAll(async () => {
  f = await startRaFixture({ extraGenerations: 1 });
  agency = (await onboard(f, 'MOJ-COURT-01', 'GOVERNMENT')).client;
  const good = await issueCard(f, await register(f, person()));
  const revoked = await issueCard(f, await register(f, person()));
  const suspended = await issueCard(f, await register(f, person()));
  g1 = good.certificates[0]!.issuerKeyId;
  g2 = f.signer.extraGenerations[0]!;
  await f.signer.activateGeneration(g2);
  const second = await issueCard(f, await register(f, person()));
  pems.g1 = good.certificates[0]!.chain[0]!;
  pems.g2 = second.certificates[0]!.chain[0]!;
  pems.root = good.certificates[0]!.chain[1]!;

  const revocation = await f.call('registrar-a', 'POST', `/v1/cards/${revoked.cardNumber}/revocation`, { reason: 'keyCompromise' });
  const approval = await f.call('registrar-b', 'POST', `/v1/approvals/${revocation.body.approvalRequestId}/decision`, { decision: 'approve' });
  if (approval.status !== 200) throw new Error(`revoke: ${approval.status} ${approval.text}`);
  const suspension = await f.call('registrar-a', 'POST', `/v1/cards/${suspended.cardNumber}/suspension`, { comment: 'card reported lost' });
  if (suspension.status !== 200) throw new Error(`suspend: ${suspension.status} ${suspension.text}`);

  // The CRLs OpenSSL checks: what the crl service would publish, signed by the real ca-signer.
  const asCrl = createGrpcClient(caSignerV1.CaSignerService, { address: f.signer.signer.grpcAddress, serverIdentity: f.signer.identities['ca-signer'].identity, tls: f.signer.identities.crl, deadlineMs: 30_000 });
  const { rows } = await f.db.query<{ serial_hex: string; issuer_key_id: string; status: string; revocation_time: Date }>(`SELECT serial_hex, issuer_key_id, status, revocation_time FROM certificates WHERE status <> 'VALID'`);
  const now = Date.now();
  for (const issuerKeyId of [g1, g2]) {
    const entries = rows
      .filter((r) => r.issuer_key_id === issuerKeyId)
      .map((r) => ({ serialHex: r.serial_hex, revocationDate: timestampFromDate(new Date(Math.floor(r.revocation_time.getTime() / 1000) * 1000)), reason: r.status === 'SUSPENDED' ? caSignerV1.RevocationReason.CERTIFICATE_HOLD : caSignerV1.RevocationReason.KEY_COMPROMISE }));
    const { crl } = await asCrl.signCrl({ idempotencyKey: `validation-${issuerKeyId}`, issuerKeyId, crlNumber: '1', thisUpdate: timestampFromDate(new Date(Math.floor(now / 1000) * 1000)), nextUpdate: timestampFromDate(new Date(Math.floor(now / 1000) * 1000 + 86_400_000)), entries });
    crlFiles.push(toPem(crl, 'X509 CRL'));
  }
  asCrl.close();

  const lookalike = foreignCa('lookalike');
  const forger = foreignCa('forger', { forgeKeyIdOf: pems.g1 });
  const goodSign = good.certificates[0]!.certificate;
  cases.good = { leaf: goodSign, submitted: [], expect: 'VALID' };
  cases['good with its chain'] = { leaf: goodSign, submitted: [pems.g1, pems.root], expect: 'VALID' };
  cases['second generation'] = { leaf: second.certificates[0]!.certificate, submitted: [], expect: 'VALID' };
  // The caller sends the first generation's certificate for a second-generation certificate: the
  // issuer is chosen by key identifier, and G2 is ours, so the path is found anyway (as OpenSSL,
  // given every generation, finds it).
  cases['second generation sent with the first generation'] = { leaf: second.certificates[0]!.certificate, submitted: [pems.g1], expect: 'VALID' };
  cases.revoked = { leaf: revoked.certificates[0]!.certificate, submitted: [], expect: 'REVOKED' };
  cases.suspended = { leaf: suspended.certificates[0]!.certificate, submitted: [], expect: 'SUSPENDED' };
  cases.expired = { leaf: goodSign, submitted: [], at: new Date(Date.parse(new X509Certificate(goodSign).validTo) + 86_400_000), expect: 'EXPIRED' };
  cases['not yet valid'] = { leaf: goodSign, submitted: [], at: new Date(Date.parse(new X509Certificate(goodSign).validFrom) - 86_400_000), expect: 'NOT_YET_VALID' };
  // Another hierarchy's CA under our generations' name: no path to our roots.
  cases['wrong generation (same name, another hierarchy)'] = { leaf: leafUnder(lookalike, 'lookalike'), submitted: [], expect: 'UNTRUSTED' };
  cases['wrong generation with its own CA sent'] = { leaf: leafUnder(lookalike, 'lookalike2'), submitted: [lookalike.certPem], expect: 'INVALID_CHAIN' };
  // A CA that copies G1's name and key identifier: the path by name and key id is G1's, and G1's
  // key does not verify the signature.
  cases['wrongly chained (forged key identifier)'] = { leaf: leafUnder(forger, 'forger'), submitted: [], expect: 'INVALID_CHAIN' };
}, 240_000);

afterAll(async () => {
  await agency?.agent.close();
  await f?.stop();
});

describe('certificate validation agrees with openssl verify -crl_check', () => {
  it.each([
    'good',
    'good with its chain',
    'second generation',
    'second generation sent with the first generation',
    'revoked',
    'suspended',
    'expired',
    'not yet valid',
    'wrong generation (same name, another hierarchy)',
    'wrong generation with its own CA sent',
    'wrongly chained (forged key identifier)',
  ])('%s', async (name) => {
    const c = cases[name]!;
    const validator = validatorAt(c.at ?? new Date());
    const result = await validator.evaluate({ certificates: [der(c.leaf), ...c.submitted.map(der)], requestedBy: 'test-system' });
    const openssl = opensslVerify(c.leaf, c.submitted, c.at);
    expect({ verdict: result.verdict, valid: result.valid }).toEqual({ verdict: c.expect, valid: c.expect === 'VALID' });
    expect(openssl === 'OK').toBe(result.valid);
    // The reason OpenSSL gives matches ours where both name it.
    const opensslReason: Partial<Record<ValidationVerdict, RegExp>> = {
      REVOKED: /certificate revoked/,
      SUSPENDED: /certificate revoked/,
      EXPIRED: /certificate has expired/,
      NOT_YET_VALID: /certificate is not yet valid/,
      UNTRUSTED: /unable to get local issuer certificate|self-signed certificate in certificate chain/,
      INVALID_CHAIN: /certificate signature failure|self-signed certificate in certificate chain|unable to get local issuer certificate/,
    };
    if (!result.valid) expect(openssl).toMatch(opensslReason[result.verdict]!);
  });

  it('names the generation (chosen by key identifier), the registry status and the path', async () => {
    const second = await validatorAt(new Date()).evaluate({ certificates: [der(cases['second generation sent with the first generation']!.leaf), der(pems.g1!)], requestedBy: 'test-system' });
    expect(second.generation).toMatchObject({ keyId: g2, active: true });
    expect(second.path.map((p) => p.role)).toEqual(['end-entity', 'ca', 'trust-anchor']);
    expect(second.path[1]!.subjectKeyId).toBe(g2);
    expect(second.status).toEqual({ status: 'VALID' });
    expect(second.certificate).toMatchObject({ issuerKeyId: g2, policies: ['2.16.886.101.0.3.3'], profile: expect.any(String) });

    const revoked = await validatorAt(new Date()).evaluate({ certificates: [der(cases.revoked!.leaf)], requestedBy: 'test-system' });
    expect(revoked.status).toMatchObject({ status: 'REVOKED', reason: 'keyCompromise', revocationTime: expect.any(String) });
    expect(revoked.generation?.keyId).toBe(g1);
    const suspended = await validatorAt(new Date()).evaluate({ certificates: [der(cases.suspended!.leaf)], requestedBy: 'test-system' });
    expect(suspended.status).toMatchObject({ status: 'SUSPENDED', reason: 'certificateHold' });
  });

  it('signs the answer: the receipt is the result, verifiable with OpenSSL and the CA chain', async () => {
    const answer = await validatorAt(new Date()).validate({ certificates: [der(cases.good!.leaf)], reference: 'case 2026/42', requestedBy: 'test-system' });
    expect(JSON.parse(answer.receipt.toString('utf8')) as ValidationResult).toEqual(answer.result);
    expect(answer.result).toMatchObject({ format: 'pki-certificate-validation v1', reference: 'case 2026/42', requestedBy: 'test-system', valid: true });
    const pub = file('receipt.pub', new X509Certificate(answer.signerCertificateDer).publicKey.export({ type: 'spki', format: 'pem' }) as string);
    expect(run(['dgst', '-sha256', '-verify', pub, '-signature', file('receipt.sig', answer.signature), file('receipt.json', answer.receipt)]).trim()).toBe('Verified OK');
    const signerPem = file('receipt-signer.pem', toPem(answer.signerCertificateDer, 'CERTIFICATE'));
    expect(run(['verify', '-CAfile', file('root.pem', pems.root!), '-untrusted', file('gens.pem', pems.g1! + pems.g2!), signerPem]).trim()).toBe(`${signerPem}: OK`);
  });

  it('refuses what is not a certificate, naming which one, and too many', async () => {
    const v = validatorAt(new Date());
    await expect(v.evaluate({ certificates: [], requestedBy: 's' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('no certificate given') });
    await expect(v.evaluate({ certificates: [der(cases.good!.leaf), Buffer.from('junk')], requestedBy: 's' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('certificate 1 is not a DER X.509 certificate') });
    await expect(v.evaluate({ certificates: Array(6).fill(der(cases.good!.leaf)), requestedBy: 's' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('at most 5') });
    await expect(v.evaluate({ certificates: [der(cases.good!.leaf)], reference: 'line\nbreak', requestedBy: 's' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('reference') });
  });
});

describe('POST /v1/certificate-validations (agency systems over mTLS)', () => {
  const post = async (agent: Agent, body: unknown) => {
    const res = await undiciFetch(`${f.httpUrl}/v1/certificate-validations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), dispatcher: agent });
    const text = await res.text();
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the test reads the answer's JSON as it comes
    return { status: res.status, body: JSON.parse(text) as Record<string, any>, text };
  };
  const uses = async () => Number((await f.db.query(`SELECT coalesce(sum(uses), 0) AS n FROM usage_counts WHERE system_id = $1 AND channel = 'certificate-validation'`, [agency.id])).rows[0].n);

  it('answers a registered system with the verdict and a receipt it can verify with OpenSSL, and meters the call', async () => {
    const before = await uses();
    const good = await post(agency.agent, { certificates: [cases.good!.leaf], reference: 'court case 115-42' });
    expect(good.status).toBe(200);
    expect(good.body.result).toMatchObject({ valid: true, verdict: 'VALID', requestedBy: agency.id, reference: 'court case 115-42', generation: { keyId: g1 } });
    const receipt = Buffer.from(good.body.receipt.body, 'base64');
    expect(JSON.parse(receipt.toString('utf8'))).toEqual(good.body.result);
    const pub = file('http-receipt.pub', new X509Certificate(good.body.receipt.signerCertificate).publicKey.export({ type: 'spki', format: 'pem' }) as string);
    expect(run(['dgst', '-sha256', '-verify', pub, '-signature', file('http-receipt.sig', Buffer.from(good.body.receipt.signature, 'base64')), file('http-receipt.json', receipt)]).trim()).toBe('Verified OK');

    // base64 DER works as well as PEM; the revoked and suspended ones say so.
    const revoked = await post(agency.agent, { certificates: [der(cases.revoked!.leaf).toString('base64')] });
    expect(revoked.body.result).toMatchObject({ valid: false, verdict: 'REVOKED', status: { status: 'REVOKED', reason: 'keyCompromise' } });
    const suspended = await post(agency.agent, { certificates: [cases.suspended!.leaf] });
    expect(suspended.body.result).toMatchObject({ valid: false, verdict: 'SUSPENDED' });
    const forged = await post(agency.agent, { certificates: [cases['wrongly chained (forged key identifier)']!.leaf] });
    expect(forged.body.result).toMatchObject({ valid: false, verdict: 'INVALID_CHAIN' });
    expect(await uses()).toBe(before + 4);
  });

  it('refuses bad input with the reason, and does not meter it', async () => {
    const before = await uses();
    const notCert = await post(agency.agent, { certificates: [cases.good!.leaf, 'bm90IGEgY2VydGlmaWNhdGU='] });
    expect(notCert.status).toBe(400);
    expect(notCert.body.message).toContain('certificate 1 is not a DER X.509 certificate');
    const neither = await post(agency.agent, { certificates: ['<xml/>'] });
    expect(neither.status).toBe(400);
    expect(neither.body.message).toContain('certificate 0 is neither PEM nor base64 DER');
    const tooMany = await post(agency.agent, { certificates: Array(6).fill(cases.good!.leaf) });
    expect(tooMany.status).toBe(400);
    const none = await post(agency.agent, { certificates: [] });
    expect(none.status).toBe(400);
    const extra = await post(agency.agent, { certificates: [cases.good!.leaf], unexpected: true });
    expect(extra.status).toBe(400);
    const badRef = await post(agency.agent, { certificates: [cases.good!.leaf], reference: 'two\nlines' });
    expect(badRef.status).toBe(400);
    expect(badRef.body.message).toContain('reference');
    expect(await uses()).toBe(before);
  });

  it('answers only registered agency systems: not a caller without a certificate, nor an officer', async () => {
    const ca = readFileSync(f.signer.identities.ra.caFile);
    const anonymous = new Agent({ connect: { ca, servername: 'localhost' } });
    const noCert = await post(anonymous, { certificates: [cases.good!.leaf] });
    expect(noCert.status).toBe(401);
    expect(noCert.body).toMatchObject({ details: { code: 'UNKNOWN_CLIENT' } });
    expect(noCert.body).not.toHaveProperty('result');
    const officer = await f.call('registrar-a', 'POST', '/v1/certificate-validations', { certificates: [cases.good!.leaf] });
    expect([401, 403]).toContain(officer.status);
    await anonymous.close();
  });
});
