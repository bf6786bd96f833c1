import { PkiError } from '@pki/kit';

/**
 * The subscriber code (用戶代碼): chosen by the citizen at application, it authenticates the
 * online self-service operations (suspend, resume, receipt confirmation). Stored only as a
 * memory-hard hash (ports/code-hasher). Wrong codes count per subscriber; after a run of them
 * self-service is locked for a period that doubles with every lock, so guessing stays
 * hopeless while a citizen who mistyped waits minutes, not days.
 */
export interface SubscriberCodePolicy {
  minLength: number;
  maxLength: number;
  /** Consecutive wrong codes that lock self-service. */
  maxFailures: number;
  /** The first lock; each further lock doubles it. */
  firstLockMinutes: number;
  /** No lock is longer than this. */
  maxLockMinutes: number;
}

export const DEFAULT_SUBSCRIBER_CODE_POLICY: SubscriberCodePolicy = { minLength: 8, maxLength: 64, maxFailures: 5, firstLockMinutes: 15, maxLockMinutes: 24 * 60 };

export function checkNewSubscriberCode(code: unknown, policy: SubscriberCodePolicy, operation: string): string {
  if (typeof code !== 'string') throw new PkiError('INVALID_ARGUMENT', `${operation}: subscriberCode must be a string`);
  const length = [...code].length;
  if (length < policy.minLength || length > policy.maxLength) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: subscriberCode must be ${policy.minLength} to ${policy.maxLength} characters`);
  }
  if (!/\p{L}/u.test(code) || !/\p{N}/u.test(code)) throw new PkiError('INVALID_ARGUMENT', `${operation}: subscriberCode must mix letters and digits`);
  if (/[\p{Cc}\p{Cs}]/u.test(code)) throw new PkiError('INVALID_ARGUMENT', `${operation}: subscriberCode may not hold control characters`);
  return code.normalize('NFC');
}

export interface CodeAttemptState {
  failures: number;
  lockouts: number;
  lockedUntil: Date | undefined;
}

/** The state after a wrong code; `locked` is set when this failure starts a lock. */
export function afterWrongCode(state: CodeAttemptState, now: Date, policy: SubscriberCodePolicy): CodeAttemptState & { locked?: Date } {
  const failures = state.failures + 1;
  if (failures < policy.maxFailures) return { failures, lockouts: state.lockouts, lockedUntil: state.lockedUntil };
  const minutes = Math.min(policy.firstLockMinutes * 2 ** state.lockouts, policy.maxLockMinutes);
  const lockedUntil = new Date(now.getTime() + minutes * 60_000);
  return { failures: 0, lockouts: state.lockouts + 1, lockedUntil, locked: lockedUntil };
}

/** Refuses while locked, telling when to try again (the HTTP layer turns it into Retry-After). */
export function assertNotLocked(state: CodeAttemptState, now: Date, operation: string): void {
  if (state.lockedUntil && state.lockedUntil.getTime() > now.getTime()) {
    const seconds = Math.ceil((state.lockedUntil.getTime() - now.getTime()) / 1000);
    throw new PkiError('RESOURCE_EXHAUSTED', `${operation}: self-service for this card is locked after repeated wrong subscriber codes until ${state.lockedUntil.toISOString()}`, {
      details: { retryAfterSeconds: String(seconds) },
    });
  }
}
