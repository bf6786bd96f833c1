import type { Logger } from './logging';

/** Something that must be stopped on shutdown: a listener, a relay, a pool. */
export interface Stoppable {
  name: string;
  stop(): Promise<void>;
}

/**
 * Graceful shutdown in a fixed order: first stop accepting new work (listeners), then let
 * in-flight work drain (relays, consumers), then close shared resources (pools, HSM sessions).
 * Each step is bounded so that a stuck dependency cannot keep a pod in Terminating forever.
 */
export class Lifecycle {
  readonly #phases: { accept: Stoppable[]; drain: Stoppable[]; close: Stoppable[] } = { accept: [], drain: [], close: [] };
  readonly #logger: Logger;
  #stopping: Promise<void> | undefined;
  readonly #beforeStop: Array<() => void> = [];

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /** Listeners: stop accepting new requests, finish the ones in flight. */
  onStopAccepting(s: Stoppable): void {
    this.#phases.accept.push(s);
  }
  /** Background work: relays, consumers, schedulers. */
  onDrain(s: Stoppable): void {
    this.#phases.drain.push(s);
  }
  /** Shared resources closed last, in reverse order of registration. */
  onClose(s: Stoppable): void {
    this.#phases.close.unshift(s);
  }
  /** Called synchronously the moment shutdown begins (e.g. fail readiness). */
  onShutdownBegins(fn: () => void): void {
    this.#beforeStop.push(fn);
  }

  stop(stepTimeoutMs = 15_000): Promise<void> {
    this.#stopping ??= this.#run(stepTimeoutMs);
    return this.#stopping;
  }

  /** Stops on SIGTERM (Kubernetes) and SIGINT (Ctrl-C); a second signal exits at once. */
  handleSignals(exit: (code: number) => void = (code) => process.exit(code)): void {
    const handler = (signal: NodeJS.Signals): void => {
      if (this.#stopping) {
        this.#logger.warn({ signal }, 'second signal: exiting without waiting');
        exit(1);
        return;
      }
      this.#logger.info({ signal }, 'shutting down');
      this.stop().then(
        () => exit(0),
        (err: unknown) => {
          this.#logger.error({ err }, 'shutdown failed');
          exit(1);
        },
      );
    };
    process.once('SIGTERM', handler);
    process.once('SIGINT', handler);
  }

  async #run(stepTimeoutMs: number): Promise<void> {
    for (const fn of this.#beforeStop) fn();
    let failed = false;
    for (const phase of ['accept', 'drain', 'close'] as const) {
      // Within a phase the steps are independent and stop in parallel.
      const results = await Promise.allSettled(this.#phases[phase].map((s) => this.#bounded(s, stepTimeoutMs)));
      for (const [i, r] of results.entries()) {
        if (r.status === 'rejected') {
          failed = true;
          this.#logger.error({ err: r.reason, step: this.#phases[phase][i]?.name }, 'shutdown step failed');
        }
      }
    }
    if (failed) throw new Error('shutdown: one or more steps failed (see the log)');
  }

  async #bounded(s: Stoppable, ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        s.stop(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`${s.name} did not stop within ${ms} ms`)), ms);
        }),
      ]);
      this.#logger.debug({ step: s.name }, 'stopped');
    } finally {
      clearTimeout(timer);
    }
  }
}
