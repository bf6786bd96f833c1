export * from './identities';
export * from './postgres';
export * from './kafka';
export * from './softhsm';
