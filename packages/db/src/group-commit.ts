import type { Pool } from 'pg';
import { toDatabaseError } from './errors';
import { withTransaction, type Tx } from './transaction';

/** What a batch's writer writes with: a transaction, or (with `singleStatement`) the pool itself. */
export type BatchQueryable = Pick<Tx, 'query'>;

interface Pending<I> {
  item: I;
  resolve: (value: unknown) => void;
  reject: (reason: unknown) => void;
}

/**
 * Commits the items of concurrent requests together: the items queued while one batch commits go
 * into the next batch, one transaction for all of them, written by `write` with set-based
 * statements (decisions 0019, 0038, 0041). A caller's promise settles only after its batch
 * committed, so what it wrote is as durable as with a transaction of its own; a lone request runs
 * alone, in the next turn of the event loop.
 *
 * A batch that fails is not one request's failure: its items are written again, each in its own
 * transaction, and each caller gets its own outcome. `write` must therefore touch nothing but the
 * transaction (it may run twice for an item; only the run that commits counts), and answer one
 * result per item, in order.
 *
 * Writes that append outbox events already queue behind one row lock per producer (the outbox head,
 * held until commit), so committing them in one transaction costs no parallelism.
 */
export class BatchCommit<I, R> {
  readonly #pool: Pool;
  readonly #write: (db: BatchQueryable, items: readonly I[]) => Promise<readonly R[]>;
  readonly #maxBatch: number;
  readonly #singleStatement: boolean;
  readonly #writeAlone: ((item: I) => Promise<R>) | undefined;
  #queue: Array<Pending<I>> = [];
  #draining = false;

  /**
   * `singleStatement`: the writer writes a batch with one statement, which PostgreSQL runs as a
   * transaction of its own: it gets the pool, and the batch costs one round trip instead of a
   * BEGIN, its statements and a COMMIT.
   *
   * `alone`: writes an item that goes alone (a batch of one, or an item of a failed batch) in a
   * transaction of its own, in place of `write` in a transaction: for items that one statement
   * writes whole, so that a request arriving alone costs one round trip, not a BEGIN, the
   * statement and a COMMIT. Its errors are its caller's as they are thrown.
   */
  constructor(
    pool: Pool,
    write: (db: BatchQueryable, items: readonly I[]) => Promise<readonly R[]>,
    options: { maxBatch?: number; singleStatement?: boolean; alone?: (item: I) => Promise<R> } = {},
  ) {
    this.#pool = pool;
    this.#write = write;
    this.#maxBatch = options.maxBatch ?? 32;
    this.#singleStatement = options.singleStatement ?? false;
    this.#writeAlone = options.alone;
  }

  /** Writes `item` in a transaction shared with the items queued alongside it; resolves once committed. */
  submit(item: I): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.#queue.push({ item, resolve: resolve as (value: unknown) => void, reject });
      if (!this.#draining) {
        this.#draining = true;
        // Not at once: the items submitted in this turn of the event loop (a card's two
        // certificates, a burst of requests) go in the first batch together rather than the
        // first alone and the rest in a second.
        setImmediate(() => void this.#drain());
      }
    });
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, this.#maxBatch);
        if (batch.length === 1) await this.#alone(batch[0]!);
        else await this.#together(batch);
      }
    } finally {
      this.#draining = false;
    }
  }

  async #together(batch: Array<Pending<I>>): Promise<void> {
    let results: readonly R[];
    try {
      results = await this.#committed(batch.map((p) => p.item));
    } catch {
      // Nothing of the batch committed: each item again on its own, so that one request's error
      // (or the database's) reaches exactly the requests it belongs to.
      await Promise.all(batch.map((pending) => this.#alone(pending)));
      return;
    }
    batch.forEach((pending, i) => pending.resolve(results[i]));
  }

  async #alone(pending: Pending<I>): Promise<void> {
    try {
      pending.resolve(this.#writeAlone ? await this.#writeAlone(pending.item) : (await this.#committed([pending.item]))[0]);
    } catch (err) {
      pending.reject(err);
    }
  }

  #committed(items: readonly I[]): Promise<readonly R[]> {
    if (!this.#singleStatement) return withTransaction(this.#pool, (tx) => this.#written(tx, items));
    // As withTransaction does: a database that cannot be reached is UNAVAILABLE, not INTERNAL.
    return this.#written(this.#pool, items).catch((err: unknown) => {
      throw toDatabaseError(err, 'write a batch');
    });
  }

  async #written(db: BatchQueryable, items: readonly I[]): Promise<readonly R[]> {
    const results = await this.#write(db, items);
    if (results.length !== items.length) throw new Error(`batch commit: ${results.length} results for ${items.length} items`);
    return results;
  }
}
