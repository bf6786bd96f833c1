import { describeKeyManagerContract, expectPkiError } from '../../../test/key-manager-contract';
import { FakeKeyManager } from './fake-key-manager';

describeKeyManagerContract('in-memory fake', async () => new FakeKeyManager());

describe('FakeKeyManager', () => {
  it('records what it signs and fails like a dead HSM when told', async () => {
    const keyManager = new FakeKeyManager();
    const { keyId } = await keyManager.generateKeyPair({ label: 'k', spec: { type: 'EC', curve: 'P-256' } });
    await keyManager.sign({ keyId, algorithm: 'ECDSA-SHA256', data: Buffer.from('a') });
    expect(keyManager.signatures).toEqual([{ keyId, algorithm: 'ECDSA-SHA256', data: Buffer.from('a') }]);

    keyManager.simulateOutage('CKR_DEVICE_ERROR');
    await expectPkiError(keyManager.sign({ keyId, algorithm: 'ECDSA-SHA256', data: Buffer.from('b') }), 'UNAVAILABLE', 'sign: HSM unavailable: CKR_DEVICE_ERROR');
    expect(await keyManager.healthCheck()).toEqual({ healthy: false, detail: 'HSM unavailable: CKR_DEVICE_ERROR' });
    expect(keyManager.signatures).toHaveLength(1);

    keyManager.simulateOutage(undefined);
    await keyManager.close();
    await expectPkiError(keyManager.getPublicKey({ keyId }), 'UNAVAILABLE', 'get public key: key manager closed');
  });
});
