import { createHash, constants, createPublicKey, verify } from 'node:crypto';
import { PkiError } from '@pki/kit';
import { describePublicKey } from '@pki/x509';
import type { DigestSigningKeyManager, SignatureAlgorithm } from '../src/ports/key-manager';

/**
 * The behaviour every KeyManager adapter promises, run against the in-memory fake in unit tests
 * and against a real SoftHSM token in integration tests (smallstep's pattern: one suite, two
 * backends). `open` gives a fresh manager; the suite closes it.
 */
export function describeKeyManagerContract(name: string, open: () => Promise<DigestSigningKeyManager>): void {
  describe(`KeyManager contract: ${name}`, () => {
    let keyManager: DigestSigningKeyManager;
    let rsaKeyId: string;
    let rsaSpki: Buffer;
    let ecKeyId: string;
    let ecSpki: Buffer;

    beforeAll(async () => {
      keyManager = await open();
      ({ keyId: rsaKeyId, publicKeySpki: rsaSpki } = await keyManager.generateKeyPair({ label: 'contract-rsa', spec: { type: 'RSA', bits: 2048 } }));
      ({ keyId: ecKeyId, publicKeySpki: ecSpki } = await keyManager.generateKeyPair({ label: 'contract-ec', spec: { type: 'EC', curve: 'P-256' } }));
    });
    afterAll(async () => keyManager.close());

    it('generates keys of the requested type with 16-byte hex ids', async () => {
      expect(rsaKeyId).toMatch(/^[0-9a-f]{32}$/);
      expect(describePublicKey(rsaSpki)).toEqual({ type: 'RSA', bits: 2048, exponent: 65537 });
      expect(describePublicKey(ecSpki)).toEqual({ type: 'EC', curve: 'P-256' });
      const p384 = await keyManager.generateKeyPair({ label: 'contract-p384', spec: { type: 'EC', curve: 'P-384' } });
      expect(describePublicKey(p384.publicKeySpki)).toEqual({ type: 'EC', curve: 'P-384' });
    });

    it('returns the same public key later', async () => {
      expect((await keyManager.getPublicKey({ keyId: rsaKeyId })).publicKeySpki).toEqual(rsaSpki);
      expect((await keyManager.getPublicKey({ keyId: ecKeyId })).publicKeySpki).toEqual(ecSpki);
    });

    const verifiers: Record<SignatureAlgorithm, (spki: Buffer, data: Buffer, signature: Buffer) => boolean> = {
      'RSA-SHA256': (spki, data, sig) => verify('sha256', data, { key: publicKey(spki), padding: constants.RSA_PKCS1_PADDING }, sig),
      'RSA-PSS-SHA256': (spki, data, sig) =>
        verify('sha256', data, { key: publicKey(spki), padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig),
      'ECDSA-SHA256': (spki, data, sig) => verify('sha256', data, { key: publicKey(spki), dsaEncoding: 'der' }, sig),
      'ECDSA-SHA384': (spki, data, sig) => verify('sha384', data, { key: publicKey(spki), dsaEncoding: 'der' }, sig),
    };

    it.each(['RSA-SHA256', 'RSA-PSS-SHA256', 'ECDSA-SHA256', 'ECDSA-SHA384'] as const)('signs %s so that OpenSSL verifies', async (algorithm) => {
      const [keyId, spki] = algorithm.startsWith('RSA') ? [rsaKeyId, rsaSpki] : [ecKeyId, ecSpki];
      const data = Buffer.from(`to be signed with ${algorithm}`);
      const { signature } = await keyManager.sign({ keyId, algorithm, data });
      expect(verifiers[algorithm](spki, data, signature)).toBe(true);
      expect(verifiers[algorithm](spki, Buffer.from('other data'), signature)).toBe(false);
      if (algorithm.startsWith('ECDSA')) expect(signature[0]).toBe(0x30); // DER Ecdsa-Sig-Value, not r || s
    });

    it.each(['RSA-SHA256', 'RSA-PSS-SHA256', 'ECDSA-SHA256', 'ECDSA-SHA384'] as const)('signs a %s digest made outside the HSM as it signs the data', async (algorithm) => {
      const [keyId, spki] = algorithm.startsWith('RSA') ? [rsaKeyId, rsaSpki] : [ecKeyId, ecSpki];
      const data = Buffer.from(`a CRL too large to pass whole, signed with ${algorithm}`);
      const digest = createHash(algorithm === 'ECDSA-SHA384' ? 'sha384' : 'sha256').update(data).digest();
      const result = keyManager.signDigest({ keyId, algorithm, digest });
      if (algorithm !== 'RSA-SHA256' && name === 'in-memory fake') {
        await expectPkiError(result, 'INVALID_ARGUMENT', 'signs only RSA-SHA256 digests');
        return;
      }
      const { signature } = await result;
      expect(verifiers[algorithm](spki, data, signature)).toBe(true);
      expect(verifiers[algorithm](spki, Buffer.from('other data'), signature)).toBe(false);
      await expectPkiError(keyManager.signDigest({ keyId, algorithm, digest: digest.subarray(1) }), 'INVALID_ARGUMENT', 'digest is');
    });

    it('answers an unknown key with NOT_FOUND', async () => {
      const unknown = '00'.repeat(16);
      await expectPkiError(keyManager.sign({ keyId: unknown, algorithm: 'RSA-SHA256', data: Buffer.from('x') }), 'NOT_FOUND', `sign: key ${unknown} not found`);
      await expectPkiError(keyManager.getPublicKey({ keyId: unknown }), 'NOT_FOUND', `get public key: key ${unknown} not found`);
    });

    it('refuses malformed requests with INVALID_ARGUMENT', async () => {
      await expectPkiError(keyManager.sign({ keyId: 'XYZ', algorithm: 'RSA-SHA256', data: Buffer.from('x') }), 'INVALID_ARGUMENT', 'sign: keyId must be');
      await expectPkiError(keyManager.sign({ keyId: rsaKeyId, algorithm: 'RSA-MD5' as SignatureAlgorithm, data: Buffer.from('x') }), 'INVALID_ARGUMENT', "unsupported signature algorithm 'RSA-MD5'");
      await expectPkiError(keyManager.sign({ keyId: rsaKeyId, algorithm: 'RSA-SHA256', data: Buffer.alloc(0) }), 'INVALID_ARGUMENT', 'data must be non-empty');
      await expectPkiError(keyManager.sign({ keyId: ecKeyId, algorithm: 'RSA-SHA256', data: Buffer.from('x') }), 'INVALID_ARGUMENT', `key ${ecKeyId} is an EC key and cannot sign RSA-SHA256`);
      await expectPkiError(keyManager.sign({ keyId: rsaKeyId, algorithm: 'ECDSA-SHA256', data: Buffer.from('x') }), 'INVALID_ARGUMENT', `key ${rsaKeyId} is an RSA key and cannot sign ECDSA-SHA256`);
      await expectPkiError(
        keyManager.generateKeyPair({ label: 'weak', spec: { type: 'RSA', bits: 1024 } as never }),
        'INVALID_ARGUMENT',
        'generate key pair: key spec must be',
      );
      await expectPkiError(keyManager.generateKeyPair({ label: '', spec: { type: 'EC', curve: 'P-256' } }), 'INVALID_ARGUMENT', 'label must be');
    });

    it('reports itself healthy', async () => {
      expect(await keyManager.healthCheck()).toMatchObject({ healthy: true });
    });
  });
}

function publicKey(spki: Buffer) {
  return createPublicKey({ key: spki, format: 'der', type: 'spki' });
}

export async function expectPkiError(promise: Promise<unknown>, code: PkiError['code'], message: string): Promise<PkiError> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(PkiError);
  expect((caught as PkiError).message).toContain(message);
  expect((caught as PkiError).code).toBe(code);
  return caught as PkiError;
}
