import { generateKeyPairSync } from 'node:crypto';
import { FixedClock, PkiError } from '@pki/kit';
import { crlPartitionOf, decodeAuthorityInfoAccess, decodeSubjectAltName, parseCertificate, randomSerial, subjectKeyIdentifierOf } from '@pki/x509';
import { FakeKeyManager } from '../adapters/fake';
import { createCaHierarchy } from './ca-hierarchy';
import { type IssueCertificateRequest, type IssuingCa, issueCertificate, prepareCertificate, signPreparedCertificate } from './issuance';

const spkiOf = (pair: { publicKey: { export(o: { format: 'der'; type: 'spki' }): Buffer } }) => pair.publicKey.export({ format: 'der', type: 'spki' });
const p256 = spkiOf(generateKeyPairSync('ec', { namedCurve: 'P-256' }));
const rsa2048 = spkiOf(generateKeyPairSync('rsa', { modulusLength: 2048 }));

const clock = new FixedClock(new Date('2025-03-01T08:00:00Z'));
let keyManager: FakeKeyManager;
let issuer: IssuingCa;
let issuerKeyId: string;
const serial = Buffer.from('5a0102030405060708090a0b0c0d0e0f', 'hex');
const deps = () => ({ keyManager, clock, serials: () => serial });

beforeAll(async () => {
  keyManager = new FakeKeyManager();
  const hierarchy = await createCaHierarchy(keyManager, { clock });
  issuer = {
    ...hierarchy.issuing,
    crl: { baseUrl: 'http://crl.example.tw/crl', partitions: 16 },
    ocspUrls: ['http://ocsp.example.tw/'],
    caIssuersUrls: ['http://pki.example.tw/ca.crt'],
  };
  issuerKeyId = subjectKeyIdentifierOf(parseCertificate(hierarchy.issuing.certificateDer).subjectPublicKeyInfo).toString('hex');
});

const ext = (der: Buffer, id: string) => parseCertificate(der).extensions.get(id);
const serviceRequest = (): IssueCertificateRequest => ({ issuer, profile: 'serviceMtls', subject: [{ type: 'CN', value: 'ocsp' }], publicKeySpki: p256, dnsNames: ['ocsp.pki.internal'] });

describe('issuance under the service profiles', () => {
  it('names the CRL partition of the serial and exposes the lint result', () => {
    const prepared = prepareCertificate(deps(), {
      issuer,
      profile: 'citizenEncryption',
      subject: [{ type: 'C', value: 'TW' }, { type: 'CN', value: '王小明' }, { type: 'serialNumber', value: '0000000012345678' }],
      publicKeySpki: rsa2048,
    });
    expect(prepared.crlPartition).toBe(crlPartitionOf(serial, 16));
    expect(prepared.crlPartition).toBe(15); // 0x...0f mod 16
    expect(prepared.tbsDer.includes(Buffer.from(`http://crl.example.tw/crl/${issuerKeyId}/p15.crl`))).toBe(true);
    expect(prepared.lint.errors).toEqual([]);
    expect(prepared.lint.warnings.map((w) => w.code)).toEqual(['w_key_usage_not_critical']);
  });

  it('issues an OCSP responder certificate: OCSPSigning, nocheck, no CRL DP, AIA caIssuers only', async () => {
    const { certificateDer } = await issueCertificate(deps(), {
      issuer,
      profile: 'ocspResponder',
      subject: [{ type: 'C', value: 'TW' }, { type: 'O', value: '內政部' }, { type: 'CN', value: 'OCSP 1' }],
      publicKeySpki: p256,
      validity: { days: 30 },
    });
    const cert = parseCertificate(certificateDer);
    expect([...cert.extensions].map(([id, e]) => `${id}${e.critical ? '!' : ''}`)).toEqual(['2.5.29.35', '2.5.29.14', '2.5.29.15!', '2.5.29.37', '1.3.6.1.5.5.7.1.1', '1.3.6.1.5.5.7.48.1.5']);
    expect(ext(certificateDer, '2.5.29.15')!.value.toString('hex')).toBe('03020780');
    expect(ext(certificateDer, '2.5.29.37')!.value.toString('hex')).toBe('300a06082b06010505070309');
    expect(ext(certificateDer, '1.3.6.1.5.5.7.48.1.5')!.value.toString('hex')).toBe('0500');
    expect(decodeAuthorityInfoAccess(ext(certificateDer, '1.3.6.1.5.5.7.1.1')!.value).map((a) => a.accessMethod)).toEqual(['1.3.6.1.5.5.7.48.2']);
  });

  it('refuses an OCSP responder certificate longer than a year', () => {
    expect(() =>
      prepareCertificate(deps(), { issuer, profile: 'ocspResponder', subject: [{ type: 'C', value: 'TW' }, { type: 'O', value: 'x' }, { type: 'CN', value: 'y' }], publicKeySpki: p256, validity: { days: 400 } }),
    ).toThrow(new PkiError('INVALID_ARGUMENT', 'issue certificate: validity longer than the 1 years profile ocspResponder allows'));
  });

  it('issues a service certificate with the SPIFFE ID derived from the CN', async () => {
    const { certificateDer, notAfter } = await issueCertificate(deps(), serviceRequest());
    expect(notAfter).toEqual(new Date('2025-05-30T08:00:00Z')); // 90 days
    expect(decodeSubjectAltName(ext(certificateDer, '2.5.29.17')!.value)).toEqual([
      { type: 'dns', value: 'ocsp.pki.internal' },
      { type: 'uri', value: 'spiffe://pki.internal/ocsp' },
    ]);
    expect(ext(certificateDer, '2.5.29.19')).toEqual({ critical: true, value: Buffer.from('3000', 'hex') });
  });

  it.each<[string, Partial<IssueCertificateRequest>, string]>([
    ['a single-label DNS name', { dnsNames: ['ocsp'] }, "issue certificate: DNS name 'ocsp' is not a fully qualified lower-case host name"],
    ['a repeated DNS name', { dnsNames: ['a.pki.internal', 'a.pki.internal'] }, 'issue certificate: a DNS name appears twice'],
    ['a CN that is not a service name', { subject: [{ type: 'CN', value: 'OCSP Service' }] }, 'issue certificate: subject CN must be a service name (lower-case letters, digits, -)'],
    ['an RSA-4096 key', { publicKeySpki: spkiOf(generateKeyPairSync('rsa', { modulusLength: 4096 })) }, 'issue certificate: public key is RSA-4096, profile serviceMtls requires EC P-256 or EC P-384 or RSA-2048 or RSA-3072'],
  ])('refuses %s', (_, change, message) => {
    expect(() => prepareCertificate(deps(), { ...serviceRequest(), ...change })).toThrow(new PkiError('INVALID_ARGUMENT', message));
  });

  it('refuses DNS names and e-mail where the profile has none', () => {
    const agency: IssueCertificateRequest = {
      issuer,
      profile: 'agencyClient',
      subject: [{ type: 'C', value: 'TW' }, { type: 'O', value: '財政部' }, { type: 'OU', value: '報稅' }, { type: 'CN', value: 'MOF-0001' }],
      publicKeySpki: rsa2048,
    };
    expect(() => prepareCertificate(deps(), { ...agency, dnsNames: ['a.example.tw'] })).toThrow('issue certificate: profile agencyClient carries no DNS names');
    expect(() => prepareCertificate(deps(), { ...agency, email: 'a@example.tw' })).toThrow('issue certificate: profile agencyClient carries no e-mail address');
    expect(() => prepareCertificate(deps(), { ...agency, nationalIdLastFour: '1234' })).toThrow('issue certificate: profile agencyClient carries no national ID digits');
  });

  it.each<[string, Partial<IssuingCa>, string]>([
    ['both partitioned and unpartitioned CRL URLs', { crlUrls: ['http://crl.example.tw/full.crl'] }, 'issue certificate: the issuing CA names both partitioned and unpartitioned CRL URLs'],
    ['no CRL URL', { crl: undefined, crlUrls: [] }, 'issue certificate: profile serviceMtls needs a CRL URL and the issuing CA has none'],
    ['no OCSP URL', { ocspUrls: [] }, 'issue certificate: profile serviceMtls needs an OCSP URL and the issuing CA has none'],
  ])('refuses an issuing CA configuration with %s (FAILED_PRECONDITION)', (_, change, message) => {
    expect(() => prepareCertificate(deps(), { ...serviceRequest(), issuer: { ...issuer, ...change } })).toThrow(new PkiError('FAILED_PRECONDITION', message));
  });
});

describe('the pre-issuance lint gate', () => {
  it('refuses with INTERNAL what the CA would get wrong, before anything is signed', () => {
    const before = keyManager.signatures.length;
    let caught: unknown;
    try {
      // A broken serial source: 8 octets cannot hold 64 random bits.
      prepareCertificate({ clock, serials: () => Buffer.from('0102030405060708', 'hex') }, serviceRequest());
    } catch (err) {
      caught = err;
    }
    expect(caught).toMatchObject({
      code: 'INTERNAL',
      message: 'issue certificate: pre-issuance lint refused the certificate: e_serial_number_low_entropy (serialNumber has room for 63 bits, fewer than 64 random bits)',
      details: { lintErrors: 'e_serial_number_low_entropy', lintWarnings: '' },
    });
    expect(keyManager.signatures.length).toBe(before);
  });

  it('signs only the bytes that were linted', async () => {
    const prepared = prepareCertificate({ clock, serials: () => randomSerial() }, serviceRequest());
    const before = keyManager.signatures.length;
    const tampered = { ...prepared, tbsDer: Buffer.from(prepared.tbsDer) };
    tampered.tbsDer[tampered.tbsDer.length - 1] = tampered.tbsDer.at(-1)! ^ 0x01;
    await expect(signPreparedCertificate({ keyManager }, tampered)).rejects.toThrow(
      new PkiError('INTERNAL', 'issue certificate: the TBS to sign is not the one that passed the pre-issuance lint'),
    );
    await expect(signPreparedCertificate({ keyManager }, { ...prepared, lint: { ...prepared.lint, errors: [{ code: 'e_x', message: 'x' }] } })).rejects.toThrow(
      'the TBS to sign is not the one that passed the pre-issuance lint',
    );
    expect(keyManager.signatures.length).toBe(before);
    const { certificateDer } = await signPreparedCertificate({ keyManager }, prepared);
    expect(keyManager.signatures.at(-1)!.data).toEqual(prepared.tbsDer);
    expect(parseCertificate(certificateDer).tbsDer).toEqual(prepared.tbsDer);
  });
});
