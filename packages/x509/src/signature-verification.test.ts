import { constants, generateKeyPairSync, sign } from 'node:crypto';
import { signatureAlgorithmIdentifier, type SignatureAlgorithm } from './signature-algorithm';
import { verifySignature, verifySignatureAsync } from './signature-verification';

describe('signature verification', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = (k: typeof rsa.publicKey) => k.export({ type: 'spki', format: 'der' });
  const data = Buffer.from('a TBS structure');
  const cases: Array<{ algorithm: SignatureAlgorithm; keys: typeof rsa; signature: Buffer }> = [
    { algorithm: 'RSA-SHA256', keys: rsa, signature: sign('sha256', data, rsa.privateKey) },
    { algorithm: 'RSA-PSS-SHA256', keys: rsa, signature: sign('sha256', data, { key: rsa.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }) },
    { algorithm: 'ECDSA-SHA256', keys: ec, signature: sign('sha256', data, { key: ec.privateKey, dsaEncoding: 'der' }) },
  ];

  it.each(cases)('$algorithm: accepts the right signature and refuses a changed one, on and off the event loop', async ({ algorithm, keys, signature }) => {
    const check = { publicKeySpki: spki(keys.publicKey), algorithm: signatureAlgorithmIdentifier(algorithm), data, signature };
    expect(verifySignature(check)).toBe(true);
    await expect(verifySignatureAsync(check)).resolves.toBe(true);
    const changed = { ...check, data: Buffer.from('another TBS structure') };
    expect(verifySignature(changed)).toBe(false);
    await expect(verifySignatureAsync(changed)).resolves.toBe(false);
  });

  it('refuses an algorithm that does not fit the key, before verifying anything', async () => {
    const check = { publicKeySpki: spki(ec.publicKey), algorithm: signatureAlgorithmIdentifier('RSA-SHA256'), data, signature: cases[0]!.signature };
    expect(() => verifySignature(check, 'check')).toThrow('check: a RSA signature algorithm cannot be used with an EC key');
    await expect(verifySignatureAsync(check, 'check')).rejects.toThrow('cannot be used with an EC key');
  });

  it('PSS: a PKCS#1 v1.5 signature does not pass as PSS', async () => {
    const check = { publicKeySpki: spki(rsa.publicKey), algorithm: signatureAlgorithmIdentifier('RSA-PSS-SHA256'), data, signature: cases[0]!.signature };
    await expect(verifySignatureAsync(check)).resolves.toBe(false);
  });
});
