import { AsnConvert } from '@peculiar/asn1-schema';
import { Name } from '@peculiar/asn1-x509';
import { PkiError } from '@pki/kit';
import { buildName, encodeName, formatName, parseName, type DistinguishedName } from './name';

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
