import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FixedClock } from '@pki/kit';
import { type DistinguishedName, randomSerial, toPem } from '@pki/x509';
import type { Pkcs11KeyManager } from '../src/adapters/pkcs11';
import type { KeyManager } from '../src/ports/key-manager';
import { createCaHierarchy, type CaHierarchy, type CaHierarchyOptions, type IssueCertificateRequest, type IssuingCa, issueCertificate } from '../src/domain';
import { expectPkiError } from './key-manager-contract';
import { createSoftHsmFixture, type SoftHsmFixture } from './softhsm-fixture';

const citizen: DistinguishedName = [
  { type: 'C', value: 'TW' },
  { type: 'CN', value: '王小明' },
  { type: 'serialNumber', value: '0000000012345678' },
];
const spkiOf = (key: ReturnType<typeof generateKeyPairSync>['publicKey']) => key.export({ format: 'der', type: 'spki' });

let fixture: SoftHsmFixture;
let keyManager: Pkcs11KeyManager;
let pemDir: string;
beforeAll(async () => {
  fixture = await createSoftHsmFixture('citizen-ca-test');
  keyManager = await fixture.open({ sessionPoolSize: 4 });
  pemDir = mkdtempSync(join(tmpdir(), 'ca-signer-pem-'));
});
afterAll(async () => {
  await keyManager.close();
  await fixture.dispose();
  rmSync(pemDir, { recursive: true, force: true });
});

// Real time: `openssl verify` checks validity against the system clock.
const clock = new FixedClock(new Date());

function issuingCa(hierarchy: CaHierarchy): IssuingCa {
  return {
    ...hierarchy.issuing,
    crlUrls: ['http://dev.pki.local/crl/citizen-ca.crl'],
    ocspUrls: ['http://dev.pki.local/ocsp'],
    caIssuersUrls: ['http://dev.pki.local/certs/citizen-ca.cer'],
  };
}

function writePems(name: string, hierarchy: CaHierarchy, leafDer: Buffer): { root: string; issuing: string; leaf: string } {
  const paths = { root: join(pemDir, `${name}-root.pem`), issuing: join(pemDir, `${name}-issuing.pem`), leaf: join(pemDir, `${name}-leaf.pem`) };
  writeFileSync(paths.root, toPem(hierarchy.root.certificateDer, 'CERTIFICATE'));
  writeFileSync(paths.issuing, toPem(hierarchy.issuing.certificateDer, 'CERTIFICATE'));
  writeFileSync(paths.leaf, toPem(leafDer, 'CERTIFICATE'));
  return paths;
}

const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' }).toString();

describe.each<[string, Partial<CaHierarchyOptions>, string]>([
  ['RSA-2048 root and issuing CA', {}, 'sha256WithRSAEncryption'],
  ['P-256 root and issuing CA', { rootKeySpec: { type: 'EC', curve: 'P-256' }, issuingKeySpec: { type: 'EC', curve: 'P-256' } }, 'ecdsa-with-SHA256'],
])('CA hierarchy in SoftHSM: %s', (name, hierarchyOptions, signatureAlgorithm) => {
  let hierarchy: CaHierarchy;
  let request: IssueCertificateRequest;
  const deps = () => ({ keyManager, clock, serials: () => randomSerial() });

  beforeAll(async () => {
    hierarchy = await createCaHierarchy(keyManager, { clock, ...hierarchyOptions });
    request = {
      issuer: issuingCa(hierarchy),
      profile: 'citizenSignature',
      subject: citizen,
      publicKeySpki: spkiOf(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey),
      nationalIdLastFour: '6789',
    };
  });

  it('issues a citizen certificate that OpenSSL verifies up to the root', async () => {
    const issued = await issueCertificate(deps(), request);
    expect(issued.serialHex).toMatch(/^[0-7][0-9a-f]{31}$/);
    const pems = writePems(name.replace(/\W+/g, '-'), hierarchy, issued.certificateDer);
    expect(openssl('verify', '-x509_strict', '-CAfile', pems.root, '-untrusted', pems.issuing, pems.leaf)).toBe(`${pems.leaf}: OK\n`);
    expect(openssl('verify', '-x509_strict', '-CAfile', pems.root, pems.issuing)).toBe(`${pems.issuing}: OK\n`);
  });

  it('writes the UTF-8 issuer and the profile extensions, as OpenSSL reads them', async () => {
    const issued = await issueCertificate(deps(), { ...request, email: 'citizen@example.tw' });
    const pems = writePems(`${name.replace(/\W+/g, '-')}-text`, hierarchy, issued.certificateDer);
    const text = openssl('x509', '-in', pems.leaf, '-noout', '-text', '-nameopt', 'utf8,sep_comma_plus_space');
    expect(text).toContain(`Signature Algorithm: ${signatureAlgorithm}`);
    expect(text).toContain('Issuer: C=TW, O=行政院, OU=內政部憑證管理中心');
    expect(text).toContain('Subject: C=TW, CN=王小明, serialNumber=0000000012345678');
    expect(text).toContain('Public-Key: (2048 bit)');
    expect(text).toMatch(/X509v3 Key Usage: \n\s+Digital Signature, Non Repudiation/);
    expect(text).toMatch(/X509v3 Certificate Policies: \n\s+Policy: 2\.16\.886\.101\.0\.3\.3/);
    expect(text).toMatch(/X509v3 CRL Distribution Points: \n\s+Full Name:\n\s+URI:http:\/\/dev\.pki\.local\/crl\/citizen-ca\.crl/);
    expect(text).toMatch(/Authority Information Access: \n\s+OCSP - URI:http:\/\/dev\.pki\.local\/ocsp\n\s+CA Issuers - URI:http:\/\/dev\.pki\.local\/certs\/citizen-ca\.cer/);
    expect(text).toMatch(/X509v3 Subject Alternative Name: \n\s+email:citizen@example\.tw/);
    expect(text).toContain('X509v3 Subject Directory Attributes');
    expect(text).toContain('X509v3 Authority Key Identifier');
    expect(text).toContain('X509v3 Subject Key Identifier');
    expect(text).not.toContain('critical');

    const issuingText = openssl('x509', '-in', pems.issuing, '-noout', '-text');
    expect(issuingText).toMatch(/X509v3 Basic Constraints: critical\n\s+CA:TRUE, pathlen:0/);
    expect(issuingText).toMatch(/X509v3 Key Usage: critical\n\s+Certificate Sign, CRL Sign/);
  });
});

describe('issuance in SoftHSM refuses bad input and signs nothing', () => {
  let hierarchy: CaHierarchy;
  let base: IssueCertificateRequest;
  /** Signatures the HSM actually produced during one test. */
  let signed = 0;
  const countingDeps = () => {
    const counting: KeyManager = {
      generateKeyPair: (r) => keyManager.generateKeyPair(r),
      getPublicKey: (r) => keyManager.getPublicKey(r),
      sign: async (r) => {
        const response = await keyManager.sign(r);
        signed++;
        return response;
      },
      healthCheck: () => keyManager.healthCheck(),
      close: () => keyManager.close(),
    };
    return { keyManager: counting, clock, serials: () => randomSerial() };
  };

  beforeAll(async () => {
    hierarchy = await createCaHierarchy(keyManager, { clock });
    base = { issuer: issuingCa(hierarchy), profile: 'citizenSignature', subject: citizen, publicKeySpki: spkiOf(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey) };
  });
  beforeEach(() => (signed = 0));

  it.each<[string, () => Partial<IssueCertificateRequest>, string]>([
    ['an RSA-1024 key', () => ({ publicKeySpki: spkiOf(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey) }), 'public key is RSA-1024, profile citizenSignature requires RSA-2048'],
    ['an EC key for an RSA profile', () => ({ publicKeySpki: spkiOf(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey) }), 'public key is EC P-256, profile citizenSignature requires RSA-2048'],
    ['garbage SPKI', () => ({ publicKeySpki: Buffer.from('30030201ff', 'hex') }), 'issue certificate: public key: malformed SubjectPublicKeyInfo'],
  ])('%s: INVALID_ARGUMENT', async (_, change, message) => {
    await expectPkiError(issueCertificate(countingDeps(), { ...base, ...change() }), 'INVALID_ARGUMENT', message);
    expect(signed).toBe(0);
  });

  it('an unknown issuer keyId: NOT_FOUND from the token, no signature', async () => {
    const keyId = 'cd'.repeat(16);
    await expectPkiError(issueCertificate(countingDeps(), { ...base, issuer: { ...base.issuer, keyId } }), 'NOT_FOUND', `sign: key ${keyId} not found in token 'citizen-ca-test'`);
    expect(signed).toBe(0);
  });
});
