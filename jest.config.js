// One jest run covers every package and service. Sources are compiled by swc (no type check here:
// `make lint` type-checks), workspace packages resolve to their sources so tests need no build.
/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/packages', '<rootDir>/services'],
  testMatch: ['**/?(*.)test.ts'],
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2023', parser: { syntax: 'typescript', decorators: true }, transform: { legacyDecorator: true, decoratorMetadata: true } } }] },
  moduleNameMapper: {
    '^@pki/(kit|db|proto|grpc|outbox|audit-events|merkle|client-auth|x509|internal-ca|testing|devstack|bench|workstation|deploy|migration)$': '<rootDir>/packages/$1/src',
    '^@pki/(ca-signer|ra|ocsp|crl|card-mgmt|audit)$': '<rootDir>/services/$1/src',
  },
  globalSetup: '<rootDir>/jest.global-setup.ts',
  globalTeardown: '<rootDir>/jest.global-teardown.ts',
  testTimeout: 60000,
  maxWorkers: 2,
};
