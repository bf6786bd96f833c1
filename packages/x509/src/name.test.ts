import { AsnConvert } from '@peculiar/asn1-schema';
import { Name } from '@peculiar/asn1-x509';
import { PkiError } from '@pki/kit';
import { NAME_ATTRIBUTE_TYPES, outcome, randomDn, SEED, seededRandom } from '../test/random-inputs';
import { buildName, encodeName, formatName, parseName, type DistinguishedName, type NameAttribute } from './name';

const utf8 = (s: string) => Buffer.from(s, 'utf8').toString('hex');

describe('distinguished names', () => {
  const issuerDn: DistinguishedName = [
    { type: 'C', value: 'TW' },
    { type: 'O', value: '行政院' },
    { type: 'OU', value: '內政部憑證管理中心' },
  ];

  it('encodes the citizen CA issuer DN with C as PrintableString and O, OU as UTF8String', () => {
    const expected =
      '3047' +
      '310b' + '3009' + '0603550406' + '1302' + '5457' + // C=TW, PrintableString (0x13)
      '3112' + '3010' + '060355040a' + '0c09' + utf8('行政院') + // O, UTF8String (0x0c)
      '3124' + '3022' + '060355040b' + '0c1b' + utf8('內政部憑證管理中心');
    expect(encodeName(issuerDn).toString('hex')).toBe(expected);
  });

  it('encodes serialNumber as PrintableString, per RFC 5280 Appendix A', () => {
    const der = encodeName([{ type: 'serialNumber', value: '0000000012345678' }]);
    expect(der.toString('hex')).toBe('301b' + '3119' + '3017' + '0603550405' + '1310' + Buffer.from('0000000012345678').toString('hex'));
  });

  it('reads back what it wrote, in order', () => {
    const parsed = parseName(AsnConvert.parse(encodeName([...issuerDn, { type: 'CN', value: '王小明' }]), Name));
    expect(parsed).toEqual([
      { type: 'C', oid: '2.5.4.6', value: 'TW' },
      { type: 'O', oid: '2.5.4.10', value: '行政院' },
      { type: 'OU', oid: '2.5.4.11', value: '內政部憑證管理中心' },
      { type: 'CN', oid: '2.5.4.3', value: '王小明' },
    ]);
  });

  it('formats a readable one-line DN, escaping RFC 4514 specials', () => {
    expect(formatName(issuerDn)).toBe('C=TW, O=行政院, OU=內政部憑證管理中心');
    expect(formatName(buildName(issuerDn))).toBe('C=TW, O=行政院, OU=內政部憑證管理中心');
    expect(formatName([{ type: 'CN', value: 'a,b+c "d" ' }])).toBe('CN=a\\,b\\+c \\"d\\"\\ ');
    expect(formatName([{ type: 'CN', value: '#x' }])).toBe('CN=\\#x');
  });

  it('redacts personal data when asked', () => {
    const subject: DistinguishedName = [
      { type: 'C', value: 'TW' },
      { type: 'CN', value: '王小明' },
      { type: 'serialNumber', value: '0000000012345678' },
    ];
    expect(formatName(subject, { redact: ['CN', 'serialNumber'] })).toBe('C=TW, CN=…, serialNumber=…');
  });

  it.each([
    [[{ type: 'C', value: 'tw' }], 'C must be a two-letter ISO 3166 code'],
    [[{ type: 'C', value: 'TWN' }], 'C is longer than 2 characters'],
    [[{ type: 'serialNumber', value: '12*34' }], 'serialNumber contains characters outside PrintableString'],
    [[{ type: 'CN', value: '' }], 'CN must not be empty'],
    [[{ type: 'CN', value: 'x'.repeat(65) }], 'CN is longer than 64 characters'],
    [[{ type: 'emailAddress', value: 'a@b.tw' }], "unknown name attribute type 'emailAddress'"],
  ])('refuses %j', (dn, message) => {
    const build = () => encodeName(dn as unknown as DistinguishedName);
    expect(build).toThrow(PkiError);
    expect(build).toThrow(message);
  });
});

describe('encodeName, written directly in DER (decision 0019)', () => {
  const random = seededRandom(SEED);
  const schemaEncoding = (dn: DistinguishedName) => Buffer.from(AsnConvert.serialize(buildName(dn)));

  it(`encodes 1,000 random names exactly as the schema layer does (seed ${SEED})`, () => {
    let longForm = 0;
    for (let i = 0; i < 1000; i++) {
      const dn = randomDn(random);
      const direct = encodeName(dn);
      expect({ dn, hex: direct.toString('hex') }).toEqual({ dn, hex: schemaEncoding(dn).toString('hex') });
      if (direct[1]! > 0x81) longForm++;
    }
    // Names long enough for two- and three-octet lengths were among them.
    expect(longForm).toBeGreaterThan(25);
  });

  it('covers every attribute type and the rare characters of citizens names', () => {
    for (const type of NAME_ATTRIBUTE_TYPES) {
      const value = type === 'C' ? 'TW' : type === 'serialNumber' ? "0000-1234 (a'b)+,./:=?" : '𠀋本𡧃 鄭峯 e\u0301 😀';
      expect(encodeName([{ type, value }])).toEqual(schemaEncoding([{ type, value }]));
    }
    const longest = [{ type: 'givenName', value: '𪚥'.repeat(32768) }] as const;
    expect(encodeName(longest)).toEqual(schemaEncoding(longest));
  });

  it('refuses what the schema layer refuses, with the same message (a lone surrogate more clearly)', () => {
    const bad: NameAttribute[][] = [
      [{ type: 'CN', value: '' }],
      [{ type: 'CN', value: '名'.repeat(65) }],
      [{ type: 'C', value: 'tw' }],
      [{ type: 'serialNumber', value: '1234@' }],
      [{ type: 'X' as NameAttribute['type'], value: 'x' }],
    ];
    for (const dn of bad) {
      const schema = outcome(() => schemaEncoding(dn));
      expect(schema.ok).toBe(false);
      expect(outcome(() => encodeName(dn))).toEqual(schema);
    }
    for (const value of ['a\uD800b', '\uDC00', 'x\uD83D']) {
      expect(outcome(() => schemaEncoding([{ type: 'CN', value }])).ok).toBe(false);
      expect(() => encodeName([{ type: 'CN', value }])).toThrow(new PkiError('INVALID_ARGUMENT', 'build name: CN: the text holds a lone UTF-16 surrogate, which UTF-8 cannot carry'));
    }
  });
});
