import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { PkiError } from '@pki/kit';
import type { CodeHasher } from '../../ports/code-hasher';

export interface ScryptParameters {
  /** CPU/memory cost, a power of two; memory is 128 * cost * blockSize bytes. */
  cost: number;
  blockSize: number;
  parallelization: number;
}

/**
 * OWASP's scrypt minimum is N=2^17, r=8, p=1 (128 MiB). A registration counter verifies codes
 * rarely, but self-service is public: 2^15 (32 MiB, tens of milliseconds on one core) keeps a
 * flood of guesses from exhausting memory while still costing an attacker that memory per guess.
 * Deployments raise it in config; the parameters travel with each hash, so old hashes still verify.
 */
export const DEFAULT_SCRYPT: ScryptParameters = { cost: 2 ** 15, blockSize: 8, parallelization: 1 };

const KEY_BYTES = 32;

/** scrypt (RFC 7914), the memory-hard function Node ships: no native addon to build. Format `scrypt$N$r$p$salt$hash`. */
export class ScryptCodeHasher implements CodeHasher {
  readonly #params: ScryptParameters;
  readonly #dummy: Promise<string>;

  constructor(params: ScryptParameters = DEFAULT_SCRYPT) {
    if (!Number.isInteger(Math.log2(params.cost)) || params.cost < 2 ** 10) throw new PkiError('INVALID_ARGUMENT', 'subscriber code hashing: cost must be a power of two of at least 1024');
    this.#params = params;
    this.#dummy = this.hash('dummy subscriber code 0');
  }

  async hash(code: string): Promise<string> {
    const salt = randomBytes(16);
    const { cost, blockSize, parallelization } = this.#params;
    const key = await derive(code, salt, this.#params);
    return ['scrypt', cost, blockSize, parallelization, salt.toString('base64'), key.toString('base64')].join('$');
  }

  async verify(code: string, encoded: string): Promise<boolean> {
    if (encoded.startsWith('legacy-')) return verifyLegacy(code, encoded);
    const [scheme, n, r, p, salt, hash] = encoded.split('$');
    if (scheme !== 'scrypt' || !n || !r || !p || !salt || !hash) throw new PkiError('INTERNAL', 'verify subscriber code: stored hash has an unknown format');
    const expected = Buffer.from(hash, 'base64');
    const actual = await derive(code, Buffer.from(salt, 'base64'), { cost: Number(n), blockSize: Number(r), parallelization: Number(p) });
    return actual.length === expected.length && timingSafeEqual(actual, expected);
  }

  needsRehash(encoded: string): boolean {
    const [scheme, n, r, p] = encoded.split('$');
    const { cost, blockSize, parallelization } = this.#params;
    return scheme !== 'scrypt' || Number(n) < cost || Number(r) < blockSize || Number(p) < parallelization;
  }

  async dummyVerify(code: string): Promise<void> {
    await this.verify(code, await this.#dummy);
  }
}

function derive(code: string, salt: Buffer, params: ScryptParameters): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(code.normalize('NFC'), salt, KEY_BYTES, { N: params.cost, r: params.blockSize, p: params.parallelization, maxmem: 256 * params.cost * params.blockSize + 1024 * 1024 }, (err, key) =>
      err ? reject(new PkiError('INTERNAL', `subscriber code hashing: ${err.message}`, { cause: err })) : resolve(key),
    ),
  );
}

/**
 * Hashes carried over from the old CA centre by the migration (packages/migration), kept with
 * their algorithm: `legacy-sha1-salt$<salt hex>$<digest hex>` (SHA-1 of salt || code) and
 * `legacy-md5-salt$...`. They verify as the old system did, and ra replaces them with scrypt on
 * the first successful use (card-status.ts); they are never written for new codes.
 */
function verifyLegacy(code: string, encoded: string): boolean {
  const [scheme, salt, digest] = encoded.split('$');
  const algorithm = scheme === 'legacy-sha1-salt' ? 'sha1' : scheme === 'legacy-md5-salt' ? 'md5' : undefined;
  if (!algorithm || !salt || !digest || !/^[0-9a-f]+$/.test(salt) || !/^[0-9a-f]+$/.test(digest)) {
    throw new PkiError('INTERNAL', 'verify subscriber code: stored legacy hash has an unknown format');
  }
  // The old system hashed the code as typed (UTF-8), without normalisation.
  const actual = createHash(algorithm).update(Buffer.from(salt, 'hex')).update(code, 'utf8').digest();
  const expected = Buffer.from(digest, 'hex');
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}
