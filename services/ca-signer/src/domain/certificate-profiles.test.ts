import { id_kp_clientAuth, id_kp_OCSPSigning, id_kp_serverAuth } from '@pki/x509';
import {
  agencyClientProfile,
  type CertificateProfile,
  certificateProfile,
  certificateProfiles,
  citizenSignatureProfile,
  maxNotAfter,
  ocspResponderProfile,
  serviceMtlsProfile,
  validateProfile,
} from './certificate-profiles';

describe('certificate profiles', () => {
  it.each(Object.entries(certificateProfiles))('%s is valid per RFC 5280 and named after its key', (name, profile) => {
    expect(validateProfile(profile)).toEqual([]);
    expect(profile.name).toBe(name);
  });

  it('documents the one deviation: keyUsage not critical on citizen certificates (domain.md)', () => {
    const deviations = Object.values(certificateProfiles).flatMap((p) => p.deviations.map((d) => `${p.name}: ${d.code}`));
    expect(deviations).toEqual(['citizenSignature: w_key_usage_not_critical', 'citizenEncryption: w_key_usage_not_critical']);
  });

  it('looks profiles up by name only', () => {
    expect(certificateProfile('ocspResponder')).toBe(ocspResponderProfile);
    expect(certificateProfile('toString')).toBeUndefined();
    expect(certificateProfile('tlsServer')).toBeUndefined();
  });

  it('computes the longest validity in years and in days', () => {
    const notBefore = new Date('2024-02-29T12:00:00Z');
    expect(maxNotAfter(citizenSignatureProfile, notBefore)).toEqual(new Date('2029-03-01T12:00:00Z'));
    expect(maxNotAfter(serviceMtlsProfile, notBefore)).toEqual(new Date('2024-05-29T12:00:00Z'));
  });

  describe('validateProfile finds what breaks RFC 5280', () => {
    const broken = (change: Partial<CertificateProfile>, base: CertificateProfile = agencyClientProfile) => validateProfile({ ...base, ...change });
    it.each<[string, () => string[], string]>([
      ['RSA-1024 keys', () => broken({ subjectKeys: [{ type: 'RSA', bits: 1024 }] }), 'agencyClient: RSA-1024 is not an accepted key size (2048, 3072, 4096)'],
      ['no key types', () => broken({ subjectKeys: [] }), 'agencyClient: at least one subject key type is required'],
      ['zero validity', () => broken({ maxValidity: { days: 0 } }), 'agencyClient: maxValidity must be a positive whole number'],
      ['eleven years', () => broken({ maxValidity: { years: 11 } }), 'agencyClient: maxValidity exceeds 10 years'],
      ['keyCertSign in an end-entity profile', () => broken({ keyUsage: { usages: ['digitalSignature', 'keyCertSign'], critical: true } }), 'agencyClient: an end-entity profile must not assert keyCertSign or cRLSign'],
      ['keyEncipherment with EC keys (RFC 5480 §3)', () => broken({ keyUsage: { usages: ['digitalSignature', 'keyEncipherment'], critical: true } }), 'agencyClient: EC keys cannot assert keyEncipherment or dataEncipherment (RFC 5480 §3)'],
      ['encipherOnly without keyAgreement', () => broken({ keyUsage: { usages: ['digitalSignature', 'encipherOnly'], critical: true } }), 'agencyClient: encipherOnly/decipherOnly are undefined without keyAgreement (RFC 5280 §4.2.1.3)'],
      ['a non-critical keyUsage without a documented deviation', () => broken({ keyUsage: { usages: ['digitalSignature'], critical: false } }), 'agencyClient: keyUsage SHOULD be critical (RFC 5280 §4.2.1.3); document the deviation w_key_usage_not_critical if it is not'],
      ['clientAuth with only dataEncipherment (RFC 5280 §4.2.1.12)', () => broken({ subjectKeys: [{ type: 'RSA', bits: 2048 }], keyUsage: { usages: ['dataEncipherment'], critical: true } }), `agencyClient: extKeyUsage ${id_kp_clientAuth} is inconsistent with keyUsage dataEncipherment`],
      ['OCSP signing with nonRepudiation and keyEncipherment', () => broken({ subjectKeys: [{ type: 'RSA', bits: 2048 }], keyUsage: { usages: ['digitalSignature', 'keyEncipherment'], critical: true }, extendedKeyUsage: { purposes: [id_kp_OCSPSigning], critical: false } }), `agencyClient: keyUsage keyEncipherment cannot be used for the only purpose ${id_kp_OCSPSigning}`],
      ['anyExtendedKeyUsage', () => broken({ extendedKeyUsage: { purposes: ['2.5.29.37.0'], critical: false } }), 'agencyClient: anyExtendedKeyUsage defeats the purpose of a profile'],
      ['ocsp-nocheck without OCSP signing', () => broken({ ocspNoCheck: true, authorityInfoAccess: { ocsp: false, caIssuers: true } }), 'agencyClient: id-pkix-ocsp-nocheck requires the id-kp-OCSPSigning purpose'],
      ['ocsp-nocheck with an OCSP pointer', () => broken({ authorityInfoAccess: { ocsp: true, caIssuers: true } }, ocspResponderProfile), 'ocspResponder: an id-pkix-ocsp-nocheck certificate carries no OCSP pointer'],
      ['no way to check revocation', () => broken({ crlDistributionPoint: false, authorityInfoAccess: { ocsp: false, caIssuers: true } }), 'agencyClient: a certificate without id-pkix-ocsp-nocheck needs a CRL distribution point or an OCSP pointer'],
      ['a repeated policy', () => broken({ certificatePolicies: { policies: ['1.2.3', '1.2.3'], critical: false } }), 'agencyClient: certificatePolicies repeats a policy (RFC 5280 §4.2.1.4)'],
      ['an unanchored subject pattern', () => broken({ subject: [{ type: 'C', pattern: /TW/ }, { type: 'CN' }] }), 'agencyClient: the pattern of subject C must be anchored with ^ and $'],
      ['an empty subject', () => broken({ subject: [] }), 'agencyClient: the subject must have at least one attribute'],
      ['a SPIFFE ID without CN', () => broken({ subject: [{ type: 'O' }] }, serviceMtlsProfile), 'serviceMtls: a SPIFFE ID is derived from the subject CN, which the profile lacks'],
      ['serverAuth with keyAgreement only for RSA keys', () => broken({ subjectKeys: [{ type: 'RSA', bits: 2048 }], keyUsage: { usages: ['keyAgreement'], critical: true }, extendedKeyUsage: { purposes: [id_kp_serverAuth], critical: false } }), 'agencyClient: RSA keys cannot assert keyAgreement'],
    ])('%s', (_, problems, expected) => {
      expect(problems()).toContain(expected);
    });
  });
});
