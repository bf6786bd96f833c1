import { createHash, createHmac, randomBytes } from 'node:crypto';
import { AesGcmPersonalDataVault, decodeKey, PrecomputedHmac } from './personal-data-vault';
import { ScryptCodeHasher } from './scrypt-code-hasher';

const key = (id: string) => ({ id, key: randomBytes(32) });

describe('personal data vault (AES-256-GCM, HMAC-SHA-256)', () => {
  const k1 = key('k1');
  const l1 = key('l1');
  const reference = randomBytes(32);
  const vault = new AesGcmPersonalDataVault({ encryption: [k1], activeEncryptionKeyId: 'k1', lookup: [l1], activeLookupKeyId: 'l1', reference });

  it('seals and opens a field, and the ciphertext never shows the plaintext', () => {
    const sealed = vault.seal('name', 'sub-1', '王小明𠀋');
    expect(sealed.keyId).toBe('k1');
    expect(sealed.ciphertext.includes(Buffer.from('王小明'))).toBe(false);
    expect(vault.open('name', 'sub-1', sealed)).toBe('王小明𠀋');
    // a fresh nonce every time
    expect(vault.seal('name', 'sub-1', '王小明𠀋').ciphertext.equals(sealed.ciphertext)).toBe(false);
  });

  it('refuses a ciphertext moved to another subscriber or field, or altered, without saying what it holds', () => {
    const sealed = vault.seal('nationalId', 'sub-1', 'A123456789');
    expect(() => vault.open('nationalId', 'sub-2', sealed)).toThrow(/failed authentication/);
    expect(() => vault.open('name', 'sub-1', sealed)).toThrow(/failed authentication/);
    const altered = Buffer.from(sealed.ciphertext);
    altered[20]! ^= 1;
    expect(() => vault.open('nationalId', 'sub-1', { keyId: 'k1', ciphertext: altered })).toThrow(/failed authentication/);
    expect(() => vault.open('nationalId', 'sub-1', { keyId: 'k9', ciphertext: sealed.ciphertext })).toThrow(/key 'k9', which this service does not hold/);
  });

  it('rotates: a vault with a new active key still opens and finds what the old key sealed and hashed', () => {
    const sealed = vault.seal('birthDate', 'sub-1', '1980-02-29');
    const oldHash = vault.lookupHash('A123456789');
    const rotated = new AesGcmPersonalDataVault({ encryption: [k1, key('k2')], activeEncryptionKeyId: 'k2', lookup: [l1, key('l2')], activeLookupKeyId: 'l2', reference });
    expect(rotated.open('birthDate', 'sub-1', sealed)).toBe('1980-02-29');
    expect(rotated.seal('birthDate', 'sub-1', 'x').keyId).toBe('k2');
    expect(rotated.lookupHash('A123456789').keyId).toBe('l2');
    expect(rotated.lookupHashes('A123456789')).toContainEqual(oldHash);
    // person references do not change with rotation
    expect(rotated.personReference('A123456789')).toBe(vault.personReference('A123456789'));
    expect(vault.personReference('A123456789')).toMatch(/^p-[0-9a-f]{32}$/);
  });

  it('decodes keys from base64 or hex files and refuses short ones', () => {
    const raw = randomBytes(32);
    expect(decodeKey(raw.toString('base64') + '\n', 'k').equals(raw)).toBe(true);
    expect(decodeKey(raw.toString('hex'), 'k').equals(raw)).toBe(true);
    expect(() => decodeKey('c2hvcnQ=', 'encryption key k1')).toThrow('encryption key k1 must hold 32 random bytes');
  });
});

describe('subscriber code hashing (scrypt)', () => {
  const hasher = new ScryptCodeHasher({ cost: 2 ** 12, blockSize: 8, parallelization: 1 });
  it('verifies the right code only, with a fresh salt per hash', async () => {
    const a = await hasher.hash('abcd1234');
    const b = await hasher.hash('abcd1234');
    expect(a).not.toBe(b);
    expect(a).toMatch(/^scrypt\$4096\$8\$1\$/);
    await expect(hasher.verify('abcd1234', a)).resolves.toBe(true);
    await expect(hasher.verify('abcd1235', a)).resolves.toBe(false);
    await expect(hasher.dummyVerify('whatever1')).resolves.toBeUndefined();
  });
});

describe('legacy subscriber-code hashes (migration)', () => {
  const hasher = new ScryptCodeHasher({ cost: 2 ** 12, blockSize: 8, parallelization: 1 });
  const legacy = (algorithm: 'sha1' | 'md5', code: string) => {
    const salt = Buffer.from('0011223344556677', 'hex');
    return `legacy-${algorithm}-salt$${salt.toString('hex')}$${createHash(algorithm).update(salt).update(code).digest('hex')}`;
  };
  it('verifies SHA-1 and MD5 salted hashes as the old system did, and asks for a rehash', async () => {
    for (const algorithm of ['sha1', 'md5'] as const) {
      const stored = legacy(algorithm, 'oldcode12');
      await expect(hasher.verify('oldcode12', stored)).resolves.toBe(true);
      await expect(hasher.verify('oldcode13', stored)).resolves.toBe(false);
      expect(hasher.needsRehash(stored)).toBe(true);
    }
    expect(hasher.needsRehash(await hasher.hash('newcode12'))).toBe(false);
    expect(new ScryptCodeHasher({ cost: 2 ** 13, blockSize: 8, parallelization: 1 }).needsRehash(await hasher.hash('newcode12'))).toBe(true);
    await expect(hasher.verify('x', 'legacy-crc32$00$00')).rejects.toThrow('stored legacy hash has an unknown format');
  });
});

describe('PrecomputedHmac', () => {
  it.each([
    // RFC 4231 §4.3 (test case 2) and §4.7 (test case 6: a key longer than the block, hashed first).
    ['a short key', Buffer.from('Jefe'), 'what do ya want for nothing?', '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843'],
    ['a 131-byte key', Buffer.alloc(131, 0xaa), 'Test Using Larger Than Block-Size Key - Hash Key First', '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54'],
  ])('gives the RFC 4231 HMAC-SHA-256 of %s, and again on the next message', (_, secret, data, expected) => {
    const mac = new PrecomputedHmac(secret);
    expect(mac.digest(data).toString('hex')).toBe(expected);
    expect(mac.digest('A123456789').equals(createHmac('sha256', secret).update('A123456789').digest())).toBe(true);
    expect(mac.digest(data).toString('hex')).toBe(expected);
  });
});
