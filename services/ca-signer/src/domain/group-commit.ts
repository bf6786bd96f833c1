import type { Pool } from 'pg';
import { withTransaction, type Tx } from '@pki/db';

interface Pending {
  work: (tx: Tx) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (reason: unknown) => void;
}

/**
 * Commits the transaction work of concurrent requests together: the work queued while one batch
 * commits goes into the next batch, one BEGIN and one COMMIT for all of it, each work's statements
 * in turn (decision 0019). A caller's promise settles only after its batch committed, so what it
 * wrote is as durable as with a transaction of its own; a lone request runs at once, alone.
 *
 * A batch that fails is not one request's failure: its works are run again, each in its own
 * transaction, and each caller gets its own outcome. Works must therefore touch nothing but the
 * transaction (they may run twice; only the run that commits counts).
 *
 * ca-signer's audit writes already queue behind one row lock per producer (the outbox head, held
 * until commit), so committing them in one transaction costs no parallelism.
 */
export class GroupCommit {
  readonly #pool: Pool;
  readonly #maxBatch: number;
  #queue: Pending[] = [];
  #draining = false;

  constructor(pool: Pool, options: { maxBatch?: number } = {}) {
    this.#pool = pool;
    this.#maxBatch = options.maxBatch ?? 32;
  }

  /** Runs `work` in a transaction shared with the work queued alongside it; resolves once committed. */
  transaction<T>(work: (tx: Tx) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ work, resolve: resolve as (value: unknown) => void, reject });
      if (!this.#draining) void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#draining = true;
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

  async #together(batch: Pending[]): Promise<void> {
    let results: unknown[];
    try {
      results = await withTransaction(this.#pool, async (tx) => {
        const out: unknown[] = [];
        for (const pending of batch) out.push(await pending.work(tx));
        return out;
      });
    } catch {
      // Nothing of the batch committed: each work again on its own, so that one request's error
      // (or the database's) reaches exactly the requests it belongs to.
      await Promise.all(batch.map((pending) => this.#alone(pending)));
      return;
    }
    batch.forEach((pending, i) => pending.resolve(results[i]));
  }

  async #alone(pending: Pending): Promise<void> {
    try {
      pending.resolve(await withTransaction(this.#pool, pending.work));
    } catch (err) {
      pending.reject(err);
    }
  }
}
