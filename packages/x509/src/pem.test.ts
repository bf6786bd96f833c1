import { fromPem, parsePemBlocks, toPem } from './pem';

describe('PEM', () => {
  const der = Buffer.from(Array.from({ length: 100 }, (_, i) => i));

  it('writes RFC 7468 lines of 64 characters and reads them back', () => {
    const pem = toPem(der, 'CERTIFICATE');
    const lines = pem.split('\n');
    expect(lines[0]).toBe('-----BEGIN CERTIFICATE-----');
    // 100 bytes are 136 base64 characters: 64 + 64 + 8.
    expect(lines.slice(1, 4).map((l) => l.length)).toEqual([64, 64, 8]);
    expect(lines[4]).toBe('-----END CERTIFICATE-----');
    expect(pem.endsWith('-----\n')).toBe(true);
    expect(fromPem(pem, 'CERTIFICATE')).toEqual(der);
  });

  it('picks the block with the wanted label from a bundle with text around it', () => {
    const bundle = `subject=CN=x\n${toPem(Buffer.from('crl'), 'X509 CRL')}\r\n${toPem(der, 'CERTIFICATE REQUEST').replace(/\n/g, '\r\n')}`;
    expect(fromPem(bundle, 'CERTIFICATE REQUEST')).toEqual(der);
    expect(fromPem(bundle, 'X509 CRL')).toEqual(Buffer.from('crl'));
    expect(parsePemBlocks(bundle).map((b) => b.label)).toEqual(['X509 CRL', 'CERTIFICATE REQUEST']);
  });

  it('refuses a missing label, mismatched END and bad base64', () => {
    expect(() => fromPem(toPem(der, 'X509 CRL'), 'CERTIFICATE')).toThrow('parse PEM: no CERTIFICATE block found');
    expect(() => parsePemBlocks('-----BEGIN CERTIFICATE-----\nAAAA\n-----END X509 CRL-----')).toThrow('BEGIN CERTIFICATE closed by END X509 CRL');
    expect(() => parsePemBlocks('-----BEGIN CERTIFICATE-----\nA*AA\n-----END CERTIFICATE-----')).toThrow('not valid base64');
  });
});
