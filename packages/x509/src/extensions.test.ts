import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  AccessDescription,
  Attribute,
  AuthorityInfoAccessSyntax,
  AuthorityKeyIdentifier,
  CRLDistributionPoints,
  DirectoryString,
  DistributionPoint,
  DistributionPointName,
  GeneralName,
  KeyIdentifier,
  SubjectAlternativeName,
  SubjectDirectoryAttributes,
  SubjectKeyIdentifier,
} from '@peculiar/asn1-x509';
import { PkiError } from '@pki/kit';
import { randomAttributeValue, randomEmail, randomSpki, randomUri, SEED, seededRandom } from '../test/random-inputs';
import {
  authorityInfoAccessExtension,
  authorityKeyIdentifierExtension,
  basicConstraintsExtension,
  certificatePoliciesExtension,
  crlDistributionPointsExtension,
  extendedKeyUsageExtension,
  keyUsageExtension,
  subjectAltNameEmailExtension,
  subjectDirectoryAttributesExtension,
  subjectAltNameExtension,
  subjectKeyIdentifierExtension,
} from './extensions';
import * as oid from './oids';
import { fromPem } from './pem';
import { parseCertificate } from './certificate';
import { subjectKeyIdentifierOf, toArrayBuffer } from './public-key';

const ascii = (s: string) => Buffer.from(s, 'ascii').toString('hex');

describe('extension builders', () => {
  it('basicConstraints: CA with pathLen 0, critical by default (RFC 5280 §4.2.1.9)', () => {
    expect(basicConstraintsExtension({ ca: true, pathLenConstraint: 0 })).toEqual({
      extnID: '2.5.29.19', critical: true, value: Buffer.from('30060101ff020100', 'hex'),
    });
    // cA FALSE is the DEFAULT and so is omitted in DER.
    expect(basicConstraintsExtension({ ca: false }, { critical: false }).value.toString('hex')).toBe('3000');
    expect(() => basicConstraintsExtension({ ca: false, pathLenConstraint: 0 })).toThrow('pathLenConstraint requires cA');
  });

  it('keyUsage: named bits without trailing zero bits', () => {
    expect(keyUsageExtension(['keyCertSign', 'crlSign'])).toEqual({ extnID: '2.5.29.15', critical: true, value: Buffer.from('03020106', 'hex') });
    expect(keyUsageExtension(['digitalSignature', 'nonRepudiation'], { critical: false }).value.toString('hex')).toBe('030206c0');
    expect(keyUsageExtension(['keyEncipherment', 'dataEncipherment']).value.toString('hex')).toBe('03020430');
    expect(() => keyUsageExtension([])).toThrow('at least one usage');
  });

  it('extKeyUsage', () => {
    expect(extendedKeyUsageExtension([oid.id_kp_clientAuth, oid.id_kp_emailProtection])).toEqual({
      extnID: '2.5.29.37', critical: false, value: Buffer.from('301406082b0601050507030206082b06010505070304', 'hex'),
    });
  });

  it('authorityKeyIdentifier carries keyIdentifier [0] only', () => {
    const ext = authorityKeyIdentifierExtension(Buffer.from('0102030405', 'hex'));
    expect(ext).toEqual({ extnID: '2.5.29.35', critical: false, value: Buffer.from('300780050102030405', 'hex') });
  });

  it('certificatePolicies: one PolicyInformation per OID, no duplicates', () => {
    const ext = certificatePoliciesExtension([oid.id_tw_gpki_certpolicy_class3Assurance]);
    // 2.16.886.101.0.3.3 = 60 86 76 65 00 03 03
    expect(ext.value.toString('hex')).toBe('300b3009060760867665000303');
    expect(() => certificatePoliciesExtension(['1.2.3', '1.2.3'])).toThrow('appears more than once');
    expect(() => certificatePoliciesExtension(['not-an-oid'])).toThrow("'not-an-oid' is not an OID");
  });

  it('cRLDistributionPoints: fullName URI', () => {
    const uri = 'http://crl.example.tw/g3.crl';
    const ext = crlDistributionPointsExtension([uri]);
    const n = uri.length; // 28
    expect(ext.value.toString('hex')).toBe(`30${hex1(n + 8)}30${hex1(n + 6)}a0${hex1(n + 4)}a0${hex1(n + 2)}86${hex1(n)}${ascii(uri)}`);
    expect(() => crlDistributionPointsExtension(['ftp://x.tw/a.crl'])).toThrow(PkiError);
    expect(() => crlDistributionPointsExtension(['http://例子.tw/a.crl'])).toThrow('must be an ASCII http, https or ldap URI');
  });

  it('authorityInfoAccess: OCSP then caIssuers', () => {
    const ext = authorityInfoAccessExtension({ ocsp: ['http://o.tw'], caIssuers: ['http://c.tw/ca.cer'] });
    expect(ext.extnID).toBe('1.3.6.1.5.5.7.1.1');
    expect(ext.critical).toBe(false);
    const ocsp = `3017${'06082b06010505073001'}860b${ascii('http://o.tw')}`;
    const ca = `301e${'06082b06010505073002'}8612${ascii('http://c.tw/ca.cer')}`;
    expect(ext.value.toString('hex')).toBe(`3039${ocsp}${ca}`);
  });

  it('subjectDirectoryAttributes: attribute 2.16.886.1.100.2.51 with a PrintableString value', () => {
    const ext = subjectDirectoryAttributesExtension([{ type: oid.id_tw_gca_nationalIdLastFour, value: '6789' }]);
    // SEQUENCE { SEQUENCE { OID 2.16.886.1.100.2.51, SET { PrintableString "6789" } } }
    expect(ext).toEqual({ extnID: '2.5.29.9', critical: false, value: Buffer.from('301330110607608676016402333106130436373839', 'hex') });
    expect(() => subjectDirectoryAttributesExtension([{ type: oid.id_tw_gca_nationalIdLastFour, value: '67*9' }])).toThrow('not a PrintableString');
  });

  it('subjectAltName rfc822Name', () => {
    expect(subjectAltNameEmailExtension(['a.b@moi.gov.tw']).value.toString('hex')).toBe(`3010810e${ascii('a.b@moi.gov.tw')}`);
    expect(() => subjectAltNameEmailExtension(['王@moi.gov.tw'])).toThrow('not an ASCII mailbox address');
    expect(() => subjectAltNameEmailExtension(['Name <a@b.tw>'])).toThrow('not an ASCII mailbox address');
  });

  it('subjectKeyIdentifier equals the one OpenSSL computes (RFC 5280 §4.2.1.2 method 1)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'x509-ski-'));
    try {
      execFileSync('openssl', [
        'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'),
        '-subj', '/CN=ski', '-days', '1', '-addext', 'subjectKeyIdentifier=hash',
      ], { stdio: 'pipe' });
      const cert = parseCertificate(fromPem(readFileSync(join(dir, 'c.pem'), 'utf8'), 'CERTIFICATE'));
      const ours = subjectKeyIdentifierExtension(cert.subjectPublicKeyInfo);
      expect(cert.subjectKeyIdentifier).toHaveLength(20);
      expect(ours.value).toEqual(Buffer.concat([Buffer.from('0414', 'hex'), cert.subjectKeyIdentifier!]));
      expect(ours.value).toEqual(cert.extensions.get(oid.id_ce_subjectKeyIdentifier)!.value);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function hex1(n: number): string {
  return n.toString(16).padStart(2, '0');
}

describe('per-certificate extensions written directly in DER (decision 0019)', () => {
  const random = seededRandom(SEED);
  const schema = (value: object) => Buffer.from(AsnConvert.serialize(value));
  const uri = (uniformResourceIdentifier: string) => new GeneralName({ uniformResourceIdentifier });

  // The same values through the schema layer: the references the direct encodings must match.
  const references = {
    ski: (spki: Buffer) => schema(new SubjectKeyIdentifier(toArrayBuffer(subjectKeyIdentifierOf(spki)))),
    aki: (keyId: Buffer) => schema(new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(toArrayBuffer(keyId)) })),
    crlDp: (uris: string[]) => schema(new CRLDistributionPoints(uris.map((u) => new DistributionPoint({ distributionPoint: new DistributionPointName({ fullName: [uri(u)] }) })))),
    aia: (ocsp: string[], caIssuers: string[]) =>
      schema(
        new AuthorityInfoAccessSyntax([
          ...ocsp.map((u) => new AccessDescription({ accessMethod: oid.id_ad_ocsp, accessLocation: uri(u) })),
          ...caIssuers.map((u) => new AccessDescription({ accessMethod: oid.id_ad_caIssuers, accessLocation: uri(u) })),
        ]),
      ),
    sda: (attributes: Array<{ type: string; value: string; encoding: 'printableString' | 'utf8String' }>) =>
      schema(new SubjectDirectoryAttributes(attributes.map(({ type, value, encoding }) => new Attribute({ type, values: [AsnConvert.serialize(new DirectoryString({ [encoding]: value }))] })))),
    san: (names: { dnsNames: string[]; uris: string[]; emails: string[] }) =>
      schema(
        new SubjectAlternativeName([
          ...names.dnsNames.map((dNSName) => new GeneralName({ dNSName })),
          ...names.uris.map(uri),
          ...names.emails.map((rfc822Name) => new GeneralName({ rfc822Name })),
        ]),
      ),
  };
  const some = <T>(make: () => T, min = 1, max = 3) => Array.from({ length: random.int(min, max) }, make);
  const hostName = () => some(() => Array.from({ length: random.int(1, random.chance(0.1) ? 63 : 10) }, () => random.pick([...'abcdefghijklmnopqrstuvwxyz0123456789'])).join(''), 1, 4).join('.');

  it(`encodes 300 random sets of values exactly as the schema layer does (seed ${SEED})`, () => {
    for (let i = 0; i < 300; i++) {
      const spki = randomSpki(random);
      expect(subjectKeyIdentifierExtension(spki).value).toEqual(references.ski(spki));
      const keyId = random.bytes(random.pick([20, 32, 1, 200]));
      expect(authorityKeyIdentifierExtension(keyId).value).toEqual(references.aki(keyId));
      const crlUris = some(() => randomUri(random));
      expect(crlDistributionPointsExtension(crlUris).value).toEqual(references.crlDp(crlUris));
      const [ocsp, caIssuers] = [some(() => randomUri(random), 0, 2), some(() => randomUri(random), 0, 2)];
      if (ocsp.length + caIssuers.length > 0) expect(authorityInfoAccessExtension({ ocsp, caIssuers }).value).toEqual(references.aia(ocsp, caIssuers));
      const attributes = some(() => {
        const encoding = random.pick(['printableString', 'utf8String'] as const);
        const value = encoding === 'printableString' ? String(random.int(0, 9999)).padStart(4, '0') : randomAttributeValue(random, random.pick(['CN', 'O', 'givenName'] as const));
        return { type: random.pick([oid.id_tw_gca_nationalIdLastFour, oid.id_tw_gca_subjectType, '1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20']), value, encoding };
      });
      expect(subjectDirectoryAttributesExtension(attributes).value).toEqual(references.sda(attributes));
      const names = { dnsNames: some(hostName, 0, 3), uris: some(() => `spiffe://pki.internal/${hostName()}`, 0, 2), emails: some(() => randomEmail(random), 0, 3) };
      if (names.dnsNames.length + names.uris.length + names.emails.length > 0) expect(subjectAltNameExtension(names).value).toEqual(references.san(names));
      if (names.emails.length > 0) expect(subjectAltNameEmailExtension(names.emails).value).toEqual(references.san({ dnsNames: [], uris: [], emails: names.emails }));
    }
  });
});
