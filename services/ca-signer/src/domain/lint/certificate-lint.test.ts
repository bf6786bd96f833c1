import { generateKeyPairSync } from 'node:crypto';
import { FixedClock, PkiError } from '@pki/kit';
import {
  authorityInfoAccessExtension,
  authorityKeyIdentifierExtension,
  basicConstraintsExtension,
  buildTbsCertificate,
  type CertificateExtension,
  certificatePoliciesExtension,
  crlDistributionPointsExtension,
  decodeTbsCertificate,
  derBytes,
  derChildren,
  encodeName,
  extendedKeyUsageExtension,
  id_kp_serverAuth,
  keyUsageExtension,
  ocspNoCheckExtension,
  parseCertificate,
  type ParsedCertificate,
  readDerElement,
  subjectAltNameExtension,
  subjectDirectoryAttributesExtension,
  subjectKeyIdentifierExtension,
  type TbsCertificateSpec,
} from '@pki/x509';
import { FakeKeyManager } from '../../adapters/fake';
import { createCaHierarchy } from '../ca-hierarchy';
import { type CertificateProfileName, certificateProfiles } from '../certificate-profiles';
import { type IssueCertificateRequest, type IssuingCa, prepareCertificate } from '../issuance';
import { assertLintClean, lintTbsCertificate } from './index';

const spkiOf = (pair: { publicKey: { export(o: { format: 'der'; type: 'spki' }): Buffer } }) => pair.publicKey.export({ format: 'der', type: 'spki' });
const rsa2048 = spkiOf(generateKeyPairSync('rsa', { modulusLength: 2048 }));
const rsa3072 = spkiOf(generateKeyPairSync('rsa', { modulusLength: 3072 }));
const p256 = spkiOf(generateKeyPairSync('ec', { namedCurve: 'P-256' }));
const ed25519 = spkiOf(generateKeyPairSync('ed25519'));

const clock = new FixedClock(new Date('2025-03-01T08:00:00Z'));
let issuer: IssuingCa;
let issuerCert: ParsedCertificate;
let rootCert: ParsedCertificate;
const serial = Buffer.from('3a0102030405060708090a0b0c0d0e0f', 'hex');

const REQUESTS: Record<CertificateProfileName, Omit<IssueCertificateRequest, 'issuer' | 'profile'>> = {
  citizenSignature: {
    subject: [{ type: 'C', value: 'TW' }, { type: 'CN', value: '王小明' }, { type: 'serialNumber', value: '0000000012345678' }],
    publicKeySpki: rsa2048,
    nationalIdLastFour: '6789',
    email: 'citizen@example.tw',
  },
  citizenEncryption: {
    subject: [{ type: 'C', value: 'TW' }, { type: 'CN', value: '王小明' }, { type: 'serialNumber', value: '0000000012345678' }],
    publicKeySpki: rsa2048,
  },
  citizenMobile: {
    subject: [{ type: 'C', value: 'TW' }, { type: 'CN', value: '王小明' }, { type: 'serialNumber', value: '0000000012345678' }],
    publicKeySpki: p256,
    nationalIdLastFour: '6789',
  },
  ocspResponder: { subject: [{ type: 'C', value: 'TW' }, { type: 'O', value: '內政部' }, { type: 'CN', value: 'OCSP 1' }], publicKeySpki: p256, validity: { days: 30 } },
  auditCheckpointSigner: { subject: [{ type: 'C', value: 'TW' }, { type: 'O', value: '內政部' }, { type: 'CN', value: 'Audit' }], publicKeySpki: p256 },
  validationReceiptSigner: { subject: [{ type: 'C', value: 'TW' }, { type: 'O', value: '內政部' }, { type: 'CN', value: 'Validation Receipts' }], publicKeySpki: p256 },
  agencyClient: {
    subject: [{ type: 'C', value: 'TW' }, { type: 'O', value: '財政部' }, { type: 'OU', value: '報稅' }, { type: 'CN', value: 'MOF-0001' }],
    publicKeySpki: rsa2048,
  },
  serviceMtls: { subject: [{ type: 'CN', value: 'ocsp' }], publicKeySpki: p256, dnsNames: ['ocsp.pki.internal'] },
};

beforeAll(async () => {
  const hierarchy = await createCaHierarchy(new FakeKeyManager(), { clock });
  issuer = {
    ...hierarchy.issuing,
    crl: { baseUrl: 'http://crl.example.tw/crl', partitions: 16 },
    ocspUrls: ['http://ocsp.example.tw/'],
    caIssuersUrls: ['http://pki.example.tw/ca.crt'],
  };
  issuerCert = parseCertificate(hierarchy.issuing.certificateDer);
  rootCert = parseCertificate(hierarchy.root.certificateDer);
});

/** The TBS prepareCertificate builds for a profile, as a spec that rebuilds it byte for byte. */
function baseSpec(profile: CertificateProfileName): TbsCertificateSpec {
  const prepared = prepareCertificate({ clock, serials: () => serial }, { issuer, profile, ...REQUESTS[profile] });
  const tbs = decodeTbsCertificate(prepared.tbsDer);
  const spec: TbsCertificateSpec = {
    serialNumber: tbs.serialNumber,
    signatureAlgorithm: prepared.signatureAlgorithm,
    issuer: { der: tbs.issuerDer },
    subject: { der: tbs.subjectDer },
    validity: { notBefore: prepared.notBefore, notAfter: prepared.notAfter },
    subjectPublicKeyInfo: tbs.subjectPublicKeyInfo,
    extensions: tbs.extensions!.map(({ extnID, critical, value }) => ({ extnID, critical, value })),
  };
  expect(buildTbsCertificate(spec)).toEqual(prepared.tbsDer);
  return spec;
}

const context = (profile: CertificateProfileName) => ({ profile: certificateProfiles[profile], issuer: issuerCert, now: clock.now() });

function codes(tbsDer: Uint8Array, profile: CertificateProfileName, extra: Partial<Parameters<typeof lintTbsCertificate>[1]> = {}): string[] {
  return lintTbsCertificate(tbsDer, { ...context(profile), ...extra }).errors.map((f) => f.code);
}

// --- DER surgery, for encodings the builders refuse to make --------------------------------------

function tlv(tag: number, content: Uint8Array): Buffer {
  const n = content.length;
  const length = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...length]), content]);
}

/** The TBS with top-level field `index` replaced by `replacement` (or removed, or with `insert` added before it). */
function withField(tbsDer: Buffer, index: number, replacement: Buffer | null, insert = false): Buffer {
  const fields = derChildren(tbsDer, readDerElement(tbsDer, 0)).map((e) => derBytes(tbsDer, e));
  if (insert) fields.splice(index, 0, replacement!);
  else if (replacement === null) fields.splice(index, 1);
  else fields[index] = replacement;
  return tlv(0x30, Buffer.concat(fields));
}

const FIELD = { version: 0, serial: 1, signature: 2, issuer: 3, validity: 4, subject: 5, spki: 6, extensions: 7 } as const;
const utcTime = (text: string) => tlv(0x17, Buffer.from(text, 'latin1'));
const generalizedTime = (text: string) => tlv(0x18, Buffer.from(text, 'latin1'));
const oidDer = (dotted: string) => {
  const [a, b, ...rest] = dotted.split('.').map(Number);
  const bytes = [a! * 40 + b!];
  for (const arc of rest) {
    const chunk = [arc & 0x7f];
    for (let v = arc >> 7; v > 0; v >>= 7) chunk.unshift((v & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return tlv(0x06, Buffer.from(bytes));
};
/** A Name from RDNs of [attribute OID, string tag, value bytes]. */
const nameDer = (rdns: Array<Array<[string, number, Buffer]>>) =>
  tlv(0x30, Buffer.concat(rdns.map((rdn) => tlv(0x31, Buffer.concat(rdn.map(([o, tag, v]) => tlv(0x30, Buffer.concat([oidDer(o), tlv(tag, v)]))))))));
const utf8 = (s: string) => Buffer.from(s, 'utf8');
const citizenName = (c: [number, Buffer], cn: [number, Buffer], sn: [number, Buffer]) =>
  nameDer([[['2.5.4.6', ...c]], [['2.5.4.3', ...cn]], [['2.5.4.5', ...sn]]]);
const PRINTABLE = 0x13;
const UTF8 = 0x0c;

const replaceExtension = (spec: TbsCertificateSpec, extension: CertificateExtension): TbsCertificateSpec => ({
  ...spec,
  extensions: spec.extensions.map((e) => (e.extnID === extension.extnID ? extension : e)),
});
const dropExtension = (spec: TbsCertificateSpec, extnID: string): TbsCertificateSpec => ({ ...spec, extensions: spec.extensions.filter((e) => e.extnID !== extnID) });
const addExtension = (spec: TbsCertificateSpec, extension: CertificateExtension): TbsCertificateSpec => ({ ...spec, extensions: [...spec.extensions, extension] });
const build = buildTbsCertificate;

describe('lintTbsCertificate', () => {
  it.each(Object.keys(certificateProfiles) as CertificateProfileName[])('finds a correct %s certificate clean', (profile) => {
    const result = lintTbsCertificate(build(baseSpec(profile)), context(profile));
    expect(result.errors).toEqual([]);
    // The only warning is the citizen profiles' documented deviation.
    expect(result.warnings.map((w) => w.code)).toEqual(certificateProfiles[profile].deviations.map((d) => d.code));
  });

  it('reports the hash of the bytes it linted', () => {
    const tbs = build(baseSpec('citizenSignature'));
    expect(lintTbsCertificate(tbs, context('citizenSignature')).tbsSha256).toMatch(/^[0-9a-f]{64}$/);
  });

  type Case = [string, CertificateProfileName, () => Buffer, string[], Partial<Parameters<typeof lintTbsCertificate>[1]>?];
  const LATE = new Date('2044-06-01T00:00:00Z');

  describe('structure, version, serial and algorithm', () => {
    it.each<Case>([
      ['bytes that are not a TBSCertificate', 'citizenSignature', () => Buffer.from('300302012a', 'hex'), ['e_tbs_malformed']],
      ['a BOOLEAN DEFAULT FALSE written out (BER, not DER)', 'citizenSignature', () => {
        const tbs = build(baseSpec('citizenSignature'));
        const decoded = decodeTbsCertificate(tbs);
        const extensions = decoded.extensions!.map((e) => tlv(0x30, Buffer.concat([oidDer(e.extnID), tlv(0x01, Buffer.from([0])), tlv(0x04, e.value)])));
        return withField(tbs, FIELD.extensions, tlv(0xa3, tlv(0x30, Buffer.concat(extensions))));
      }, ['e_tbs_not_der']],
      ['version v2', 'citizenSignature', () => withField(build(baseSpec('citizenSignature')), FIELD.version, Buffer.from('a003020101', 'hex')), ['e_invalid_certificate_version']],
      ['a subjectUniqueID', 'citizenSignature', () => withField(build(baseSpec('citizenSignature')), FIELD.extensions, Buffer.from('820200ff', 'hex'), true), ['e_cert_contains_unique_identifier']],
      ['a negative serial', 'citizenSignature', () => withField(build(baseSpec('citizenSignature')), FIELD.serial, tlv(0x02, Buffer.alloc(16, 0x80))), ['e_serial_number_not_positive']],
      ['serial zero', 'citizenSignature', () => withField(build(baseSpec('citizenSignature')), FIELD.serial, Buffer.from('020100', 'hex')), ['e_serial_number_not_positive', 'e_serial_number_low_entropy']],
      ['a serial with a superfluous leading zero', 'citizenSignature', () => withField(build(baseSpec('citizenSignature')), FIELD.serial, tlv(0x02, Buffer.concat([Buffer.from([0]), serial]))), ['e_serial_number_not_minimally_encoded']],
      ['a 21-octet serial', 'citizenSignature', () => withField(build(baseSpec('citizenSignature')), FIELD.serial, tlv(0x02, Buffer.alloc(21, 0x11))), ['e_serial_number_longer_than_20_octets']],
      ['an 8-octet serial (63 bits)', 'citizenSignature', () => build({ ...baseSpec('citizenSignature'), serialNumber: Buffer.alloc(8, 0x7f) }), ['e_serial_number_low_entropy']],
      ['sha1WithRSAEncryption', 'citizenSignature', () => withField(build(baseSpec('citizenSignature')), FIELD.signature, Buffer.from('300d06092a864886f70d0101050500', 'hex')), ['e_signature_algorithm_not_allowed']],
      ['sha256WithRSAEncryption without its NULL parameters', 'citizenSignature', () => withField(build(baseSpec('citizenSignature')), FIELD.signature, Buffer.from('300b06092a864886f70d01010b', 'hex')), ['e_signature_algorithm_not_allowed']],
      ['ECDSA under an RSA issuer', 'citizenSignature', () => build({ ...baseSpec('citizenSignature'), signatureAlgorithm: 'ECDSA-SHA256' }), ['e_signature_algorithm_mismatch_issuer_key']],
      ["an issuer DN other than the issuer's subject", 'citizenSignature', () => build({ ...baseSpec('citizenSignature'), issuer: { der: rootCert.subjectDer } }), ['e_issuer_dn_mismatch']],
    ])('%s', (_, profile, tbs, expected, ...[extra]) => {
      // A rest parameter: jest takes a named parameter beyond the row's length for a `done` callback.
      expect(codes(tbs(), profile, extra)).toEqual(expected);
    });
  });

  describe('validity', () => {
    it.each<Case>([
      ['notAfter before notBefore', 'citizenSignature', () => {
        const tbs = build(baseSpec('citizenSignature'));
        return withField(tbs, FIELD.validity, tlv(0x30, Buffer.concat([utcTime('250301080000Z'), utcTime('250228080000Z')])));
      }, ['e_validity_not_after_before_not_before']],
      ['notBefore an hour ahead of the clock', 'citizenSignature', () => {
        const spec = baseSpec('citizenSignature');
        return build({ ...spec, validity: { notBefore: new Date(clock.now().getTime() + 3_600_000), notAfter: spec.validity.notAfter } });
      }, ['e_validity_not_before_in_future']],
      ['six years for a 5-year profile', 'citizenSignature', () => {
        const spec = baseSpec('citizenSignature');
        return build({ ...spec, validity: { notBefore: spec.validity.notBefore, notAfter: new Date('2031-03-01T08:00:00Z') } });
      }, ['e_validity_exceeds_profile']],
      ['91 days for serviceMtls', 'serviceMtls', () => {
        const spec = baseSpec('serviceMtls');
        return build({ ...spec, validity: { notBefore: spec.validity.notBefore, notAfter: new Date(spec.validity.notBefore.getTime() + 91 * 86_400_000) } });
      }, ['e_validity_exceeds_profile']],
      ["notBefore before the issuer's", 'citizenSignature', () => {
        const spec = baseSpec('citizenSignature');
        const notBefore = new Date(issuerCert.notBefore.getTime() - 86_400_000);
        return build({ ...spec, validity: { notBefore, notAfter: new Date(notBefore.getTime() + 365 * 86_400_000) } });
      }, ['e_validity_before_issuer']],
      ["notAfter after the issuer's", 'citizenSignature', () => {
        // The issuing CA is valid 20 years from the clock: until 2045-03-01T08:00:00Z.
        expect(issuerCert.notAfter).toEqual(new Date('2045-03-01T08:00:00Z'));
        return build({ ...baseSpec('citizenSignature'), validity: { notBefore: LATE, notAfter: new Date('2045-03-01T08:00:01Z') } });
      }, ['e_validity_exceeds_issuer'], { now: LATE }],
      ['GeneralizedTime for a date before 2050', 'citizenSignature', () => {
        const tbs = build(baseSpec('citizenSignature'));
        return withField(tbs, FIELD.validity, tlv(0x30, Buffer.concat([generalizedTime('20250301080000Z'), utcTime('300301080000Z')])));
      }, ['e_wrong_time_format_pre2050']],
      ['a UTCTime without seconds', 'citizenSignature', () => {
        const tbs = build(baseSpec('citizenSignature'));
        return withField(tbs, FIELD.validity, tlv(0x30, Buffer.concat([utcTime('2503010800Z'), utcTime('300301080000Z')])));
      }, ['e_tbs_not_der', 'e_validity_time_malformed']],
      ['a GeneralizedTime with fractions of a second', 'citizenSignature', () => {
        const tbs = build(baseSpec('citizenSignature'));
        return withField(tbs, FIELD.validity, tlv(0x30, Buffer.concat([utcTime('250301080000Z'), generalizedTime('20500301080000.5Z')])));
      }, ['e_validity_time_malformed'], { now: clock.now() }],
    ])('%s', (_, profile, tbs, expected, ...[extra]) => {
      // A rest parameter: jest takes a named parameter beyond the row's length for a `done` callback.
      expect(codes(tbs(), profile, extra)).toEqual(expected);
    });

    it('accepts GeneralizedTime from 2050 (RFC 5280 §4.1.2.5); only the issuer (valid to 2045) objects', () => {
      const notBefore = new Date('2049-06-01T00:00:00Z');
      const spec = { ...baseSpec('citizenSignature'), validity: { notBefore, notAfter: new Date('2050-06-01T00:00:00Z') } };
      const tbs = build(spec);
      expect(decodeTbsCertificate(tbs).notAfter).toMatchObject({ encoding: 'generalizedTime', text: '20500601000000Z' });
      expect(codes(tbs, 'citizenSignature', { now: notBefore })).toEqual(['e_validity_exceeds_issuer']);
    });
  });

  describe('subject', () => {
    const cn = (s: string): [number, Buffer] => [UTF8, utf8(s)];
    const tw: [number, Buffer] = [PRINTABLE, Buffer.from('TW')];
    const sn: [number, Buffer] = [PRINTABLE, Buffer.from('0000000012345678')];
    // Spliced in as DER: buildTbsCertificate refuses names that do not re-encode identically.
    const subject = (der: Buffer) => () => withField(build(baseSpec('citizenSignature')), FIELD.subject, der);
    it.each<Case>([
      ['attributes out of order', 'citizenSignature', () => build({ ...baseSpec('citizenSignature'), subject: [{ type: 'CN', value: '王小明' }, { type: 'C', value: 'TW' }, { type: 'serialNumber', value: '0000000012345678' }] }), ['e_subject_layout_mismatch']],
      ['a missing attribute', 'citizenSignature', () => build({ ...baseSpec('citizenSignature'), subject: [{ type: 'C', value: 'TW' }, { type: 'CN', value: '王小明' }] }), ['e_subject_layout_mismatch']],
      ['a multi-valued RDN', 'citizenSignature', subject(nameDer([[['2.5.4.6', PRINTABLE, Buffer.from('TW')]], [['2.5.4.3', UTF8, utf8('王小明')], ['2.5.4.5', PRINTABLE, Buffer.from('0000000012345678')]]])), ['e_subject_multi_valued_rdn']],
      ['C as a UTF8String', 'citizenSignature', subject(citizenName([UTF8, utf8('TW')], cn('王小明'), sn)), ['e_subject_attribute_string_type']],
      ['CN as a PrintableString', 'citizenSignature', subject(citizenName(tw, [PRINTABLE, Buffer.from('Wang')], sn)), ['e_subject_attribute_string_type']],
      ['CN as a BMPString', 'citizenSignature', subject(citizenName(tw, [0x1e, Buffer.from('738b', 'hex')], sn)), ['e_subject_attribute_string_type']],
      ['serialNumber with a character outside PrintableString', 'citizenSignature', subject(citizenName(tw, cn('王小明'), [PRINTABLE, Buffer.from('000000001234567@')])), ['e_subject_printable_string_badalpha', 'e_subject_attribute_not_per_profile']],
      ['an empty CN', 'citizenSignature', subject(citizenName(tw, cn(''), sn)), ['e_subject_attribute_empty']],
      ['a 65-character CN (ub-common-name 64)', 'citizenSignature', subject(citizenName(tw, cn('名'.repeat(65)), sn)), ['e_subject_attribute_too_long']],
      ['C in lower case', 'citizenSignature', subject(citizenName([PRINTABLE, Buffer.from('tw')], cn('王小明'), sn)), ['e_subject_country_not_iso', 'e_subject_attribute_not_per_profile']],
      ['malformed UTF-8', 'citizenSignature', subject(citizenName(tw, [UTF8, Buffer.from('e78e', 'hex')], sn)), ['e_tbs_not_der', 'e_subject_attribute_encoding_invalid']],
      ['a serialNumber that is not 16 digits', 'citizenSignature', () => build({ ...baseSpec('citizenSignature'), subject: [{ type: 'C', value: 'TW' }, { type: 'CN', value: '王小明' }, { type: 'serialNumber', value: '123456789012345' }] }), ['e_subject_attribute_not_per_profile']],
    ])('%s', (_, profile, tbs, expected, ...[extra]) => {
      // A rest parameter: jest takes a named parameter beyond the row's length for a `done` callback.
      expect(codes(tbs(), profile, extra)).toEqual(expected);
    });

    it('never quotes the subject value (personal data) in a finding', () => {
      const result = lintTbsCertificate(subject(citizenName(tw, cn('名'.repeat(65)), [PRINTABLE, Buffer.from('12345')]))(), context('citizenSignature'));
      expect(JSON.stringify(result)).not.toMatch(/名|12345/);
    });
  });

  describe('subject public key', () => {
    it.each<Case>([
      ['RSA-3072 for an RSA-2048 profile', 'citizenSignature', () => {
        const spec = baseSpec('citizenSignature');
        return build(replaceExtension({ ...spec, subjectPublicKeyInfo: rsa3072 }, subjectKeyIdentifierExtension(rsa3072)));
      }, ['e_spki_not_allowed_by_profile']],
      ["the issuer's own key", 'citizenSignature', () => {
        const spec = baseSpec('citizenSignature');
        return build(replaceExtension({ ...spec, subjectPublicKeyInfo: issuerCert.subjectPublicKeyInfo }, subjectKeyIdentifierExtension(issuerCert.subjectPublicKeyInfo)));
      }, ['e_spki_is_issuer_key']],
      ['an Ed25519 key', 'agencyClient', () => withField(build(baseSpec('agencyClient')), FIELD.spki, ed25519), ['e_spki_malformed']],
    ])('%s', (_, profile, tbs, expected, ...[extra]) => {
      // A rest parameter: jest takes a named parameter beyond the row's length for a `done` callback.
      expect(codes(tbs(), profile, extra)).toEqual(expected);
    });
  });

  describe('extensions', () => {
    const KU = '2.5.29.15';
    const AKI = '2.5.29.35';
    const SKI = '2.5.29.14';
    const NOCHECK = '1.3.6.1.5.5.7.48.1.5';
    it.each<Case>([
      ['no extensions at all', 'citizenSignature', () => build({ ...baseSpec('citizenSignature'), extensions: [] }), ['e_invalid_certificate_version', 'e_extensions_missing', 'e_ext_authority_key_identifier_missing', 'e_ext_subject_key_identifier_missing', 'e_ext_key_usage_missing', 'e_ext_certificate_policies_missing', 'e_ext_crl_distribution_points_missing', 'e_ext_authority_info_access_missing']],
      ['an extension twice', 'citizenSignature', () => {
        const tbs = build(baseSpec('citizenSignature'));
        const decoded = decodeTbsCertificate(tbs);
        const one = decoded.extensions!.find((e) => e.extnID === SKI)!;
        const encoded = [...decoded.extensions!, one].map((e) => tlv(0x30, Buffer.concat([oidDer(e.extnID), ...(e.critical ? [Buffer.from('0101ff', 'hex')] : []), tlv(0x04, e.value)])));
        return withField(tbs, FIELD.extensions, tlv(0xa3, tlv(0x30, Buffer.concat(encoded))));
      }, ['e_ext_duplicate']],
      ['an unknown extension', 'citizenSignature', () => build(addExtension(baseSpec('citizenSignature'), { extnID: '1.2.3.4', critical: false, value: Buffer.from('0500', 'hex') })), ['e_ext_unknown']],
      ['no authorityKeyIdentifier', 'citizenSignature', () => build(dropExtension(baseSpec('citizenSignature'), AKI)), ['e_ext_authority_key_identifier_missing']],
      ['keyUsage critical against the citizen profile', 'citizenSignature', () => build(replaceExtension(baseSpec('citizenSignature'), keyUsageExtension(['digitalSignature', 'nonRepudiation'], { critical: true }))), ['e_ext_key_usage_criticality']],
      ['keyUsage not critical in the agency profile', 'agencyClient', () => build(replaceExtension(baseSpec('agencyClient'), keyUsageExtension(['digitalSignature'], { critical: false }))), ['e_ext_key_usage_criticality']],
      ['a keyUsage value that does not parse', 'citizenSignature', () => build(replaceExtension(baseSpec('citizenSignature'), { extnID: KU, critical: false, value: Buffer.from('0401ff', 'hex') })), ['e_ext_key_usage_malformed']],
      ['keyUsage bits other than the profile', 'citizenSignature', () => build(replaceExtension(baseSpec('citizenSignature'), keyUsageExtension(['digitalSignature'], { critical: false }))), ['e_key_usage_mismatch']],
      ['keyEncipherment for an EC key', 'agencyClient', () => {
        const spec = baseSpec('agencyClient');
        return build(replaceExtension(replaceExtension({ ...spec, subjectPublicKeyInfo: p256 }, subjectKeyIdentifierExtension(p256)), keyUsageExtension(['digitalSignature', 'keyEncipherment'])));
      }, ['e_key_usage_mismatch', 'e_key_usage_not_for_ec_key']],
      ['serverAuth for the agency client profile', 'agencyClient', () => build(replaceExtension(baseSpec('agencyClient'), extendedKeyUsageExtension([id_kp_serverAuth]))), ['e_extended_key_usage_mismatch']],
      ['an extKeyUsage on a citizen certificate', 'citizenSignature', () => build(addExtension(baseSpec('citizenSignature'), extendedKeyUsageExtension([id_kp_serverAuth]))), ['e_ext_extended_key_usage_not_allowed']],
      ['cA TRUE in an end-entity certificate', 'serviceMtls', () => build(replaceExtension(baseSpec('serviceMtls'), basicConstraintsExtension({ ca: true }))), ['e_basic_constraints_ca_in_end_entity']],
      ['a subjectKeyIdentifier of another key', 'citizenSignature', () => build(replaceExtension(baseSpec('citizenSignature'), subjectKeyIdentifierExtension(rsa3072))), ['e_subject_key_identifier_not_method_1']],
      ["an authorityKeyIdentifier that is not the issuer's", 'citizenSignature', () => build(replaceExtension(baseSpec('citizenSignature'), authorityKeyIdentifierExtension(rootCert.subjectKeyIdentifier!))), ['e_authority_key_identifier_mismatch']],
      ['an authorityKeyIdentifier without keyIdentifier', 'citizenSignature', () => build(replaceExtension(baseSpec('citizenSignature'), { extnID: AKI, critical: false, value: Buffer.from('3000', 'hex') })), ['e_authority_key_identifier_no_key_identifier']],
      ['another certificate policy', 'citizenSignature', () => build(replaceExtension(baseSpec('citizenSignature'), certificatePoliciesExtension(['2.16.886.101.0.3.1']))), ['e_certificate_policies_mismatch']],
      ['an ldap CRL distribution point', 'citizenSignature', () => build(replaceExtension(baseSpec('citizenSignature'), crlDistributionPointsExtension(['ldap://ldap.example.tw/cn=crl']))), ['e_crl_distribution_point_uri_invalid']],
      ['a CRL distribution point other than the partition expected', 'citizenSignature', () => build(baseSpec('citizenSignature')), ['e_crl_distribution_point_uri_mismatch'], { publication: { crlUrls: ['http://crl.example.tw/crl/other/p0.crl'] } }],
      ['AIA without the OCSP pointer', 'citizenSignature', () => build(replaceExtension(baseSpec('citizenSignature'), authorityInfoAccessExtension({ caIssuers: ['http://pki.example.tw/ca.crt'] }))), ['e_authority_info_access_ocsp_missing']],
      ['an OCSP pointer in an ocsp-nocheck responder certificate', 'ocspResponder', () => build(replaceExtension(baseSpec('ocspResponder'), authorityInfoAccessExtension({ ocsp: ['http://ocsp.example.tw/'], caIssuers: ['http://pki.example.tw/ca.crt'] }))), ['e_authority_info_access_ocsp_not_allowed']],
      ['an OCSP responder certificate without ocsp-nocheck', 'ocspResponder', () => build(dropExtension(baseSpec('ocspResponder'), NOCHECK)), ['e_ext_ocsp_nocheck_missing']],
      ['ocsp-nocheck that is not NULL', 'ocspResponder', () => build(replaceExtension(baseSpec('ocspResponder'), { extnID: NOCHECK, critical: false, value: Buffer.from('0101ff', 'hex') })), ['e_ext_ocsp_nocheck_malformed']],
      ['ocsp-nocheck on a citizen certificate', 'citizenSignature', () => build(addExtension(baseSpec('citizenSignature'), ocspNoCheckExtension())), ['e_ext_ocsp_nocheck_not_allowed']],
      ['a DNS name in a citizen certificate', 'citizenSignature', () => build(replaceExtension(baseSpec('citizenSignature'), subjectAltNameExtension({ dnsNames: ['citizen.example.tw'] }))), ['e_subject_alt_name_type_not_allowed']],
      ['a SPIFFE ID of another service', 'serviceMtls', () => build(replaceExtension(baseSpec('serviceMtls'), subjectAltNameExtension({ dnsNames: ['ocsp.pki.internal'], uris: ['spiffe://pki.internal/ra'] }))), ['e_subject_alt_name_spiffe_id_mismatch']],
      ['two SPIFFE IDs', 'serviceMtls', () => build(replaceExtension(baseSpec('serviceMtls'), subjectAltNameExtension({ uris: ['spiffe://pki.internal/ocsp', 'spiffe://pki.internal/ra'] }))), ['e_subject_alt_name_spiffe_id_mismatch']],
      ['a single-label DNS name', 'serviceMtls', () => build(replaceExtension(baseSpec('serviceMtls'), subjectAltNameExtension({ dnsNames: ['ocsp'], uris: ['spiffe://pki.internal/ocsp'] }))), ['e_subject_alt_name_dns_invalid']],
      ['no subjectAltName on a service certificate', 'serviceMtls', () => build(dropExtension(baseSpec('serviceMtls'), '2.5.29.17')), ['e_ext_subject_alt_name_missing']],
      ['a directory attribute other than the national ID digits', 'citizenSignature', () => build(replaceExtension(baseSpec('citizenSignature'), subjectDirectoryAttributesExtension([{ type: '2.16.886.1.100.2.1', value: '1' }]))), ['e_subject_directory_attributes_content']],
      ['national ID digits in an agency certificate', 'agencyClient', () => build(addExtension(baseSpec('agencyClient'), subjectDirectoryAttributesExtension([{ type: '2.16.886.1.100.2.51', value: '6789' }]))), ['e_ext_subject_directory_attributes_not_allowed']],
      ['AIA marked critical', 'agencyClient', () => build(replaceExtension(baseSpec('agencyClient'), authorityInfoAccessExtension({ ocsp: ['http://ocsp.example.tw/'], caIssuers: ['http://pki.example.tw/ca.crt'] }, { critical: true }))), ['e_ext_authority_info_access_criticality']],
    ])('%s', (_, profile, tbs, expected, ...[extra]) => {
      // A rest parameter: jest takes a named parameter beyond the row's length for a `done` callback.
      expect(codes(tbs(), profile, extra)).toEqual(expected);
    });

    it('warns (w_key_usage_not_critical) on a non-critical keyUsage, the citizen deviation', () => {
      const result = lintTbsCertificate(build(baseSpec('citizenEncryption')), context('citizenEncryption'));
      expect(result).toMatchObject({ errors: [], warnings: [{ code: 'w_key_usage_not_critical', message: 'keyUsage SHOULD be critical (RFC 5280 §4.2.1.3)' }] });
    });

    it('checks the exact publication URIs when it is told them', () => {
      const tbs = build(baseSpec('agencyClient'));
      const publication = { ocspUrls: ['http://ocsp.example.tw/'], caIssuersUrls: ['http://pki.example.tw/ca.crt'] };
      expect(codes(tbs, 'agencyClient', { publication })).toEqual([]);
      expect(codes(tbs, 'agencyClient', { publication: { ...publication, ocspUrls: ['http://other.example.tw/'] } })).toEqual(['e_authority_info_access_ocsp_uri_mismatch']);
    });
  });
});

describe('assertLintClean', () => {
  it('passes a result without errors, warnings included', () => {
    expect(() => assertLintClean({ errors: [], warnings: [{ code: 'w_key_usage_not_critical', message: 'm' }], tbsSha256: '00' }, 'issue certificate')).not.toThrow();
  });

  it('refuses with INTERNAL, the codes in the message and in details', () => {
    let caught: unknown;
    try {
      assertLintClean(
        { errors: [{ code: 'e_a', message: 'first' }, { code: 'e_b', message: 'second' }], warnings: [{ code: 'w_c', message: 'third' }], tbsSha256: '00' },
        'issue certificate',
      );
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(PkiError);
    expect(caught).toMatchObject({
      code: 'INTERNAL',
      message: 'issue certificate: pre-issuance lint refused the certificate: e_a (first); e_b (second)',
      details: { lintErrors: 'e_a,e_b', lintWarnings: 'w_c' },
    });
  });
});

describe('encodeName helper agrees with DER surgery', () => {
  it('builds the same citizen DN', () => {
    const der = encodeName([{ type: 'C', value: 'TW' }, { type: 'CN', value: '王小明' }, { type: 'serialNumber', value: '0000000012345678' }]);
    expect(der).toEqual(citizenName([PRINTABLE, Buffer.from('TW')], [UTF8, utf8('王小明')], [PRINTABLE, Buffer.from('0000000012345678')]));
  });
});
