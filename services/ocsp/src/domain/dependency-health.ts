import { PkiError } from '@pki/kit';
import { isConnectionFailure } from '@pki/db';

export type Dependency = 'database' | 'events' | 'ca-signer';

/**
 * What the responder last saw of each dependency. The responder keeps answering from memory when
 * any is down; this is what readiness, the metrics and the logs say about it.
 */
export class DependencyHealth {
  readonly #state = new Map<Dependency, { up: boolean; since: number; detail: string }>();

  constructor(private readonly onChange: (dependency: Dependency, up: boolean, detail: string) => void = () => undefined) {}

  up(dependency: Dependency): void {
    const current = this.#state.get(dependency);
    if (current?.up) return;
    this.#state.set(dependency, { up: true, since: Date.now(), detail: 'ok' });
    if (current) this.onChange(dependency, true, 'ok');
  }

  down(dependency: Dependency, detail: string): void {
    const current = this.#state.get(dependency);
    if (current && !current.up) {
      current.detail = detail;
      return;
    }
    this.#state.set(dependency, { up: false, since: Date.now(), detail });
    this.onChange(dependency, false, detail);
  }

  isUp(dependency: Dependency): boolean {
    return this.#state.get(dependency)?.up ?? false;
  }

  describe(dependency: Dependency): string {
    const state = this.#state.get(dependency);
    if (!state) return 'not checked yet';
    return state.up ? 'ok' : `unavailable since ${new Date(state.since).toISOString()}: ${state.detail}`;
  }
}

/** Whether an error means PostgreSQL could not be reached (as opposed to ca-signer, or a bad statement). */
export function isDatabaseFailure(err: unknown): boolean {
  if (err instanceof PkiError) return err.code === 'UNAVAILABLE' && err.message.startsWith('database:');
  return isConnectionFailure(err);
}
