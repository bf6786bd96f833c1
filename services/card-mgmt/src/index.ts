export * from './config';
export * from './app';
// The workstation client's side of the counter protocol (decision 0024).
export { unwrapSecret, deriveTransportSecret, type WrappedSecret } from './domain/admin-secret';
export { attestationMessage } from './domain/counter';
export { bindingMessage } from './domain/mobile';
