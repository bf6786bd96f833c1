/**
 * Gathers the messages one thread sends another during a turn of its event loop and posts them as
 * one (at the end of the turn, setImmediate): every postMessage wakes the receiving thread, and
 * under load those wake-ups, not the copies, are most of what a hand-off between the serving
 * threads and the main thread costs. Buffers listed with a message are moved, not copied.
 */
export class Coalescer<T> {
  #items: T[] = [];
  #transfer: ArrayBuffer[] = [];
  #scheduled = false;

  constructor(private readonly post: (items: T[], transfer: ArrayBuffer[]) => void) {}

  add(item: T, transfer?: ArrayBuffer): void {
    this.#items.push(item);
    if (transfer !== undefined) this.#transfer.push(transfer);
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.flush());
  }

  /** Posts what is gathered now (also called at the end of the turn). */
  flush(): void {
    this.#scheduled = false;
    if (this.#items.length === 0) return;
    const items = this.#items;
    const transfer = this.#transfer;
    this.#items = [];
    this.#transfer = [];
    this.post(items, transfer);
  }
}
