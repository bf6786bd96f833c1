import { createHash, createHmac, randomBytes, randomInt, scrypt, timingSafeEqual } from 'node:crypto';
import { chmod, mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import { combine, split } from 'shamir-secret-sharing';
import { PkiError, type Clock } from '@pki/kit';

/**
 * m-of-n custody of the token PIN used for key ceremonies.
 *
 * The PIN is split with Shamir's scheme over GF(2^8) (privy-io's audited shamir-secret-sharing).
 * Fewer than m shares reveal nothing about the PIN, but Shamir's scheme itself cannot tell a wrong
 * combination from a right one: any m points give *some* polynomial. So every share carries
 *
 * - the split id, threshold and share count, so shares of different splits or too few shares are
 *   refused before anything is combined;
 * - a PIN verifier, scrypt(PIN, split id), so a combination that yields the wrong PIN is refused
 *   before the token sees it (a wrong login would count against the token's retry limit, and a
 *   locked user PIN needs the SO);
 * - a MAC of the share under a key derived from the same scrypt output, so a custodian name or
 *   share index edited in a file is detected once the PIN is known (the audit trail names the
 *   custodians present, so their names must be the ones the split wrote);
 * - a SHA-256 checksum of the file's fields, which catches a damaged or mistyped share early and
 *   names whose share it is.
 *
 * The verifier is the only thing in a share that depends on the PIN alone, and it allows offline
 * guessing; that is why it is scrypt-hardened and why {@link splitPin} refuses short PINs: a PIN
 * in custody is either generated here (24 random base32 characters, 120 bits) or at least 16
 * characters long.
 */

export const SHARE_FORMAT = 'pki-ceremony-pin-share/1';

/** One custodian's share, as written to (and read from) its file: one line of JSON. */
export interface PinShare {
  format: typeof SHARE_FORMAT;
  /** 16 random bytes, hex: which split this share belongs to. */
  splitId: string;
  /** The token whose user PIN this is (CK_TOKEN_INFO.label). */
  tokenLabel: string;
  custodian: string;
  /** 1..shares; also the order the custodians were named in. */
  index: number;
  threshold: number;
  shares: number;
  createdAt: string;
  /** The Shamir share (secret length + 1 bytes, the last one its x coordinate), base64. */
  share: string;
  /** scrypt-derived PIN verifier, hex; identical in every share of a split. */
  pinVerifier: string;
  /** HMAC-SHA256 over (split id, custodian, index, share) with the scrypt-derived MAC key, hex. */
  shareMac: string;
  /** SHA-256 over every field above, hex. */
  checksum: string;
}

/** The outcome of combining shares: the PIN, and who brought the shares (for the audit events). */
export interface ReconstructedPin {
  pin: string;
  splitId: string;
  threshold: number;
  shares: number;
  /** The custodians whose shares were used, in the order given. */
  custodians: string[];
}

export const MIN_CUSTODY_PIN_LENGTH = 16;
const MAX_PIN_BYTES = 255; // SoftHSM's MAX_PIN_LEN; network HSMs allow less or the same
/** Secrets are padded to this length so that a share does not reveal the PIN's length. */
const PADDED_SECRET_BYTES = 64;
const CUSTODIAN_NAME = /^[\p{L}\p{N}][\p{L}\p{N} .'_-]{0,63}$/u;
const SPLIT_ID = /^[0-9a-f]{32}$/;
const HEX_64 = /^[0-9a-f]{64}$/;
// scrypt N=2^15, r=8, p=1 (RFC 7914 §2's interactive-login recommendation): ~0.1 s and 32 MiB
// per guess, paid once per ceremony step by the operator and once per guess by an attacker.
const SCRYPT = { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 } as const;
// Crockford's base32 alphabet: no I, L, O, U, so a PIN read aloud or retyped is unambiguous.
const PIN_ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** A fresh random token PIN: 24 base32 characters, 120 bits. */
export function generatePin(): string {
  let pin = '';
  for (let i = 0; i < 24; i++) pin += PIN_ALPHABET[randomInt(PIN_ALPHABET.length)];
  return pin;
}

/** Checks a custodian's name: it goes into audit events, so it is short and has no separators. */
export function checkCustodianName(name: string, operation: string): string {
  const normalized = name.normalize('NFC').trim();
  if (!CUSTODIAN_NAME.test(normalized)) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: custodian name '${name.slice(0, 80)}' must be 1 to 64 letters, digits, spaces, . ' _ or - (no commas)`);
  }
  return normalized;
}

/** Splits the token PIN among `custodians`, any `threshold` of whom can reconstruct it. */
export async function splitPin(request: { pin: string; custodians: readonly string[]; threshold: number; tokenLabel: string; clock: Clock }): Promise<PinShare[]> {
  const operation = 'split PIN';
  const custodians = request.custodians.map((c) => checkCustodianName(c, operation));
  const n = custodians.length;
  if (new Set(custodians.map((c) => c.toLowerCase())).size !== n) throw new PkiError('INVALID_ARGUMENT', `${operation}: custodian names must be distinct`);
  // A threshold of 1 would let any single custodian run a ceremony, which custody exists to prevent.
  if (!Number.isInteger(request.threshold) || request.threshold < 2) throw new PkiError('INVALID_ARGUMENT', `${operation}: the threshold must be at least 2`);
  if (n < request.threshold) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${n} custodians cannot meet a threshold of ${request.threshold}`);
  if (n > 255) throw new PkiError('INVALID_ARGUMENT', `${operation}: at most 255 custodians`);
  checkPin(request.pin, operation);
  if (request.tokenLabel.length === 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: token label is empty`);

  const splitId = randomBytes(16).toString('hex');
  const keys = await deriveKeys(request.pin, splitId);
  const points = await split(padSecret(request.pin), n, request.threshold);
  const createdAt = request.clock.now().toISOString();
  return custodians.map((custodian, i) => {
    const share = Buffer.from(points[i]!).toString('base64');
    const body: Omit<PinShare, 'checksum'> = {
      format: SHARE_FORMAT,
      splitId,
      tokenLabel: request.tokenLabel,
      custodian,
      index: i + 1,
      threshold: request.threshold,
      shares: n,
      createdAt,
      share,
      pinVerifier: keys.verifier.toString('hex'),
      shareMac: shareMac(keys.macKey, splitId, custodian, i + 1, share),
    };
    return { ...body, checksum: checksumOf(body) };
  });
}

/**
 * Reconstructs the PIN from custodians' shares, refusing (INVALID_ARGUMENT, before anything reaches
 * the token) a damaged share, shares of different splits or of another token, the same share
 * twice, fewer shares than the threshold, and any combination that does not give back the PIN.
 */
export async function combinePinShares(shares: readonly PinShare[], expectedTokenLabel: string): Promise<ReconstructedPin> {
  const operation = 'reconstruct PIN';
  if (shares.length === 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: no shares given`);
  for (const share of shares) {
    if (checksumOf(withoutChecksum(share)) !== share.checksum) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: the share of '${share.custodian}' is damaged or was edited (checksum mismatch)`);
    }
  }
  const splitIds = [...new Set(shares.map((s) => s.splitId))];
  if (splitIds.length > 1) {
    const bySplit = splitIds.map((id) => `${id.slice(0, 8)}…: ${shares.filter((s) => s.splitId === id).map((s) => s.custodian).join(', ')}`);
    throw new PkiError('INVALID_ARGUMENT', `${operation}: the shares come from different PIN splits (${bySplit.join('; ')})`);
  }
  const first = shares[0]!;
  for (const share of shares) {
    if (share.threshold !== first.threshold || share.shares !== first.shares || share.pinVerifier !== first.pinVerifier || share.tokenLabel !== first.tokenLabel) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: the shares of split ${first.splitId.slice(0, 8)}… disagree about the split (edited files?)`);
    }
  }
  if (first.tokenLabel !== expectedTokenLabel) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: the shares are for token '${first.tokenLabel}', the configuration names token '${expectedTokenLabel}'`);
  }
  const custodians = shares.map((s) => s.custodian);
  if (new Set(shares.map((s) => s.index)).size !== shares.length || new Set(custodians).size !== shares.length) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: the same custodian's share was given more than once`);
  }
  if (shares.length < first.threshold) {
    throw new PkiError(
      'INVALID_ARGUMENT',
      `${operation}: ${first.threshold} of ${first.shares} custodians' shares are needed, ${shares.length} given (${custodians.join(', ')})`,
    );
  }
  const points = shares.map((s) => new Uint8Array(Buffer.from(s.share, 'base64')));
  if (points.some((p) => p.length !== points[0]!.length)) throw new PkiError('INVALID_ARGUMENT', `${operation}: the shares have different lengths (edited files?)`);
  let pin: string | undefined;
  try {
    pin = unpadSecret(await combine(points));
  } catch {
    pin = undefined; // garbage padding: the same outcome as a wrong PIN, reported below
  }
  const keys = pin === undefined ? undefined : await deriveKeys(pin, first.splitId);
  if (pin === undefined || keys === undefined || !timingSafeEqual(keys.verifier, Buffer.from(first.pinVerifier, 'hex'))) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: the shares of ${custodians.join(', ')} do not reconstruct the PIN of split ${first.splitId.slice(0, 8)}… (a share is wrong)`);
  }
  for (const share of shares) {
    const expected = Buffer.from(shareMac(keys.macKey, share.splitId, share.custodian, share.index, share.share), 'hex');
    if (!timingSafeEqual(expected, Buffer.from(share.shareMac, 'hex'))) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: the share file naming '${share.custodian}' was altered after the split (its MAC does not verify)`);
    }
  }
  return { pin, splitId: first.splitId, threshold: first.threshold, shares: first.shares, custodians };
}

/** The file content of a share: one line of JSON, so it can also be pasted at a prompt. */
export function formatShare(share: PinShare): string {
  return `${JSON.stringify(share)}\n`;
}

/** Parses and checks the shape of a share file (its integrity is checked by {@link combinePinShares}). */
export function parseShare(text: string, source: string): PinShare {
  const operation = `read PIN share ${source}`;
  let value: unknown;
  try {
    value = JSON.parse(text.trim());
  } catch {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: not a PIN share (not JSON)`);
  }
  const s = value as Partial<PinShare> | null;
  const bad = (field: string) => new PkiError('INVALID_ARGUMENT', `${operation}: field '${field}' is missing or malformed`);
  if (s === null || typeof s !== 'object' || s.format !== SHARE_FORMAT) throw new PkiError('INVALID_ARGUMENT', `${operation}: not a ${SHARE_FORMAT} share`);
  if (typeof s.splitId !== 'string' || !SPLIT_ID.test(s.splitId)) throw bad('splitId');
  if (typeof s.tokenLabel !== 'string' || s.tokenLabel.length === 0) throw bad('tokenLabel');
  if (typeof s.custodian !== 'string' || !CUSTODIAN_NAME.test(s.custodian)) throw bad('custodian');
  if (!Number.isInteger(s.shares) || s.shares! < 2 || s.shares! > 255) throw bad('shares');
  if (!Number.isInteger(s.threshold) || s.threshold! < 2 || s.threshold! > s.shares!) throw bad('threshold');
  if (!Number.isInteger(s.index) || s.index! < 1 || s.index! > s.shares!) throw bad('index');
  if (typeof s.createdAt !== 'string') throw bad('createdAt');
  if (typeof s.share !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(s.share)) throw bad('share');
  for (const field of ['pinVerifier', 'shareMac', 'checksum'] as const) {
    if (typeof s[field] !== 'string' || !HEX_64.test(s[field])) throw bad(field);
  }
  return {
    format: SHARE_FORMAT,
    splitId: s.splitId,
    tokenLabel: s.tokenLabel,
    custodian: s.custodian,
    index: s.index!,
    threshold: s.threshold!,
    shares: s.shares!,
    createdAt: s.createdAt,
    share: s.share,
    pinVerifier: s.pinVerifier!,
    shareMac: s.shareMac!,
    checksum: s.checksum!,
  };
}

/**
 * Writes one file per custodian into `dir` (created 0700), each 0600 and named after its index
 * and custodian. Refuses to overwrite: a share of an older split lying next to new ones is how
 * custodians end up carrying the wrong share.
 */
export async function writeShareFiles(dir: string, shares: readonly PinShare[]): Promise<string[]> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const files: string[] = [];
  for (const share of shares) {
    const slug = share.custodian.normalize('NFKD').replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '').toLowerCase() || 'custodian';
    const file = path.join(dir, `${share.splitId.slice(0, 8)}-${share.index}-${slug}.share`);
    let handle;
    try {
      handle = await open(file, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new PkiError('ALREADY_EXISTS', `split PIN: ${file} already exists`);
      throw err;
    }
    try {
      await handle.writeFile(formatShare(share));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await chmod(file, 0o600); // the umask may have narrowed it; make the mode exact
    files.push(file);
  }
  return files;
}

/** Throws unless `pin` can be put in custody and set on a token. */
export function checkPin(pin: string, operation: string): void {
  if (typeof pin !== 'string' || Buffer.byteLength(pin) > MAX_PIN_BYTES) throw new PkiError('INVALID_ARGUMENT', `${operation}: the PIN must be at most ${MAX_PIN_BYTES} bytes`);
  if (pin.length < MIN_CUSTODY_PIN_LENGTH) {
    throw new PkiError(
      'INVALID_ARGUMENT',
      `${operation}: a PIN in custody must be at least ${MIN_CUSTODY_PIN_LENGTH} characters (the share verifier could be brute-forced); let split-pin generate one`,
    );
  }
  if (/[\r\n]/.test(pin)) throw new PkiError('INVALID_ARGUMENT', `${operation}: the PIN must not contain line breaks`);
}

async function deriveKeys(pin: string, splitId: string): Promise<{ verifier: Buffer; macKey: Buffer }> {
  const derived = await new Promise<Buffer>((resolve, reject) =>
    scrypt(pin, `${SHARE_FORMAT} verifier ${splitId}`, 64, SCRYPT, (err, key) => (err ? reject(err) : resolve(key))),
  );
  return { verifier: derived.subarray(0, 32), macKey: derived.subarray(32) };
}

function shareMac(macKey: Buffer, splitId: string, custodian: string, index: number, share: string): string {
  return createHmac('sha256', macKey).update(JSON.stringify([splitId, custodian, index, share])).digest('hex');
}

function withoutChecksum(share: PinShare): Omit<PinShare, 'checksum'> {
  const { checksum: _checksum, ...body } = share;
  return body;
}

/** SHA-256 over the fields in a fixed order (not JSON.stringify of the object, whose key order is the writer's). */
function checksumOf(body: Omit<PinShare, 'checksum'>): string {
  const fields = [body.format, body.splitId, body.tokenLabel, body.custodian, body.index, body.threshold, body.shares, body.createdAt, body.share, body.pinVerifier, body.shareMac];
  return createHash('sha256').update(JSON.stringify(fields)).digest('hex');
}

/** [length][PIN bytes][random padding] to a fixed size, so shares do not reveal the PIN's length. */
function padSecret(pin: string): Uint8Array {
  const bytes = Buffer.from(pin, 'utf8');
  const size = Math.max(PADDED_SECRET_BYTES, bytes.length + 1);
  const secret = Buffer.concat([Buffer.from([bytes.length]), bytes, randomBytes(size - bytes.length - 1)]);
  return new Uint8Array(secret);
}

function unpadSecret(secret: Uint8Array): string {
  const length = secret[0]!;
  if (length === 0 || length + 1 > secret.length) throw new Error('bad padding');
  return Buffer.from(secret.subarray(1, 1 + length)).toString('utf8');
}
