import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PkiError } from '@pki/kit';
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
  subjectKeyIdentifierExtension,
} from './extensions';
import * as oid from './oids';
import { fromPem } from './pem';
import { parseCertificate } from './certificate';

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
