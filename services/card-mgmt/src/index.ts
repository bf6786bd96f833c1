export * from './config';
export * from './app';
// The workstation client's side of the counter protocol (decision 0024).
export { unwrapSecret, type WrappedSecret } from './domain/admin-secret';
export { challengeMessage } from './domain/counter';
