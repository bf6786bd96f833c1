/** A sleep that `wake()` (new work, or shutdown) ends early; for background loops. */
export class Pause {
  #wake: (() => void) | undefined;

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(finish, ms);
      this.#wake = finish;
    });
  }

  wake(): void {
    this.#wake?.();
  }
}
