export { Pkcs11KeyManager, type Pkcs11KeyManagerConfig, type ProbeSignatureResult } from './pkcs11-key-manager';
export { toPkiError as pkcs11ErrorToPkiError, pkcs11ReturnValue } from './pkcs11-errors';
export { SessionPool, type SessionPoolOptions } from './session-pool';
