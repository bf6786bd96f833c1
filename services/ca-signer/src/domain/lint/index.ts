export * from './lint-result';
export * from './certificate-lint';
