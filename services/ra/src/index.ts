export * from './config';
export * from './app';
export { RegistrationAuthority } from './domain/registration-authority';
export { parseNationalId, withCheckDigit } from './domain/national-id';
export { addPrincipal, disablePrincipal, type NewPrincipal } from './adapters/postgres/principals';
// For the migration tool (packages/migration), which seals legacy data exactly as ra does.
export { AesGcmPersonalDataVault, decodeKey, type VaultKey, type VaultKeys } from './adapters/crypto/personal-data-vault';
export { encodeStatusChange } from './adapters/postgres/registry';
export { parseName, parseBirthDate, parseEmail } from './domain/personal-data';
export type { PersonalDataVault } from './ports/personal-data-vault';
export { IDENTITY_LOOKUP_SQL } from './adapters/postgres/agency';
