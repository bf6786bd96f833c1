import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { FixedClock, PkiError } from '@pki/kit';
import { combinePinShares, formatShare, generatePin, parseShare, type PinShare, splitPin, writeShareFiles } from './custody';

const clock = new FixedClock(new Date('2025-06-01T09:00:00Z'));
const PIN = 'K7Q2-MZ8R-4TXW-PC9D-HV3N';
const split = (pin = PIN, custodians = ['alice', 'bob', 'carol'], threshold = 2) => splitPin({ pin, custodians, threshold, tokenLabel: 'citizen-ca', clock });

/** Re-seals a share after an edit, as someone who knows the (unkeyed) checksum format could. */
function reseal(share: PinShare): PinShare {
  const fields = [share.format, share.splitId, share.tokenLabel, share.custodian, share.index, share.threshold, share.shares, share.createdAt, share.share, share.pinVerifier, share.shareMac];
  return { ...share, checksum: createHash('sha256').update(JSON.stringify(fields)).digest('hex') };
}

describe('PIN custody (Shamir m-of-n)', () => {
  it('any 2 of 3 shares give back the PIN and name their custodians', async () => {
    const [alice, bob, carol] = await split();
    for (const pair of [[alice!, bob!], [bob!, carol!], [carol!, alice!]]) {
      const result = await combinePinShares(pair, 'citizen-ca');
      expect(result).toMatchObject({ pin: PIN, threshold: 2, shares: 3, custodians: pair.map((s) => s.custodian) });
    }
    expect(await combinePinShares([alice!, bob!, carol!], 'citizen-ca')).toMatchObject({ pin: PIN, custodians: ['alice', 'bob', 'carol'] });
  });

  it('shares do not reveal the PIN length and each carries split id, threshold and custodian', async () => {
    const short = await split('0123456789ABCDEF');
    const long = await split(`${PIN}${PIN}`);
    expect(Buffer.from(short[0]!.share, 'base64')).toHaveLength(65);
    expect(Buffer.from(long[0]!.share, 'base64')).toHaveLength(65);
    expect(short.map((s) => [s.custodian, s.index, s.threshold, s.shares, s.splitId])).toEqual([
      ['alice', 1, 2, 3, short[0]!.splitId],
      ['bob', 2, 2, 3, short[0]!.splitId],
      ['carol', 3, 2, 3, short[0]!.splitId],
    ]);
  });

  it('refuses fewer shares than the threshold', async () => {
    const [alice] = await split();
    await expect(combinePinShares([alice!], 'citizen-ca')).rejects.toThrow(
      new PkiError('INVALID_ARGUMENT', "reconstruct PIN: 2 of 3 custodians' shares are needed, 1 given (alice)"),
    );
  });

  it('refuses shares of two different splits, naming who brought which', async () => {
    const first = await split();
    const second = await split();
    const error = await combinePinShares([first[0]!, second[1]!], 'citizen-ca').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PkiError);
    expect((error as PkiError).message).toMatch(/^reconstruct PIN: the shares come from different PIN splits \([0-9a-f]{8}…: alice; [0-9a-f]{8}…: bob\)$/);
  });

  it('refuses the same share twice, a damaged share, and another token', async () => {
    const [alice, bob] = await split();
    await expect(combinePinShares([alice!, alice!], 'citizen-ca')).rejects.toThrow("the same custodian's share was given more than once");
    const damaged = { ...bob!, share: Buffer.from(Buffer.from(bob!.share, 'base64').map((b, i) => (i === 0 ? b ^ 1 : b))).toString('base64') };
    await expect(combinePinShares([alice!, damaged], 'citizen-ca')).rejects.toThrow("reconstruct PIN: the share of 'bob' is damaged or was edited (checksum mismatch)");
    await expect(combinePinShares([alice!, bob!], 'other-token')).rejects.toThrow("the shares are for token 'citizen-ca', the configuration names token 'other-token'");
  });

  it('detects a forged share whose checksum was recomputed: the PIN verifier does not match', async () => {
    const [alice, bob] = await split();
    const forged = reseal({ ...bob!, share: Buffer.from(Buffer.from(bob!.share, 'base64').map((b, i) => (i === 3 ? b ^ 0x40 : b))).toString('base64') });
    await expect(combinePinShares([alice!, forged], 'citizen-ca')).rejects.toThrow(/do not reconstruct the PIN of split [0-9a-f]{8}… \(a share is wrong\)/);
  });

  it('detects a renamed custodian (the audit trail must name who really brought the share)', async () => {
    const [alice, bob] = await split();
    const renamed = reseal({ ...bob!, custodian: 'mallory' });
    await expect(combinePinShares([alice!, renamed], 'citizen-ca')).rejects.toThrow("the share file naming 'mallory' was altered after the split (its MAC does not verify)");
  });

  it('detects a lowered threshold: a 3-of-3 split edited to say 2', async () => {
    const shares = await split(PIN, ['alice', 'bob', 'carol'], 3);
    const lowered = shares.slice(0, 2).map((s) => reseal({ ...s, threshold: 2 }));
    await expect(combinePinShares(lowered, 'citizen-ca')).rejects.toThrow(/do not reconstruct the PIN/);
  });

  it('refuses weak splits: short PIN, threshold 1, too few or duplicate custodians, commas in names', async () => {
    await expect(split('424242')).rejects.toThrow('split PIN: a PIN in custody must be at least 16 characters');
    await expect(split(PIN, ['alice', 'bob'], 1)).rejects.toThrow('split PIN: the threshold must be at least 2');
    await expect(split(PIN, ['alice', 'bob'], 3)).rejects.toThrow('split PIN: 2 custodians cannot meet a threshold of 3');
    await expect(split(PIN, ['alice', 'Alice'], 2)).rejects.toThrow('split PIN: custodian names must be distinct');
    await expect(split(PIN, ['alice', 'bob, carol'], 2)).rejects.toThrow("custodian name 'bob, carol' must be");
  });

  it('generates 24-character base32 PINs', () => {
    const pins = new Set(Array.from({ length: 50 }, () => generatePin()));
    expect(pins.size).toBe(50);
    for (const pin of pins) expect(pin).toMatch(/^[0-9A-HJKMNP-TV-Z]{24}$/);
  });

  it('round-trips share files (one JSON line, mode 0600, never overwritten) and rejects malformed ones', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pin-shares-'));
    try {
      const shares = await split(PIN, ['王大明', 'bob', 'carol'], 2);
      const files = await writeShareFiles(join(dir, 'out'), shares);
      expect(files).toHaveLength(3);
      for (const file of files) expect((await stat(file)).mode & 0o777).toBe(0o600);
      expect((await stat(join(dir, 'out'))).mode & 0o777).toBe(0o700);
      const text = await readFile(files[0]!, 'utf8');
      expect(text.split('\n')).toHaveLength(2);
      expect(parseShare(text, files[0]!)).toEqual(shares[0]);
      await expect(writeShareFiles(join(dir, 'out'), shares)).rejects.toThrow('already exists');
      expect(() => parseShare('hello', 'x')).toThrow('read PIN share x: not a PIN share (not JSON)');
      expect(() => parseShare(formatShare({ ...shares[0]!, threshold: 9 }), 'x')).toThrow("read PIN share x: field 'threshold' is missing or malformed");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
