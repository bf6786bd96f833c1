import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { ecdsaSignatureToDer } from './ecdsa-signature';

describe('ecdsaSignatureToDer', () => {
  it('encodes r and s as positive minimal INTEGERs', () => {
    const r = `80${'00'.repeat(31)}`; // high bit set: needs a 0x00 pad
    const s = `0001${'00'.repeat(30)}`; // leading zero octet: dropped
    expect(ecdsaSignatureToDer(Buffer.from(r + s, 'hex')).toString('hex')).toBe(`3044022100${r}021f01${'00'.repeat(30)}`);
  });

  it.each(['P-256', 'P-384'])('turns raw %s signatures into DER that OpenSSL verifies', (curve) => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
    const hash = curve === 'P-256' ? 'sha256' : 'sha384';
    for (let i = 0; i < 50; i++) {
      const data = Buffer.from(`message ${i}`);
      const raw = sign(hash, data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
      expect(verify(hash, data, { key: publicKey, dsaEncoding: 'der' }, ecdsaSignatureToDer(raw))).toBe(true);
    }
  });

  it('refuses an odd-length input', () => {
    expect(() => ecdsaSignatureToDer(Buffer.alloc(63))).toThrow('is not r || s');
  });
});
