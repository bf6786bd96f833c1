import { FixedClock, PkiError } from '@pki/kit';
import { formatName, parseCertificate, subjectKeyIdentifierOf, verifyCertificateSignature } from '@pki/x509';
import { FakeKeyManager } from '../adapters/fake';
import { createCaHierarchy } from './ca-hierarchy';

describe('createCaHierarchy', () => {
  const clock = new FixedClock(new Date('2025-03-01T08:00:00.750Z'));

  it('makes a self-signed root and an issuing CA signed by it, with the RFC 5280 CA extensions', async () => {
    const keyManager = new FakeKeyManager();
    const serials = [Buffer.from('01', 'hex'), Buffer.from('02', 'hex')];
    const { root, issuing } = await createCaHierarchy(keyManager, { clock, serials: () => serials.shift()! });
    const rootCert = parseCertificate(root.certificateDer);
    const issuingCert = parseCertificate(issuing.certificateDer);

    expect(formatName(rootCert.subject)).toBe('C=TW, O=Government Root Certification Authority');
    expect(rootCert.issuerDer).toEqual(rootCert.subjectDer);
    expect(formatName(issuingCert.subject)).toBe('C=TW, O=行政院, OU=內政部憑證管理中心');
    expect(issuingCert.issuerDer).toEqual(rootCert.subjectDer);
    expect(rootCert.serialNumber.toString('hex')).toBe('01');
    expect(issuingCert.serialNumber.toString('hex')).toBe('02');

    expect(rootCert.notBefore).toEqual(new Date('2025-03-01T08:00:00Z'));
    expect(rootCert.notAfter).toEqual(new Date('2055-03-01T08:00:00Z'));
    expect(issuingCert.notAfter).toEqual(new Date('2045-03-01T08:00:00Z'));

    expect(verifyCertificateSignature(rootCert, rootCert.subjectPublicKeyInfo)).toBe(true);
    expect(verifyCertificateSignature(issuingCert, rootCert.subjectPublicKeyInfo)).toBe(true);
    expect(keyManager.signatures.map((s) => [s.keyId, s.algorithm])).toEqual([
      [root.keyId, 'RSA-SHA256'],
      [root.keyId, 'RSA-SHA256'],
    ]);

    const summary = (cert: ReturnType<typeof parseCertificate>) =>
      [...cert.extensions].map(([id, e]) => `${id}${e.critical ? ' critical' : ''} ${e.value.toString('hex')}`);
    const rootSki = subjectKeyIdentifierOf(rootCert.subjectPublicKeyInfo).toString('hex');
    const issuingSki = subjectKeyIdentifierOf(issuingCert.subjectPublicKeyInfo).toString('hex');
    expect(summary(rootCert)).toEqual(['2.5.29.19 critical 30030101ff', '2.5.29.15 critical 03020106', `2.5.29.14 0414${rootSki}`]);
    expect(summary(issuingCert)).toEqual([
      '2.5.29.19 critical 30060101ff020100',
      '2.5.29.15 critical 03020106',
      `2.5.29.14 0414${issuingSki}`,
      `2.5.29.35 30168014${rootSki}`,
      '2.5.29.32 300b3009060760867665000303',
    ]);
  });

  it('signs with ECDSA when the root key is EC', async () => {
    const keyManager = new FakeKeyManager();
    const { issuing } = await createCaHierarchy(keyManager, {
      clock,
      rootKeySpec: { type: 'EC', curve: 'P-384' },
      issuingKeySpec: { type: 'EC', curve: 'P-256' },
    });
    expect(parseCertificate(issuing.certificateDer).signatureAlgorithm.algorithm).toBe('1.2.840.10045.4.3.3');
  });

  it('refuses an issuing CA that would outlive the root, before making any key', async () => {
    const keyManager = new FakeKeyManager();
    await expect(createCaHierarchy(keyManager, { clock, rootValidityYears: 10, issuingValidityYears: 20 })).rejects.toThrow(
      new PkiError('INVALID_ARGUMENT', 'create CA hierarchy: the issuing CA cannot outlive the root'),
    );
    expect(keyManager.signatures).toHaveLength(0);
  });
});
