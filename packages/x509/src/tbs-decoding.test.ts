import { generateKeyPairSync } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { GeneralName, SubjectAlternativeName, SubjectDirectoryAttributes, SubjectKeyIdentifier, TBSCertificate } from '@peculiar/asn1-x509';
import { PkiError } from '@pki/kit';
import { damaged, mutatedDer, outcome, randomEmail, randomSpki, randomTbsSpec, SEED, seededRandom } from '../test/random-inputs';
import { buildTbsCertificate } from './certificate';
import { derChildren, readDerElement } from './der';
import {
  decodeAuthorityInfoAccess,
  decodeCrlDistributionPoints,
  decodeExtendedKeyUsage,
  decodeKeyUsage,
  decodeSubjectAltName,
  decodeSubjectDirectoryAttributes,
  decodeSubjectKeyIdentifier,
  isDerNull,
} from './extension-decoding';
import {
  authorityInfoAccessExtension,
  crlDistributionPointsExtension,
  extendedKeyUsageExtension,
  keyUsageExtension,
  ocspNoCheckExtension,
  subjectAltNameExtension,
  subjectDirectoryAttributesExtension,
  subjectKeyIdentifierExtension,
} from './extensions';
import * as oid from './oids';
import { signatureAlgorithmIdentifierDer, signatureAlgorithmOfDer } from './signature-algorithm';
import { decodeOid } from './der';
import { decodeDerString, decodeTbsCertificate } from './tbs-decoding';

const spki = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' });

describe('DER reading', () => {
  it('reads short and long lengths and refuses what DER forbids', () => {
    expect(readDerElement(Buffer.from('0403010203', 'hex'))).toEqual({ tag: 4, start: 0, contentStart: 2, end: 5 });
    const long = Buffer.concat([Buffer.from('048180', 'hex'), Buffer.alloc(128)]);
    expect(readDerElement(long)).toEqual({ tag: 4, start: 0, contentStart: 3, end: 131 });
    expect(() => readDerElement(Buffer.from('04810101', 'hex'))).toThrow('non-minimal length');
    expect(() => readDerElement(Buffer.from('308000000000', 'hex'))).toThrow('indefinite length');
    expect(() => readDerElement(Buffer.from('0405010203', 'hex'))).toThrow('content runs past the end');
    expect(() => derChildren(Buffer.from('04020101', 'hex'), readDerElement(Buffer.from('04020101', 'hex')))).toThrow('is not constructed');
  });

  it('decodes OIDs (X.690 §8.19)', () => {
    expect(decodeOid(Buffer.from('2a864886f70d01010b', 'hex'))).toBe('1.2.840.113549.1.1.11');
    expect(decodeOid(Buffer.from('608676016402 33'.replace(' ', ''), 'hex'))).toBe('2.16.886.1.100.2.51');
    expect(() => decodeOid(Buffer.from('2a8001', 'hex'))).toThrow('non-minimal OID arc');
  });
});

describe('decodeTbsCertificate', () => {
  const tbs = buildTbsCertificate({
    serialNumber: Buffer.from('0102030405060708090a', 'hex'),
    signatureAlgorithm: 'ECDSA-SHA256',
    issuer: [{ type: 'C', value: 'TW' }, { type: 'O', value: '行政院' }],
    subject: [{ type: 'C', value: 'TW' }, { type: 'CN', value: '王小明' }, { type: 'serialNumber', value: '0000000012345678' }],
    validity: { notBefore: new Date('2025-03-01T08:00:00Z'), notAfter: new Date('2050-01-01T00:00:00Z') },
    subjectPublicKeyInfo: spki,
    extensions: [subjectKeyIdentifierExtension(spki), keyUsageExtension(['digitalSignature'])],
  });

  it('keeps every encoding detail of the bytes', () => {
    const decoded = decodeTbsCertificate(tbs);
    expect(decoded).toMatchObject({ canonical: true, version: 2, versionExplicitDefault: false, hasIssuerUniqueId: false, hasSubjectUniqueId: false });
    expect(decoded.serialNumber.toString('hex')).toBe('0102030405060708090a');
    expect(signatureAlgorithmOfDer(decoded.signatureAlgorithm)).toBe('ECDSA-SHA256');
    expect(decoded.subject).toEqual([
      [{ oid: oid.id_at_countryName, stringType: 'printableString', value: 'TW' }],
      [{ oid: oid.id_at_commonName, stringType: 'utf8String', value: '王小明' }],
      [{ oid: oid.id_at_serialNumber, stringType: 'printableString', value: '0000000012345678' }],
    ]);
    expect(decoded.notBefore).toEqual({ encoding: 'utcTime', text: '250301080000Z', date: new Date('2025-03-01T08:00:00Z') });
    // RFC 5280 §4.1.2.5: from 2050, GeneralizedTime.
    expect(decoded.notAfter).toEqual({ encoding: 'generalizedTime', text: '20500101000000Z', date: new Date('2050-01-01T00:00:00Z') });
    expect(decoded.extensions!.map((e) => [e.extnID, e.critical])).toEqual([[oid.id_ce_subjectKeyIdentifier, false], [oid.id_ce_keyUsage, true]]);
    expect(decoded.subjectPublicKeyInfo).toEqual(spki);
  });

  it('refuses trailing bytes and non-TBS input', () => {
    expect(() => decodeTbsCertificate(Buffer.concat([tbs, Buffer.from([0])]))).toThrow(new PkiError('INVALID_ARGUMENT', 'decode TBS certificate: trailing bytes after the TBSCertificate'));
    expect(() => decodeTbsCertificate(Buffer.from('0400', 'hex'))).toThrow('not a SEQUENCE');
  });
});

describe('extension builders and readers', () => {
  it('writes id-pkix-ocsp-nocheck as NULL, non-critical (RFC 6960 §4.2.2.2.1)', () => {
    expect(ocspNoCheckExtension()).toEqual({ extnID: '1.3.6.1.5.5.7.48.1.5', critical: false, value: Buffer.from('0500', 'hex') });
    expect(isDerNull(Buffer.from('0500', 'hex'))).toBe(true);
    expect(isDerNull(Buffer.from('050100', 'hex'))).toBe(false);
  });

  it('writes subjectAltName DNS names, URIs and mailboxes in that order', () => {
    const san = subjectAltNameExtension({ dnsNames: ['ocsp.pki.internal'], uris: ['spiffe://pki.internal/ocsp'], emails: ['a@example.tw'] });
    expect(san.critical).toBe(false);
    expect(san.value.toString('hex')).toBe(
      `303d${'8211'}${Buffer.from('ocsp.pki.internal').toString('hex')}${'861a'}${Buffer.from('spiffe://pki.internal/ocsp').toString('hex')}${'810c'}${Buffer.from('a@example.tw').toString('hex')}`,
    );
    expect(decodeSubjectAltName(san.value)).toEqual([
      { type: 'dns', value: 'ocsp.pki.internal' },
      { type: 'uri', value: 'spiffe://pki.internal/ocsp' },
      { type: 'email', value: 'a@example.tw' },
    ]);
    expect(() => subjectAltNameExtension({ dnsNames: ['Upper.example'] })).toThrow('is not a lower-case DNS host name');
    expect(() => subjectAltNameExtension({ uris: ['no scheme'] })).toThrow('is not an absolute ASCII URI');
    expect(() => subjectAltNameExtension({})).toThrow('at least one name is required');
  });

  it('reads back what the builders write', () => {
    expect(decodeKeyUsage(keyUsageExtension(['digitalSignature', 'nonRepudiation']).value)).toEqual(['digitalSignature', 'nonRepudiation']);
    expect(decodeExtendedKeyUsage(extendedKeyUsageExtension([oid.id_kp_serverAuth, oid.id_kp_clientAuth]).value)).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    expect(decodeCrlDistributionPoints(crlDistributionPointsExtension(['http://crl.example.tw/a/p3.crl']).value)).toEqual([
      { fullName: [{ type: 'uri', value: 'http://crl.example.tw/a/p3.crl' }], relativeName: false, hasReasons: false, hasCrlIssuer: false },
    ]);
    expect(decodeAuthorityInfoAccess(authorityInfoAccessExtension({ ocsp: ['http://ocsp.example.tw/'], caIssuers: ['http://pki.example.tw/ca.crt'] }).value)).toEqual([
      { accessMethod: oid.id_ad_ocsp, accessLocation: { type: 'uri', value: 'http://ocsp.example.tw/' } },
      { accessMethod: oid.id_ad_caIssuers, accessLocation: { type: 'uri', value: 'http://pki.example.tw/ca.crt' } },
    ]);
    expect(decodeSubjectDirectoryAttributes(subjectDirectoryAttributesExtension([{ type: oid.id_tw_gca_nationalIdLastFour, value: '6789' }]).value)).toEqual([
      { type: oid.id_tw_gca_nationalIdLastFour, values: [{ stringType: 'printableString', value: '6789' }] },
    ]);
  });

  it('refuses values that are not canonical DER', () => {
    // keyUsage digitalSignature with a trailing zero bit left in (X.690 §11.2.2 forbids it).
    expect(() => decodeKeyUsage(Buffer.from('03020080', 'hex'))).toThrow('decode keyUsage: not canonical DER');
    expect(() => decodeKeyUsage(Buffer.from('0401ff', 'hex'))).toThrow('decode keyUsage: malformed value');
  });

  it('maps signature AlgorithmIdentifiers byte for byte', () => {
    expect(signatureAlgorithmOfDer(signatureAlgorithmIdentifierDer('RSA-PSS-SHA256'))).toBe('RSA-PSS-SHA256');
    // sha256WithRSAEncryption without the NULL parameters RFC 4055 §5 requires.
    expect(signatureAlgorithmOfDer(Buffer.from('300b06092a864886f70d01010b', 'hex'))).toBeUndefined();
  });
});

describe('the canonical-DER verdict that replaced the schema round trip (decision 0019)', () => {
  const random = seededRandom(SEED);
  /** The verdict the linter used to take: a schema parse and re-serialisation gives the same bytes. */
  const schemaCanonical = (der: Buffer) => {
    try {
      return Buffer.from(AsnConvert.serialize(AsnConvert.parse(der, TBSCertificate))).equals(der);
    } catch {
      return false;
    }
  };

  it(`judges 3,000 TBSCertificates, valid, altered and damaged, as the schema layer does (seed ${SEED})`, () => {
    const tally = { canonical: 0, notCanonical: 0, refused: 0 };
    for (let i = 0; i < 3000; i++) {
      const valid = buildTbsCertificate({ ...randomTbsSpec(random), subject: [{ type: 'CN', value: random.pick(['王小明', '𠀋本𡧃', 'Wang']) }] });
      const der = i % 10 === 0 ? valid : i % 10 < 8 ? mutatedDer(random, valid) : damaged(random, valid);
      let decoded: ReturnType<typeof decodeTbsCertificate>;
      try {
        decoded = decodeTbsCertificate(der);
      } catch (err) {
        // What the structural reader refuses, the linter reports as e_tbs_malformed.
        expect(err).toBeInstanceOf(PkiError);
        tally.refused++;
        continue;
      }
      expect({ hex: der.toString('hex'), canonical: decoded.canonical, why: decoded.notCanonicalBecause }).toEqual({ hex: der.toString('hex'), canonical: schemaCanonical(der), why: decoded.notCanonicalBecause });
      tally[decoded.canonical ? 'canonical' : 'notCanonical']++;
    }
    expect(tally.canonical).toBeGreaterThan(300);
    expect(tally.notCanonical).toBeGreaterThan(300);
  });
});

describe('direct readers of per-certificate extension values (decision 0019)', () => {
  const random = seededRandom(SEED + 1);
  // The schema layer's reading of the same value, as the readers did before (the reference).
  const canonical = <T extends object>(value: Buffer, type: new () => T): T => {
    const parsed = AsnConvert.parse(value, type);
    if (!Buffer.from(AsnConvert.serialize(parsed)).equals(value)) throw new Error('not canonical DER');
    return parsed;
  };
  const generalName = (name: GeneralName) => {
    if (name.uniformResourceIdentifier !== undefined) return { type: 'uri', value: name.uniformResourceIdentifier };
    if (name.dNSName !== undefined) return { type: 'dns', value: name.dNSName };
    if (name.rfc822Name !== undefined) return { type: 'email', value: name.rfc822Name };
    if (name.iPAddress !== undefined) return { type: 'ip', value: name.iPAddress };
    for (const type of ['directoryName', 'otherName', 'registeredID', 'ediPartyName'] as const) if (name[type] !== undefined) return { type };
    return { type: 'x400Address' };
  };
  const references = {
    ski: (value: Buffer) => Buffer.from(canonical(value, SubjectKeyIdentifier).buffer),
    san: (value: Buffer) => [...canonical(value, SubjectAlternativeName)].map(generalName),
    sda: (value: Buffer) =>
      [...canonical(value, SubjectDirectoryAttributes)].map((attribute) => ({
        type: attribute.type,
        values: attribute.values.map((v) => {
          const bytes = new Uint8Array(v);
          return decodeDerString(bytes, readDerElement(bytes, 0));
        }),
      })),
  };

  it(`read 3,000 values, valid, altered and damaged, as the schema layer reads them (seed ${SEED + 1})`, () => {
    let read = 0;
    for (let i = 0; i < 3000; i++) {
      const kind = random.pick(['ski', 'san', 'sda'] as const);
      const valid =
        kind === 'ski'
          ? subjectKeyIdentifierExtension(randomSpki(random)).value
          : kind === 'san'
            ? subjectAltNameExtension({ emails: [randomEmail(random)], dnsNames: random.chance(0.3) ? ['a.example.tw'] : [], uris: random.chance(0.3) ? ['spiffe://pki.internal/ra'] : [] }).value
            : subjectDirectoryAttributesExtension([{ type: oid.id_tw_gca_nationalIdLastFour, value: String(random.int(0, 9999)).padStart(4, '0'), encoding: random.pick(['printableString', 'utf8String'] as const) }]).value;
      const value = i % 5 === 0 ? valid : i % 5 < 4 ? mutatedDer(random, valid) : damaged(random, valid);
      const direct = outcome(() => ({ ski: decodeSubjectKeyIdentifier, san: decodeSubjectAltName, sda: decodeSubjectDirectoryAttributes })[kind](value));
      const reference = outcome(() => references[kind](value));
      expect({ kind, hex: value.toString('hex'), read: direct.ok, value: direct.ok ? direct.value : undefined }).toEqual({
        kind,
        hex: value.toString('hex'),
        read: reference.ok,
        value: reference.ok ? reference.value : undefined,
      });
      if (direct.ok) read++;
    }
    expect(read).toBeGreaterThan(600);
  });
});
