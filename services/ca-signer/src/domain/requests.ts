import { PkiError } from '@pki/kit';

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,200}$/;

/** Every signing RPC takes an idempotency key of printable ASCII, chosen by the caller. */
export function assertIdempotencyKey(key: string, operation: string): void {
  if (!IDEMPOTENCY_KEY.test(key)) throw new PkiError('INVALID_ARGUMENT', `${operation}: idempotency key must be 1 to 200 printable ASCII characters`);
}
