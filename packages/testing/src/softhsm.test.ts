import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PkiError } from '@pki/kit';
import { createSoftHsmToken, findSoftHsmModule, listTokenLabels, openOrCreateSoftHsmToken, useSoftHsmConfig } from './softhsm';

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
    await createSoftHsmToken({ dir, label: 'ca', pin: '1234', soPin: '12345678' });
    await expect(createSoftHsmToken({ dir, label: 'ca', pin: '1234', soPin: '12345678' })).rejects.toThrow(
      new PkiError('ALREADY_EXISTS', `create SoftHSM token: a token labelled 'ca' already exists in ${join(dir, 'tokens')}`),
    );
    await expect(createSoftHsmToken({ dir, label: 'x'.repeat(33), pin: '1234', soPin: '12345678' })).rejects.toThrow('label must be 1 to 32 bytes');
    await expect(createSoftHsmToken({ dir, label: 'ca2', pin: '12', soPin: '12345678' })).rejects.toThrow('pin must be 4 to 255 characters');
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
