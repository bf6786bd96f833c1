import { execFileSync } from 'node:child_process';
import { chmodSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PkiError } from '@pki/kit';
import { createSoftHsmToken, findSoftHsmModule, listTokenLabels, openOrCreateSoftHsmToken, useSoftHsmConfig } from './softhsm';

/**
 * Everything an error carries (message, stack, causes, every own property, enumerable or not),
 * as text: none of the secrets may be in it.
 */
function expectNoSecret(error: unknown, secrets: string[]): void {
  const seen = new Set<unknown>();
  const texts: string[] = [];
  const collect = (value: unknown): void => {
    if (value === null || value === undefined || seen.has(value)) return;
    if (typeof value !== 'object') return void texts.push(String(value));
    seen.add(value);
    for (const key of Object.getOwnPropertyNames(value)) collect((value as Record<string, unknown>)[key]);
  };
  collect(error);
  expect(texts.length).toBeGreaterThan(0);
  const all = texts.join('\n');
  for (const secret of secrets) expect(all).not.toContain(secret);
}

/**
 * Makes a folder refuse new entries, even to root: the immutable attribute as root (chattr +i;
 * root ignores modes), mode 0500 otherwise.
 */
function lockFolder(folder: string): { unlock(): void } {
  if (process.getuid?.() === 0) {
    execFileSync('chattr', ['+i', folder]);
    return { unlock: () => execFileSync('chattr', ['-i', folder]) };
  }
  chmodSync(folder, 0o500);
  return { unlock: () => chmodSync(folder, 0o700) };
}

describe('SoftHSM token harness', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'softhsm-harness-'));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('initialises a token in a private token folder', async () => {
    const token = await createSoftHsmToken({ dir, label: 'ca', pin: '1234', soPin: '12345678' });
    expect(token).toEqual({
      modulePath: findSoftHsmModule(),
      configPath: join(dir, 'softhsm2.conf'),
      tokenDir: join(dir, 'tokens'),
      label: 'ca',
      pin: '1234',
    });
    expect(await readFile(token.configPath, 'utf8')).toContain(`directories.tokendir = ${join(dir, 'tokens')}`);
    expect(await listTokenLabels(token.configPath)).toEqual(['ca']);
  });

  it('reuses an existing token by label and adds new labels beside it', async () => {
    const first = await openOrCreateSoftHsmToken({ dir, label: 'ca', pin: '1234', soPin: '12345678' });
    const again = await openOrCreateSoftHsmToken({ dir, label: 'ca', pin: '1234', soPin: '12345678' });
    expect(first.created).toBe(true);
    expect(again.created).toBe(false);
    await openOrCreateSoftHsmToken({ dir, label: 'other', pin: '1234', soPin: '12345678' });
    expect((await listTokenLabels(first.configPath)).sort()).toEqual(['ca', 'other']);
  });

  it('refuses a duplicate label and bad options without leaking PINs', async () => {
    const pin = '730519';
    const soPin = '86204417';
    await createSoftHsmToken({ dir, label: 'ca', pin, soPin });
    const failures = [
      await createSoftHsmToken({ dir, label: 'ca', pin, soPin }).catch((e: unknown) => e),
      await createSoftHsmToken({ dir, label: 'x'.repeat(33), pin, soPin }).catch((e: unknown) => e),
      await createSoftHsmToken({ dir, label: 'ca2', pin: '73', soPin }).catch((e: unknown) => e),
      // 100 characters but 300 bytes: SoftHSM counts bytes (CK_ULONG ulPinLen), at most 255.
      await createSoftHsmToken({ dir, label: 'ca3', pin: '憑'.repeat(100), soPin }).catch((e: unknown) => e),
    ];
    expect(failures).toEqual([
      new PkiError('ALREADY_EXISTS', `create SoftHSM token: a token labelled 'ca' already exists in ${join(dir, 'tokens')}`),
      new PkiError('INVALID_ARGUMENT', 'create SoftHSM token: label must be 1 to 32 bytes (CK_TOKEN_INFO.label)'),
      new PkiError('INVALID_ARGUMENT', 'create SoftHSM token: pin must be 4 to 255 bytes'),
      new PkiError('INVALID_ARGUMENT', 'create SoftHSM token: pin must be 4 to 255 bytes'),
    ]);
    for (const failure of failures) expectNoSecret(failure, [pin, soPin, '73', '憑'.repeat(100)]);
  });

  it('reports a failing softhsm2-util with its own words, never with the PINs it was given on its command line', async () => {
    const pin = '730519';
    const soPin = '86204417';
    await createSoftHsmToken({ dir, label: 'ca', pin, soPin });
    // A token folder that cannot take a new token: softhsm2-util itself fails on --init-token.
    const tokens = join(dir, 'tokens');
    const locked = lockFolder(tokens);
    let failure: unknown;
    try {
      failure = await createSoftHsmToken({ dir, label: 'second', pin, soPin }).catch((e: unknown) => e);
    } finally {
      locked.unlock();
    }
    expect(failure).toBeInstanceOf(PkiError);
    expect(failure).toMatchObject({ code: 'INTERNAL', message: expect.stringMatching(/^create SoftHSM token: softhsm2-util failed: .+/) });
    expectNoSecret(failure, [pin, soPin]);
    // The token that existed is intact.
    expect(await listTokenLabels(join(dir, 'softhsm2.conf'))).toEqual(['ca']);
  });

  it('sets SOFTHSM2_CONF in the real environment the module reads, and restores it', () => {
    const childSees = () => execFileSync('sh', ['-c', 'printf %s "$SOFTHSM2_CONF"']).toString();
    const before = childSees();
    const restore = useSoftHsmConfig({ configPath: '/tmp/x.conf' });
    expect(process.env['SOFTHSM2_CONF']).toBe('/tmp/x.conf');
    // A child inherits the C environment, the same one libsofthsm2 reads with getenv.
    expect(childSees()).toBe('/tmp/x.conf');
    restore();
    expect(childSees()).toBe(before);
  });
});
