import { AsnConvert } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier } from '@peculiar/asn1-x509';
import { SignatureAlgorithms, signatureAlgorithmIdentifier, verificationParametersOf } from './signature-algorithm';

const der = (a: object) => Buffer.from(AsnConvert.serialize(a)).toString('hex');

describe('signature algorithm identifiers', () => {
  it('sha256WithRSAEncryption has NULL parameters (RFC 4055 §5)', () => {
    expect(der(signatureAlgorithmIdentifier('RSA-SHA256'))).toBe('300d06092a864886f70d01010b0500');
  });

  it('RSASSA-PSS SHA-256 / MGF1-SHA-256 / salt 32 is the canonical encoding', () => {
    // The exact encoding the CA/Browser Forum Baseline Requirements (§7.1.3.2.1) require.
    expect(der(signatureAlgorithmIdentifier('RSA-PSS-SHA256'))).toBe(
      '304106092a864886f70d01010a3034a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402010500a203020120',
    );
  });

  it('ecdsa-with-SHA256/384 have absent parameters (RFC 5758 §3.2)', () => {
    expect(der(signatureAlgorithmIdentifier('ECDSA-SHA256'))).toBe('300a06082a8648ce3d040302');
    expect(der(signatureAlgorithmIdentifier('ECDSA-SHA384'))).toBe('300a06082a8648ce3d040303');
  });

  it('reads back what it writes', () => {
    expect(SignatureAlgorithms.map((a) => verificationParametersOf(signatureAlgorithmIdentifier(a), 'test'))).toEqual([
      { keyType: 'RSA', hash: 'sha256' },
      { keyType: 'RSA', hash: 'sha256', pssSaltLength: 32 },
      { keyType: 'EC', hash: 'sha256' },
      { keyType: 'EC', hash: 'sha384' },
    ]);
  });

  it('refuses SHA-1 signatures, including PSS with default (SHA-1) parameters', () => {
    const sha1WithRsa = new AlgorithmIdentifier({ algorithm: '1.2.840.113549.1.1.5', parameters: null });
    expect(() => verificationParametersOf(sha1WithRsa, 'parse CSR')).toThrow('parse CSR: unsupported signature algorithm 1.2.840.113549.1.1.5');
    const pssDefaults = new AlgorithmIdentifier({ algorithm: '1.2.840.113549.1.1.10' });
    expect(() => verificationParametersOf(pssDefaults, 'parse CSR')).toThrow('SHA-1, which is not accepted');
  });
});
