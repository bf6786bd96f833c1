/** Sleeps that `wake()` (new work, or shutdown) ends early, for every sleeper at once; for background loops. */
export class Pause {
  readonly #sleepers = new Set<() => void>();

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        this.#sleepers.delete(finish);
        resolve();
      };
      const timer = setTimeout(finish, ms);
      this.#sleepers.add(finish);
    });
  }

  wake(): void {
    for (const finish of [...this.#sleepers]) finish();
  }
}
