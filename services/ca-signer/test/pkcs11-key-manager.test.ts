import { constants, createPublicKey, verify } from 'node:crypto';
import { Writable } from 'node:stream';
import { createLogger } from '@pki/kit';
import { Pkcs11KeyManager } from '../src/adapters/pkcs11';
import { describeKeyManagerContract, expectPkiError } from './key-manager-contract';
import { createSoftHsmFixture, type SoftHsmFixture, TEST_PIN } from './softhsm-fixture';

let fixture: SoftHsmFixture;
beforeAll(async () => {
  fixture = await createSoftHsmFixture();
});
afterAll(async () => fixture.dispose());

describeKeyManagerContract('PKCS#11 on SoftHSM', () => fixture.open());

describe('Pkcs11KeyManager on SoftHSM', () => {
  it('signs 200 requests in parallel over 4 sessions, every signature valid', async () => {
    const keyManager = await fixture.open({ sessionPoolSize: 4 });
    try {
      const rsa = await keyManager.generateKeyPair({ label: 'concurrency-rsa', spec: { type: 'RSA', bits: 2048 } });
      const ec = await keyManager.generateKeyPair({ label: 'concurrency-ec', spec: { type: 'EC', curve: 'P-256' } });
      const rsaKey = createPublicKey({ key: rsa.publicKeySpki, format: 'der', type: 'spki' });
      const ecKey = createPublicKey({ key: ec.publicKeySpki, format: 'der', type: 'spki' });

      // The event loop must stay free while the HSM works: count timer ticks during the burst.
      let ticks = 0;
      const ticker = setInterval(() => ticks++, 1);
      const results = await Promise.all(
        Array.from({ length: 200 }, async (_, i) => {
          const data = Buffer.from(`tbs ${i}`);
          if (i % 4 === 3) {
            const { signature } = await keyManager.sign({ keyId: ec.keyId, algorithm: 'ECDSA-SHA256', data });
            return verify('sha256', data, { key: ecKey, dsaEncoding: 'der' }, signature);
          }
          const pss = i % 4 === 1;
          const { signature } = await keyManager.sign({ keyId: rsa.keyId, algorithm: pss ? 'RSA-PSS-SHA256' : 'RSA-SHA256', data });
          return verify('sha256', data, pss ? { key: rsaKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } : rsaKey, signature);
        }),
      );
      clearInterval(ticker);
      expect(results.filter((ok) => ok)).toHaveLength(200);
      expect(ticks).toBeGreaterThan(0);
    } finally {
      await keyManager.close();
    }
  });

  it('keeps keys in the token across close and reopen (the embedded stack restarts on the same token)', async () => {
    let keyManager = await fixture.open();
    const { keyId, publicKeySpki } = await keyManager.generateKeyPair({ label: 'persistent', spec: { type: 'EC', curve: 'P-384' } });
    await keyManager.close();
    await expectPkiError(keyManager.sign({ keyId, algorithm: 'ECDSA-SHA384', data: Buffer.from('x') }), 'UNAVAILABLE', 'sign: key manager closed');
    keyManager = await fixture.open();
    try {
      expect((await keyManager.getPublicKey({ keyId })).publicKeySpki).toEqual(publicKeySpki);
      const { signature } = await keyManager.sign({ keyId, algorithm: 'ECDSA-SHA384', data: Buffer.from('x') });
      expect(verify('sha384', Buffer.from('x'), { key: createPublicKey({ key: publicKeySpki, format: 'der', type: 'spki' }), dsaEncoding: 'der' }, signature)).toBe(true);
    } finally {
      await keyManager.close();
    }
  });

  it('refuses a wrong PIN without putting any PIN in the error or the log', async () => {
    const lines: string[] = [];
    const logger = createLogger({ service: 'ca-signer', level: 'debug', destination: new Writable({ write: (chunk, _e, cb) => (lines.push(String(chunk)), cb()) }) });
    const error = await expectPkiError(
      Pkcs11KeyManager.open({ modulePath: fixture.token.modulePath, tokenLabel: fixture.token.label, pin: '999999', sessionPoolSize: 2 }, { logger }),
      'FAILED_PRECONDITION',
      'open HSM: CKR_PIN_INCORRECT in C_Login',
    );
    const everything = `${error.message} ${JSON.stringify(error.details)} ${String((error.cause as Error | undefined)?.message)} ${lines.join('')}`;
    expect(everything).not.toContain('999999');
    expect(everything).not.toContain(TEST_PIN);

    // A correct open logs, and its log lines do not carry the PIN either.
    const keyManager = await Pkcs11KeyManager.open({ modulePath: fixture.token.modulePath, tokenLabel: fixture.token.label, pin: TEST_PIN, sessionPoolSize: 1 }, { logger });
    await keyManager.generateKeyPair({ label: 'logged', spec: { type: 'EC', curve: 'P-256' } });
    await keyManager.close();
    expect(lines.join('')).toContain('HSM opened');
    expect(lines.join('')).not.toContain(TEST_PIN);
  });

  it('names the missing token and the ones present when the label is wrong', async () => {
    await expectPkiError(fixture.open({ tokenLabel: 'no-such-token' }), 'UNAVAILABLE', `open HSM: HSM unavailable: no token labelled 'no-such-token' (tokens present: '${fixture.token.label}'`);
  });

  it('reports an unloadable module as UNAVAILABLE', async () => {
    await expectPkiError(
      Pkcs11KeyManager.open({ modulePath: '/nonexistent/libpkcs11.so', tokenLabel: 'x', pin: TEST_PIN, sessionPoolSize: 1 }),
      'UNAVAILABLE',
      'open HSM: HSM unavailable: cannot load PKCS#11 module /nonexistent/libpkcs11.so',
    );
  });

  it('is unhealthy once closed', async () => {
    const keyManager = await fixture.open({ sessionPoolSize: 1 });
    expect(await keyManager.healthCheck()).toEqual({ healthy: true, detail: `token '${fixture.token.label}' logged in, 1 sessions` });
    await keyManager.close();
    expect(await keyManager.healthCheck()).toEqual({ healthy: false, detail: 'key manager closed' });
  });
});
