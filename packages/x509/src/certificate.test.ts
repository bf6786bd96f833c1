import { execFileSync } from 'node:child_process';
import { constants, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate, Extensions, Name, SubjectPublicKeyInfo, TBSCertificate, Validity, Version } from '@peculiar/asn1-x509';
import { randomTbsSpec, SEED, seededRandom } from '../test/random-inputs';
import {
  assembleCertificate,
  buildTbsCertificate,
  parseCertificate,
  readCertificateParts,
  timeOf,
  verifyCertificateSignature,
  verifyCertificateSignatureDer,
  type TbsCertificateSpec,
} from './certificate';
import {
  authorityKeyIdentifierExtension,
  basicConstraintsExtension,
  certificatePoliciesExtension,
  keyUsageExtension,
  subjectKeyIdentifierExtension,
  toAsnExtension,
} from './extensions';
import { buildName, encodeName, type DistinguishedName } from './name';
import { toPem } from './pem';
import { subjectKeyIdentifierOf, toArrayBuffer } from './public-key';
import { type SignatureAlgorithm, signatureAlgorithmIdentifier, signatureAlgorithmIdentifierDer } from './signature-algorithm';
import * as oid from './oids';

const issuerDn: DistinguishedName = [
  { type: 'C', value: 'TW' },
  { type: 'O', value: '行政院' },
  { type: 'OU', value: '內政部憑證管理中心' },
];

function signWith(algorithm: SignatureAlgorithm, key: KeyObject, data: Buffer): Buffer {
  switch (algorithm) {
    case 'RSA-SHA256':
      return sign('sha256', data, key);
    case 'RSA-PSS-SHA256':
      return sign('sha256', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
    case 'ECDSA-SHA256':
      return sign('sha256', data, { key, dsaEncoding: 'der' });
    case 'ECDSA-SHA384':
      return sign('sha384', data, { key, dsaEncoding: 'der' });
  }
}

function selfSignedCa(algorithm: SignatureAlgorithm, validity = { notBefore: new Date('2025-01-01T00:00:00Z'), notAfter: new Date('2045-01-01T00:00:00Z') }) {
  const pair = algorithm.startsWith('RSA')
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ec', { namedCurve: algorithm === 'ECDSA-SHA384' ? 'P-384' : 'P-256' });
  const spki = pair.publicKey.export({ format: 'der', type: 'spki' });
  const spec: TbsCertificateSpec = {
    serialNumber: Buffer.from('0123456789abcdef0123456789abcdef', 'hex'),
    signatureAlgorithm: algorithm,
    issuer: issuerDn,
    subject: issuerDn,
    validity,
    subjectPublicKeyInfo: spki,
    extensions: [
      basicConstraintsExtension({ ca: true }),
      keyUsageExtension(['keyCertSign', 'crlSign']),
      subjectKeyIdentifierExtension(spki),
      authorityKeyIdentifierExtension(subjectKeyIdentifierOf(spki)),
      certificatePoliciesExtension([oid.id_tw_gpki_certpolicy_class3Assurance]),
    ],
  };
  const tbs = buildTbsCertificate(spec);
  const der = assembleCertificate(tbs, algorithm, signWith(algorithm, pair.privateKey, tbs));
  return { der, tbs, spki, pair };
}

describe('certificate building', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'x509-cert-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each(['RSA-SHA256', 'RSA-PSS-SHA256', 'ECDSA-SHA256', 'ECDSA-SHA384'] as const)(
    'a self-signed %s CA certificate verifies with OpenSSL',
    (algorithm) => {
      const { der, spki } = selfSignedCa(algorithm);
      const path = join(dir, `${algorithm}.pem`);
      writeFileSync(path, toPem(der, 'CERTIFICATE'));
      expect(execFileSync('openssl', ['verify', '-CAfile', path, '-attime', String(Date.parse('2030-01-01') / 1000), path]).toString()).toBe(`${path}: OK\n`);
      expect(verifyCertificateSignature(parseCertificate(der), spki)).toBe(true);
    },
  );

  it('writes every field where RFC 5280 puts it', () => {
    const { der, tbs, spki } = selfSignedCa('RSA-SHA256');
    const cert = AsnConvert.parse(der, Certificate);
    expect(Buffer.from(cert.tbsCertificateRaw!)).toEqual(tbs);
    expect(cert.tbsCertificate.version).toBe(2); // v3
    expect(Buffer.from(cert.tbsCertificate.serialNumber).toString('hex')).toBe('0123456789abcdef0123456789abcdef');
    expect(Buffer.from(AsnConvert.serialize(cert.tbsCertificate.issuer))).toEqual(encodeName(issuerDn));
    expect(cert.tbsCertificate.validity.notBefore.utcTime).toEqual(new Date('2025-01-01T00:00:00Z'));
    expect(Buffer.from(AsnConvert.serialize(cert.tbsCertificate.subjectPublicKeyInfo))).toEqual(spki);
    expect(cert.tbsCertificate.extensions!.map((e) => [e.extnID, e.critical])).toEqual([
      ['2.5.29.19', true], ['2.5.29.15', true], ['2.5.29.14', false], ['2.5.29.35', false], ['2.5.29.32', false],
    ]);

    const parsed = parseCertificate(der);
    expect(parsed.basicConstraints).toEqual({ ca: true });
    expect(parsed.subjectKeyIdentifier).toEqual(subjectKeyIdentifierOf(spki));
    expect(parsed.notAfter).toEqual(new Date('2045-01-01T00:00:00Z'));

    const text = execFileSync('openssl', ['x509', '-inform', 'DER', '-noout', '-text', '-nameopt', 'utf8,sep_comma_plus_space'], { input: der }).toString();
    expect(text).toContain('Issuer: C=TW, O=行政院, OU=內政部憑證管理中心');
    expect(text).toContain('X509v3 Basic Constraints: critical\n                CA:TRUE');
    expect(text).toContain('X509v3 Key Usage: critical\n                Certificate Sign, CRL Sign');
    expect(text).toContain('Policy: 2.16.886.101.0.3.3');
    expect(text).toContain('Signature Algorithm: sha256WithRSAEncryption');
  });

  it('uses UTCTime through 2049 and GeneralizedTime from 2050 (RFC 5280 §4.1.2.5)', () => {
    const { der } = selfSignedCa('ECDSA-SHA256', { notBefore: new Date('2049-12-31T23:59:59Z'), notAfter: new Date('2050-01-01T00:00:00Z') });
    const validity = AsnConvert.parse(der, Certificate).tbsCertificate.validity;
    expect(validity.notBefore.utcTime).toEqual(new Date('2049-12-31T23:59:59Z'));
    expect(validity.notBefore.generalTime).toBeUndefined();
    expect(validity.notAfter.generalTime).toEqual(new Date('2050-01-01T00:00:00Z'));
    expect(validity.notAfter.utcTime).toBeUndefined();
    // The DER itself: 0x17 (UTCTime) "491231235959Z", then 0x18 (GeneralizedTime) "20500101000000Z".
    const hex = der.toString('hex');
    expect(hex).toContain(`170d${Buffer.from('491231235959Z').toString('hex')}180f${Buffer.from('20500101000000Z').toString('hex')}`);
  });

  it('copies an issuer given as DER byte for byte', () => {
    const { der } = selfSignedCa('ECDSA-SHA256');
    const issuer = parseCertificate(der);
    const leafKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' });
    const tbs = buildTbsCertificate({
      serialNumber: Buffer.from([1]),
      signatureAlgorithm: 'ECDSA-SHA256',
      issuer: { der: issuer.subjectDer },
      subject: [{ type: 'C', value: 'TW' }, { type: 'CN', value: '王小明' }],
      validity: { notBefore: new Date('2025-01-01T00:00:00Z'), notAfter: new Date('2030-01-01T00:00:00Z') },
      subjectPublicKeyInfo: leafKey,
      extensions: [],
    });
    expect(tbs.includes(issuer.subjectDer)).toBe(true);
  });

  describe('refuses bad specs', () => {
    const { spki } = selfSignedCa('ECDSA-SHA256');
    const base: TbsCertificateSpec = {
      serialNumber: Buffer.from([1]),
      signatureAlgorithm: 'ECDSA-SHA256',
      issuer: issuerDn,
      subject: issuerDn,
      validity: { notBefore: new Date('2025-01-01T00:00:00Z'), notAfter: new Date('2030-01-01T00:00:00Z') },
      subjectPublicKeyInfo: spki,
      extensions: [],
    };
    it.each<[string, Partial<TbsCertificateSpec>, string]>([
      ['a negative serial', { serialNumber: Buffer.from([0x80]) }, 'serial number must be positive'],
      ['a fractional second', { validity: { notBefore: new Date('2025-01-01T00:00:00.5Z'), notAfter: new Date('2030-01-01T00:00:00Z') } }, 'notBefore must be a whole second'],
      ['an inverted validity', { validity: { notBefore: new Date('2030-01-01T00:00:00Z'), notAfter: new Date('2025-01-01T00:00:00Z') } }, 'notAfter must be after notBefore'],
      ['a duplicate extension', { extensions: [keyUsageExtension(['keyCertSign']), keyUsageExtension(['crlSign'])] }, 'extension 2.5.29.15 appears more than once'],
      ['a malformed public key', { subjectPublicKeyInfo: Buffer.from('3000', 'hex') }, 'malformed SubjectPublicKeyInfo'],
      ['an issuer that is not a Name', { issuer: { der: Buffer.from('0500', 'hex') } }, 'issuer is not a DER Name'],
    ])('%s', (_, change, message) => {
      expect(() => buildTbsCertificate({ ...base, ...change })).toThrow(`build TBS certificate: ${message}`);
    });

    it('an assembly with another algorithm than the TBS names', () => {
      const tbs = buildTbsCertificate(base);
      expect(() => assembleCertificate(tbs, 'ECDSA-SHA384', Buffer.from([1]))).toThrow(
        'assemble certificate: the TBS names a different signature algorithm than ECDSA-SHA384',
      );
    });
  });
});

describe('TBSCertificate and Certificate written directly in DER (decision 0019)', () => {
  const random = seededRandom(SEED);

  /** The same spec through the schema layer, as buildTbsCertificate did before: the reference. */
  function schemaTbs(spec: TbsCertificateSpec): Buffer {
    const name = (n: TbsCertificateSpec['issuer']) => ('der' in n ? AsnConvert.parse(n.der, Name) : buildName(n));
    const validity = new Validity();
    validity.notBefore = timeOf(spec.validity.notBefore);
    validity.notAfter = timeOf(spec.validity.notAfter);
    const tbs = new TBSCertificate({
      version: spec.extensions.length > 0 ? Version.v3 : Version.v1,
      serialNumber: toArrayBuffer(spec.serialNumber),
      signature: signatureAlgorithmIdentifier(spec.signatureAlgorithm),
      issuer: name(spec.issuer),
      validity,
      subject: name(spec.subject),
      subjectPublicKeyInfo: AsnConvert.parse(spec.subjectPublicKeyInfo, SubjectPublicKeyInfo),
    });
    if (spec.extensions.length > 0) tbs.extensions = new Extensions(spec.extensions.map(toAsnExtension));
    return Buffer.from(AsnConvert.serialize(tbs));
  }

  it(`builds 200 random TBSCertificates exactly as the schema layer does, and assembles them exactly too (seed ${SEED})`, () => {
    const seen = { generalizedTime: 0, utcTime: 0, longForm: 0, v1: 0 };
    for (let i = 0; i < 200; i++) {
      const spec = randomTbsSpec(random);
      const tbs = buildTbsCertificate(spec);
      expect(tbs.toString('hex')).toBe(schemaTbs(spec).toString('hex'));
      const signature = random.bytes(random.pick([64, 256, 512, 71]));
      const certificate = assembleCertificate(tbs, spec.signatureAlgorithm, signature);
      const reference = new Certificate({ tbsCertificate: AsnConvert.parse(tbs, TBSCertificate), signatureAlgorithm: signatureAlgorithmIdentifier(spec.signatureAlgorithm), signatureValue: toArrayBuffer(signature) });
      expect(certificate.toString('hex')).toBe(Buffer.from(AsnConvert.serialize(reference)).toString('hex'));
      expect(readCertificateParts(certificate)).toEqual({ tbsDer: tbs, signatureAlgorithmDer: signatureAlgorithmIdentifierDer(spec.signatureAlgorithm), signature });
      if (spec.validity.notAfter.getUTCFullYear() >= 2050) seen.generalizedTime++;
      if (spec.validity.notBefore.getUTCFullYear() < 2050) seen.utcTime++;
      if (tbs[1]! >= 0x82) seen.longForm++;
      if (spec.extensions.length === 0) seen.v1++;
    }
    expect(Object.values(seen).every((n) => n > 5)).toBe(true);
  });

  it('signs and verifies what it assembles: verifyCertificateSignatureDer agrees with the schema path and OpenSSL', () => {
    for (const algorithm of ['RSA-SHA256', 'RSA-PSS-SHA256', 'ECDSA-SHA256', 'ECDSA-SHA384'] as const) {
      const { der, spki } = selfSignedCa(algorithm);
      expect(verifyCertificateSignatureDer(der, spki)).toBe(true);
      expect(verifyCertificateSignature(parseCertificate(der), spki)).toBe(true);
      const tampered = Buffer.from(der);
      tampered[tampered.length - 1] = tampered[tampered.length - 1]! ^ 1;
      expect(verifyCertificateSignatureDer(tampered, spki)).toBe(false);
    }
    expect(() => readCertificateParts(Buffer.from('3003020101', 'hex'))).toThrow('read certificate: not a DER certificate');
  });

  it('refuses a TBS that is not one, before assembling anything', () => {
    expect(() => assembleCertificate(Buffer.from('3000', 'hex'), 'RSA-SHA256', Buffer.from([1]))).toThrow('assemble certificate: TBS is not a DER TBSCertificate');
    expect(() => assembleCertificate(Buffer.concat([selfSignedCa('RSA-SHA256').tbs, Buffer.from([0])]), 'RSA-SHA256', Buffer.from([1]))).toThrow('TBS is not a DER TBSCertificate');
  });
});
