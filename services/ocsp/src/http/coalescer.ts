/**
 * Gathers the messages one thread sends another during a turn of its event loop and posts them as
 * one (at the end of the turn, setImmediate): every postMessage wakes the receiving thread, and
 * under load those wake-ups, more than the copies, are what a hand-off between the serving threads
 * and the main thread costs.
 */
export class Coalescer<T> {
  #items: T[] = [];
  #scheduled = false;

  constructor(private readonly post: (items: T[]) => void) {}

  add(item: T): void {
    this.#items.push(item);
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.#flush());
  }

  #flush(): void {
    this.#scheduled = false;
    const items = this.#items;
    this.#items = [];
    if (items.length > 0) this.post(items);
  }
}
