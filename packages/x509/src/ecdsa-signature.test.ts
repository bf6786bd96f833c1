import { generateKeyPairSync, randomBytes, randomInt, sign, verify } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { ECDSASigValue } from '@peculiar/asn1-ecc';
import { ecdsaSignatureToDer } from './ecdsa-signature';
import { positiveInteger } from './public-key';

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

  it('encodes exactly as the schema layer does, over random r and s with and without leading zeros or high bits', () => {
    for (let i = 0; i < 500; i++) {
      const half = [32, 48, 66][i % 3]!;
      const raw = randomBytes(2 * half);
      if (randomInt(3) === 0) raw.fill(0, 0, randomInt(half + 1)); // r with leading zeros, or all zero
      if (randomInt(3) === 0) raw[half] = raw[half]! | 0x80; // s needs a pad
      const reference = AsnConvert.serialize(new ECDSASigValue({ r: positiveInteger(raw.subarray(0, half)), s: positiveInteger(raw.subarray(half)) }));
      expect(ecdsaSignatureToDer(raw).toString('hex')).toBe(Buffer.from(reference).toString('hex'));
    }
  });

  it('refuses an odd-length input', () => {
    expect(() => ecdsaSignatureToDer(Buffer.alloc(63))).toThrow('is not r || s');
  });
});
