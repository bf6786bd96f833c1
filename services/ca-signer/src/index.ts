export * from './config';
export * from './app';
export * from './domain';
export * from './domain/certificate-authority';
export type { KeyManager } from './ports/key-manager';
export * from './ceremony/dev-hierarchy';
