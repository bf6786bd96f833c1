export * from './identities';
export * from './postgres';
export * from './kafka';
export * from './softhsm';
export * from './pkilint';
export * from './postgres-account';
