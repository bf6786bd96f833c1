import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { PkiError } from '@pki/kit';
import { damaged, outcome, randomSpki, REAL_KEYS, SEED, seededRandom } from '../test/random-inputs';
import {
  describePublicKey,
  ecSubjectPublicKeyInfo,
  namedCurveParameters,
  parseSubjectPublicKeyInfo,
  readSubjectPublicKeyInfo,
  rsaSubjectPublicKeyInfo,
  subjectKeyIdentifierOf,
  uncompressedEcPoint,
} from './public-key';

const rsaSpki = (bits: number) => generateKeyPairSync('rsa', { modulusLength: bits }).publicKey.export({ format: 'der', type: 'spki' });
const ecSpki = (curve: string) => generateKeyPairSync('ec', { namedCurve: curve }).publicKey.export({ format: 'der', type: 'spki' });

function expectInvalid(fn: () => unknown, message: string): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PkiError);
    expect((err as PkiError).code).toBe('INVALID_ARGUMENT');
    expect((err as PkiError).message).toContain(message);
    return;
  }
  throw new Error('expected INVALID_ARGUMENT');
}

describe('describePublicKey', () => {
  it('describes RSA keys by size and exponent', () => {
    expect(describePublicKey(rsaSpki(2048))).toEqual({ type: 'RSA', bits: 2048, exponent: 65537 });
    expect(describePublicKey(rsaSpki(1024))).toEqual({ type: 'RSA', bits: 1024, exponent: 65537 });
    const e3 = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 3 }).publicKey.export({ format: 'der', type: 'spki' });
    expect(describePublicKey(e3)).toEqual({ type: 'RSA', bits: 2048, exponent: 3 });
  });

  it('describes EC keys by named curve', () => {
    expect(describePublicKey(ecSpki('P-256'))).toEqual({ type: 'EC', curve: 'P-256' });
    expect(describePublicKey(ecSpki('P-384'))).toEqual({ type: 'EC', curve: 'P-384' });
  });

  it('refuses unsupported and malformed keys with INVALID_ARGUMENT', () => {
    expectInvalid(() => describePublicKey(ecSpki('P-521')), 'unsupported EC curve 1.3.132.0.35');
    expectInvalid(() => describePublicKey(generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' })), 'unsupported public key algorithm 1.3.101.112');
    expectInvalid(() => describePublicKey(Buffer.from('not a key')), 'malformed SubjectPublicKeyInfo');
    expectInvalid(() => describePublicKey(Buffer.alloc(0)), 'non-empty DER');
    expectInvalid(() => describePublicKey(Buffer.concat([rsaSpki(2048), Buffer.from([0])])), 'not canonical DER');
    // A P-256 SPKI whose point is not on the curve: OpenSSL refuses to import it.
    const spki = Buffer.from(ecSpki('P-256'));
    spki[spki.length - 1] = spki[spki.length - 1]! ^ 0x01;
    expectInvalid(() => describePublicKey(spki), 'public key rejected');
  });
});

describe('SPKI construction from PKCS#11 attributes', () => {
  it('rebuilds an RSA SPKI byte-identical to OpenSSL from modulus and exponent', () => {
    const key = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
    const jwk = key.export({ format: 'jwk' });
    const spki = rsaSubjectPublicKeyInfo(Buffer.from(jwk.n!, 'base64url'), Buffer.from(jwk.e!, 'base64url'));
    expect(spki).toEqual(key.export({ format: 'der', type: 'spki' }));
  });

  it.each(['P-256', 'P-384'] as const)('rebuilds an EC %s SPKI byte-identical to OpenSSL from the point', (curve) => {
    const key = generateKeyPairSync('ec', { namedCurve: curve }).publicKey;
    const jwk = key.export({ format: 'jwk' });
    const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
    expect(ecSubjectPublicKeyInfo(curve, point)).toEqual(key.export({ format: 'der', type: 'spki' }));
  });

  it('encodes curve OIDs for CKA_EC_PARAMS', () => {
    expect(namedCurveParameters('P-256').toString('hex')).toBe('06082a8648ce3d030107');
    expect(namedCurveParameters('P-384').toString('hex')).toBe('06052b81040022');
  });

  it('computes a 20-byte key identifier', () => {
    expect(subjectKeyIdentifierOf(rsaSpki(2048))).toHaveLength(20);
  });
});

describe('uncompressedEcPoint', () => {
  const point = Buffer.concat([Buffer.from([4]), Buffer.alloc(64, 7)]);
  it('unwraps the DER OCTET STRING PKCS#11 specifies, and accepts a bare point', () => {
    expect(uncompressedEcPoint(Buffer.concat([Buffer.from('0441', 'hex'), point]), 'P-256')).toEqual(point);
    expect(uncompressedEcPoint(point, 'P-256')).toEqual(point);
    expect(() => uncompressedEcPoint(point, 'P-384')).toThrow('not an uncompressed P-384 point');
  });
});

describe('readSubjectPublicKeyInfo: the strict reader that replaced the schema round trip (decision 0019)', () => {
  const random = seededRandom(SEED);
  /** Accepted (with its parts) or refused, by the schema layer and a canonical re-encoding. */
  const schemaVerdict = (der: Buffer) =>
    outcome(() => {
      const spki = parseSubjectPublicKeyInfo(der);
      return { algorithm: spki.algorithm.algorithm, publicKey: Buffer.from(spki.subjectPublicKey).toString('hex') };
    });
  const directVerdict = (der: Buffer) =>
    outcome(() => {
      const spki = readSubjectPublicKeyInfo(der);
      return { algorithm: spki.algorithm, publicKey: spki.publicKey.toString('hex') };
    });

  it(`accepts and refuses 3,000 keys, valid and damaged, exactly as the schema layer does (seed ${SEED})`, () => {
    let accepted = 0;
    for (let i = 0; i < 3000; i++) {
      const valid = randomSpki(random);
      const der = i % 5 === 0 ? valid : damaged(random, valid);
      const schema = schemaVerdict(der);
      const direct = directVerdict(der);
      expect({ hex: der.toString('hex'), accepted: direct.ok }).toEqual({ hex: der.toString('hex'), accepted: schema.ok });
      if (schema.ok && direct.ok) {
        expect(direct.value).toEqual(schema.value);
        accepted++;
      }
    }
    expect(accepted).toBeGreaterThan(600);
  });

  it('describes every damaged key that it accepts the way OpenSSL imports it, and refuses the rest with INVALID_ARGUMENT', () => {
    for (let i = 0; i < 1000; i++) {
      const der = damaged(random, Buffer.from(random.pick(Object.values(REAL_KEYS))));
      let imported = true;
      try {
        createPublicKey({ key: der, format: 'der', type: 'spki' });
      } catch {
        imported = false;
      }
      try {
        const description = describePublicKey(der);
        // What this CA accepts, OpenSSL can use.
        expect({ hex: der.toString('hex'), description, imported }).toEqual({ hex: der.toString('hex'), description, imported: true });
      } catch (err) {
        expect(err).toBeInstanceOf(PkiError);
        expect((err as PkiError).code).toBe('INVALID_ARGUMENT');
      }
    }
  });

  it('keeps its answers by the bytes of the key, not the buffer', () => {
    const spki = rsaSpki(2048);
    const first = describePublicKey(Buffer.from(spki));
    expect(describePublicKey(Buffer.from(spki))).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
  });
});
