import { PkiError } from '@pki/kit';

/**
 * SQLSTATE classes and node-level error codes that mean "the database cannot be reached or is
 * going away" rather than "this statement is wrong": callers may retry those later, so they
 * become UNAVAILABLE (HTTP 503, gRPC UNAVAILABLE) instead of INTERNAL.
 */
const UNAVAILABLE_SQLSTATE_PREFIXES = [
  '08', // connection exception
  '53', // insufficient resources (too many connections, disk full, out of memory)
  '57P', // operator intervention: admin shutdown, crash shutdown, cannot connect now
];
const UNAVAILABLE_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EPIPE', 'EAI_AGAIN']);
const UNAVAILABLE_MESSAGES = [
  /Connection terminated/i,
  /timeout exceeded when trying to connect/i,
  /Client has encountered a connection error/i,
  /Connection terminated due to connection timeout/i,
];

/** Whether an error from `pg` means the database is unreachable (retry later), not a bad statement. */
export function isConnectionFailure(err: unknown): boolean {
  if (err instanceof PkiError) return err.code === 'UNAVAILABLE';
  // Duck-typed, not instanceof Error: errors raised by node core come from another realm under
  // jest (and from a different copy of a library in general).
  if (typeof err !== 'object' || err === null) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (UNAVAILABLE_NODE_CODES.has(code)) return true;
    if (/^[0-9A-Z]{5}$/.test(code) && UNAVAILABLE_SQLSTATE_PREFIXES.some((p) => code.startsWith(p))) return true;
  }
  const nested = (err as { errors?: unknown }).errors; // AggregateError from dialling several addresses
  if (Array.isArray(nested) && nested.some(isConnectionFailure)) return true;
  const message = (err as { message?: unknown }).message;
  return typeof message === 'string' && UNAVAILABLE_MESSAGES.some((pattern) => pattern.test(message));
}

/**
 * Maps a connection failure to PkiError UNAVAILABLE ("database: <operation>: ..."); any other
 * error passes through unchanged, so constraint violations and the like stay visible to the
 * caller that knows what they mean.
 */
export function toDatabaseError(err: unknown, operation: string): unknown {
  if (err instanceof PkiError || !isConnectionFailure(err)) return err;
  const message = (err as { message?: unknown }).message;
  const reason = typeof message === 'string' && message ? message : String((err as { code?: unknown }).code ?? err);
  return new PkiError('UNAVAILABLE', `database: ${operation}: ${reason}`, { cause: err });
}
