export * from './config';
export * from './app';
export type { CrlStore, CrlRecord, KnownIssuer } from './ports/crl-store';
