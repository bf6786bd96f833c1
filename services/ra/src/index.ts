export * from './config';
export * from './app';
export { RegistrationAuthority } from './domain/registration-authority';
export { parseNationalId, withCheckDigit } from './domain/national-id';
export { addPrincipal, disablePrincipal, type NewPrincipal } from './adapters/postgres/principals';
