export { Pkcs11KeyManager, type Pkcs11KeyManagerConfig } from './pkcs11-key-manager';
export { toPkiError as pkcs11ErrorToPkiError, pkcs11ReturnValue } from './pkcs11-errors';
export { SessionPool } from './session-pool';
