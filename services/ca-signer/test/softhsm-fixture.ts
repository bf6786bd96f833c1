import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSoftHsmToken, type SoftHsmToken, useSoftHsmConfig } from '@pki/testing';
import { Pkcs11KeyManager } from '../src/adapters/pkcs11';

export const TEST_PIN = '246810';

export interface SoftHsmFixture {
  token: SoftHsmToken;
  /** Opens a key manager on the fixture's token (one per process at a time: close before the next). */
  open(options?: { sessionPoolSize?: number; pin?: string; tokenLabel?: string }): Promise<Pkcs11KeyManager>;
  dispose(): Promise<void>;
}

/** A fresh SoftHSM token in a temp folder, with SOFTHSM2_CONF pointed at it for this process. */
export async function createSoftHsmFixture(label = 'ca-signer-test'): Promise<SoftHsmFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'ca-signer-softhsm-'));
  const token = await createSoftHsmToken({ dir, label, pin: TEST_PIN, soPin: '13579246' });
  const restore = useSoftHsmConfig(token);
  return {
    token,
    open: (options = {}) =>
      Pkcs11KeyManager.open({
        modulePath: token.modulePath,
        tokenLabel: options.tokenLabel ?? token.label,
        pin: options.pin ?? token.pin,
        sessionPoolSize: options.sessionPoolSize ?? 4,
      }),
    async dispose() {
      restore();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
