export { FakeKeyManager, type FakeSignature } from './fake-key-manager';
