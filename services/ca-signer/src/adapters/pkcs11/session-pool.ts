import { PkiError } from '@pki/kit';

/**
 * A fixed set of PKCS#11 sessions, each lent to one operation at a time. PKCS#11 sessions are not
 * thread-safe (PKCS#11 v2.40 §5.6: an application must not run concurrent functions on one
 * session), and graphene's async calls run on libuv worker threads, so exclusivity is enforced
 * here. Waiters are served first come, first served.
 */
export class SessionPool<S> {
  readonly #idle: S[];
  readonly #waiters: Array<{ resolve: (session: S) => void; reject: (err: Error) => void }> = [];
  readonly #size: number;
  #inUse = 0;
  #closed = false;
  #onDrained: (() => void) | undefined;

  constructor(sessions: readonly S[]) {
    if (sessions.length === 0) throw new PkiError('INVALID_ARGUMENT', 'session pool: at least one session is required');
    this.#idle = [...sessions];
    this.#size = sessions.length;
  }

  get stats(): { size: number; idle: number; inUse: number; waiting: number } {
    return { size: this.#size, idle: this.#idle.length, inUse: this.#inUse, waiting: this.#waiters.length };
  }

  /** Runs `operation` with a session of its own; the session returns to the pool afterwards. */
  async use<T>(operationName: string, operation: (session: S) => Promise<T>): Promise<T> {
    const session = await this.#acquire(operationName);
    try {
      return await operation(session);
    } finally {
      this.#release(session);
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
}

function closedError(operation: string): PkiError {
  return new PkiError('UNAVAILABLE', `${operation}: key manager closed`);
}
