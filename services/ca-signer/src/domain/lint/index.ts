export * from './lint-result';
export * from './certificate-lint';
export * from './crl-lint';
