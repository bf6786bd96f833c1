import { generateKeyPairSync } from 'node:crypto';
import { FixedClock, PkiError } from '@pki/kit';
import { type DistinguishedName, formatName, parseCertificate, subjectKeyIdentifierOf, verifyCertificateSignature } from '@pki/x509';
import { FakeKeyManager } from '../adapters/fake';
import { createCaHierarchy } from './ca-hierarchy';
import { type IssueCertificateRequest, type IssuingCa, issueCertificate, prepareCertificate } from './issuance';

const spkiOf = (key: ReturnType<typeof generateKeyPairSync>['publicKey']) => key.export({ format: 'der', type: 'spki' });
const rsa2048 = spkiOf(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey);

const citizen: DistinguishedName = [
  { type: 'C', value: 'TW' },
  { type: 'CN', value: '王小明' },
  { type: 'serialNumber', value: '0000000012345678' },
];

async function setUp(options: { rootKeySpec?: { type: 'EC'; curve: 'P-256' } } = {}) {
  const clock = new FixedClock(new Date('2025-03-01T08:00:00.750Z'));
  const keyManager = new FakeKeyManager();
  const hierarchy = await createCaHierarchy(keyManager, { clock, ...(options.rootKeySpec ? { rootKeySpec: options.rootKeySpec, issuingKeySpec: options.rootKeySpec } : {}) });
  const issuer: IssuingCa = {
    ...hierarchy.issuing,
    crlUrls: ['http://dev.pki.local/crl/citizen-ca.crl'],
    ocspUrls: ['http://dev.pki.local/ocsp'],
    caIssuersUrls: ['http://dev.pki.local/certs/citizen-ca.cer'],
  };
  let next = 0x10;
  // 9 octets: the pre-issuance lint refuses serials with room for fewer than 64 random bits.
  const deps = { keyManager, clock, serials: () => Buffer.from([0x3a, 0, 0, 0, 0, 0, 0, 0, next++]) };
  const request: IssueCertificateRequest = { issuer, profile: 'citizenSignature', subject: citizen, publicKeySpki: rsa2048 };
  return { clock, keyManager, hierarchy, issuer, deps, request };
}

describe('issueCertificate', () => {
  it('issues a citizen signature certificate as the profile describes', async () => {
    const { deps, request, issuer } = await setUp();
    const issued = await issueCertificate(deps, { ...request, nationalIdLastFour: '6789', email: 'citizen@example.tw' });

    expect(issued.serialHex).toBe('3a0000000000000010');
    expect(issued.notBefore).toEqual(new Date('2025-03-01T08:00:00Z'));
    expect(issued.notAfter).toEqual(new Date('2030-03-01T08:00:00Z'));

    const cert = parseCertificate(issued.certificateDer);
    const issuerCert = parseCertificate(issuer.certificateDer);
    expect(verifyCertificateSignature(cert, issuerCert.subjectPublicKeyInfo)).toBe(true);
    expect(cert.serialNumber.toString('hex')).toBe('3a0000000000000010');
    expect(cert.issuerDer).toEqual(issuerCert.subjectDer);
    expect(formatName(cert.subject)).toBe('C=TW, CN=王小明, serialNumber=0000000012345678');
    expect(cert.subjectPublicKeyInfo).toEqual(rsa2048);
    expect(cert.signatureAlgorithm.algorithm).toBe('1.2.840.113549.1.1.11');

    const ext = (id: string) => cert.extensions.get(id);
    // No extension critical (domain.md); values as RFC 5280 encodes them.
    expect([...cert.extensions.values()].some((e) => e.critical)).toBe(false);
    expect([...cert.extensions.keys()]).toEqual(['2.5.29.35', '2.5.29.14', '2.5.29.15', '2.5.29.32', '2.5.29.31', '1.3.6.1.5.5.7.1.1', '2.5.29.9', '2.5.29.17']);
    expect(ext('2.5.29.35')!.value.toString('hex')).toBe(`30168014${issuerCert.subjectKeyIdentifier!.toString('hex')}`);
    expect(ext('2.5.29.14')!.value.toString('hex')).toBe(`0414${subjectKeyIdentifierOf(rsa2048).toString('hex')}`);
    expect(ext('2.5.29.15')!.value.toString('hex')).toBe('030206c0'); // digitalSignature, nonRepudiation
    expect(ext('2.5.29.32')!.value.toString('hex')).toBe('300b3009060760867665000303');
    expect(ext('2.5.29.9')!.value.toString('hex')).toBe('301330110607608676016402333106130436373839');
    expect(ext('2.5.29.31')!.value.includes(Buffer.from('http://dev.pki.local/crl/citizen-ca.crl'))).toBe(true);
    expect(ext('1.3.6.1.5.5.7.1.1')!.value.includes(Buffer.from('http://dev.pki.local/ocsp'))).toBe(true);
    expect(ext('2.5.29.17')!.value.includes(Buffer.from('citizen@example.tw'))).toBe(true);
  });

  it('issues the encryption certificate with keyEncipherment and dataEncipherment', async () => {
    const { deps, request } = await setUp();
    const cert = parseCertificate((await issueCertificate(deps, { ...request, profile: 'citizenEncryption' })).certificateDer);
    expect(cert.extensions.get('2.5.29.15')!.value.toString('hex')).toBe('03020430');
  });

  it('signs with the issuer key type: ECDSA-SHA256 under a P-256 issuing CA', async () => {
    const { deps, request } = await setUp({ rootKeySpec: { type: 'EC', curve: 'P-256' } });
    const cert = parseCertificate((await issueCertificate(deps, request)).certificateDer);
    // ecdsa-with-SHA256 without parameters (RFC 5758 §3.2), in the TBS and after it.
    expect(cert.signatureAlgorithm.algorithm).toBe('1.2.840.10045.4.3.2');
    expect(cert.signatureAlgorithm.parameters).toBeUndefined();
    expect(cert.tbsDer.includes(Buffer.from('300a06082a8648ce3d040302', 'hex'))).toBe(true);
  });

  it('takes a shorter validity in days or as a notAfter', async () => {
    const { deps, request } = await setUp();
    expect((await issueCertificate(deps, { ...request, validity: { days: 30 } })).notAfter).toEqual(new Date('2025-03-31T08:00:00Z'));
    const notAfter = new Date('2027-01-01T00:00:00Z');
    expect((await issueCertificate(deps, { ...request, validity: { notAfter } })).notAfter).toEqual(notAfter);
  });

  describe('refuses bad requests and signs nothing', () => {
    const rsa1024 = spkiOf(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey);
    const p256 = spkiOf(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);
    it.each<[string, (r: IssueCertificateRequest) => IssueCertificateRequest, PkiError['code'], string]>([
      ['an RSA-1024 key', (r) => ({ ...r, publicKeySpki: rsa1024 }), 'INVALID_ARGUMENT', 'issue certificate: public key is RSA-1024, profile citizenSignature requires RSA-2048'],
      ['an EC key for an RSA profile', (r) => ({ ...r, publicKeySpki: p256 }), 'INVALID_ARGUMENT', 'issue certificate: public key is EC P-256, profile citizenSignature requires RSA-2048'],
      ['garbage instead of a key', (r) => ({ ...r, publicKeySpki: Buffer.from('garbage') }), 'INVALID_ARGUMENT', 'issue certificate: public key: malformed SubjectPublicKeyInfo'],
      ['the subject attributes out of order', (r) => ({ ...r, subject: [citizen[1]!, citizen[0]!, citizen[2]!] }), 'INVALID_ARGUMENT', 'requires the subject attributes C, CN, serialNumber, in that order'],
      ['a subject serialNumber that is not 16 digits', (r) => ({ ...r, subject: [citizen[0]!, citizen[1]!, { type: 'serialNumber', value: 'A123456789' }] }), 'INVALID_ARGUMENT', 'issue certificate: subject serialNumber must be 16 digits'],
      ['an extra subject attribute', (r) => ({ ...r, subject: [...citizen, { type: 'O', value: 'x' }] }), 'INVALID_ARGUMENT', 'requires the subject attributes C, CN, serialNumber'],
      ['a validity over 5 years', (r) => ({ ...r, validity: { days: 5 * 366 } }), 'INVALID_ARGUMENT', 'validity longer than the 5 years profile citizenSignature allows'],
      ['a notAfter before notBefore', (r) => ({ ...r, validity: { notAfter: new Date('2024-01-01T00:00:00Z') } }), 'INVALID_ARGUMENT', 'notAfter must be after notBefore'],
      ['an unknown profile', (r) => ({ ...r, profile: 'tlsServer' as never }), 'INVALID_ARGUMENT', "issue certificate: unknown profile 'tlsServer'"],
      ['national ID digits that are not 4 digits', (r) => ({ ...r, nationalIdLastFour: '12345' }), 'INVALID_ARGUMENT', 'nationalIdLastFour must be 4 digits'],
      ['an unknown issuer key', (r) => ({ ...r, issuer: { ...r.issuer, keyId: 'ab'.repeat(16) } }), 'NOT_FOUND', `sign: key ${'ab'.repeat(16)} not found`],
    ])('%s', async (_, change, code, message) => {
      const { deps, request, keyManager } = await setUp();
      const before = keyManager.signatures.length;
      let caught: unknown;
      try {
        await issueCertificate(deps, change(request));
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(PkiError);
      expect((caught as PkiError).code).toBe(code);
      expect((caught as PkiError).message).toContain(message);
      expect(keyManager.signatures.length).toBe(before);
    });

    it('the issuing CA key used as a subject key', async () => {
      const { deps, request, issuer, keyManager } = await setUp();
      const before = keyManager.signatures.length;
      const issuerSpki = parseCertificate(issuer.certificateDer).subjectPublicKeyInfo;
      await expect(issueCertificate(deps, { ...request, publicKeySpki: issuerSpki })).rejects.toThrow("the public key is the issuer's own key");
      expect(keyManager.signatures.length).toBe(before);
    });

    it('an issuer certificate that has expired', async () => {
      const { deps, request, clock } = await setUp();
      clock.advance(21 * 366 * 86_400_000);
      expect(() => prepareCertificate(deps, request)).toThrow(new PkiError('FAILED_PRECONDITION', 'issue certificate: the issuer certificate is not valid now'));
    });

    it('a keyId that belongs to another key than the issuer certificate', async () => {
      const { deps, request, hierarchy, keyManager } = await setUp();
      // The root key signs, but the issuing certificate names another key: the check after signing catches it.
      await expect(issueCertificate(deps, { ...request, issuer: { ...request.issuer, keyId: hierarchy.root.keyId } })).rejects.toThrow(
        `issue certificate: the signature made with key ${hierarchy.root.keyId} does not verify with the issuer's public key`,
      );
      expect(keyManager.signatures.at(-1)!.keyId).toBe(hierarchy.root.keyId);
    });
  });
});
