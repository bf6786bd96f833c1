import { PkiError } from '@pki/kit';

export interface SessionPoolOptions<S> {
  /**
   * Whether an operation's error means its session is dead (device, token or session errors).
   * A dead session is never lent again: the next operation on it would fail the same way, or
   * worse, run on a handle the module has since given to someone else.
   */
  isBroken?: (err: unknown) => boolean;
  /** Releases a dead session (e.g. a quiet C_CloseSession); it has already left the pool. */
  discard?: (session: S) => void;
}

/**
 * A fixed set of PKCS#11 sessions, each lent to one operation at a time. PKCS#11 sessions are not
 * thread-safe (PKCS#11 v2.40 §5.6: an application must not run concurrent functions on one
 * session), and graphene's async calls run on libuv worker threads, so exclusivity is enforced
 * here. Waiters are served first come, first served.
 *
 * The pool shrinks when sessions die and never opens new ones: a dead session usually means the
 * device went away, and the cure is to re-initialise the whole module (the resilient key manager
 * does that), not to pile new sessions onto a broken one. With no live session left, every waiter
 * and every later caller fails with UNAVAILABLE instead of waiting forever.
 */
export class SessionPool<S> {
  readonly #idle: S[];
  readonly #waiters: Array<{ resolve: (session: S) => void; reject: (err: Error) => void }> = [];
  readonly #options: SessionPoolOptions<S>;
  #size: number;
  #inUse = 0;
  #closed = false;
  #onDrained: (() => void) | undefined;

  constructor(sessions: readonly S[], options: SessionPoolOptions<S> = {}) {
    if (sessions.length === 0) throw new PkiError('INVALID_ARGUMENT', 'session pool: at least one session is required');
    this.#idle = [...sessions];
    this.#size = sessions.length;
    this.#options = options;
  }

  /** `size` counts live sessions: it drops when a dead one is discarded. */
  get stats(): { size: number; idle: number; inUse: number; waiting: number } {
    return { size: this.#size, idle: this.#idle.length, inUse: this.#inUse, waiting: this.#waiters.length };
  }

  /**
   * Runs `operation` with a session of its own; the session returns to the pool afterwards,
   * unless the operation's error says the session is dead.
   */
  async use<T>(operationName: string, operation: (session: S) => Promise<T>): Promise<T> {
    const session = await this.#acquire(operationName);
    let broken = false;
    try {
      return await operation(session);
    } catch (err) {
      broken = this.#options.isBroken?.(err) ?? false;
      throw err;
    } finally {
      if (broken) this.#discard(session);
      else this.#release(session);
    }
  }

  /**
   * Refuses new work, fails the queued waiters, waits for operations in flight and returns every
   * session so the caller can close them.
   */
  async close(): Promise<S[]> {
    this.#closed = true;
    for (const waiter of this.#waiters.splice(0)) waiter.reject(closedError('wait for HSM session'));
    if (this.#inUse > 0) await new Promise<void>((resolve) => (this.#onDrained = resolve));
    return this.#idle.splice(0);
  }

  #acquire(operationName: string): Promise<S> {
    if (this.#closed) return Promise.reject(closedError(operationName));
    if (this.#size === 0) return Promise.reject(exhaustedError(operationName));
    const session = this.#idle.pop();
    if (session !== undefined) {
      this.#inUse++;
      return Promise.resolve(session);
    }
    return new Promise<S>((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  #release(session: S): void {
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) {
      // Handed over directly: #inUse is unchanged.
      waiter.resolve(session);
      return;
    }
    this.#inUse--;
    this.#idle.push(session);
    if (this.#inUse === 0) this.#onDrained?.();
  }

  #discard(session: S): void {
    this.#inUse--;
    this.#size--;
    try {
      this.#options.discard?.(session);
    } catch {
      // Closing a dead session may fail too; it is out of the pool either way.
    }
    if (this.#size === 0) {
      // Nobody will ever release a session to these waiters.
      for (const waiter of this.#waiters.splice(0)) waiter.reject(exhaustedError('wait for HSM session'));
    }
    if (this.#inUse === 0) this.#onDrained?.();
  }
}

function exhaustedError(operation: string): PkiError {
  return new PkiError('UNAVAILABLE', `${operation}: HSM unavailable: every HSM session has failed`);
}

function closedError(operation: string): PkiError {
  return new PkiError('UNAVAILABLE', `${operation}: key manager closed`);
}
