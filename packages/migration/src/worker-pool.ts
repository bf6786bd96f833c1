import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { VaultKeys } from '@pki/ra';
import type { CertificateLine, IssuerKey, PreparedBatch } from './certificate-batch';
import type { PreparedSubscribers, SubscriberLine } from './subscriber-batch';

/**
 * Spreads certificate and subscriber batches over one worker thread per core. Only from the built package (the
 * worker is JavaScript in dist/); elsewhere (tests run from sources) the importer prepares batches
 * in its own thread, with the same code.
 */
export class StageWorkers {
  readonly #workers: Worker[];
  readonly #pending = new Map<number, { resolve: (b: never) => void; reject: (e: Error) => void }>();
  #next = 0;

  static available(): boolean {
    return __filename.endsWith('.js') && existsSync(join(__dirname, 'stage-worker.js'));
  }

  constructor(keys: VaultKeys, issuers: IssuerKey[], exportId: string, today: Date, count = Math.max(1, cpus().length)) {
    this.#workers = Array.from({ length: count }, () => {
      // A batch is a few MB in and out (2,000 lines; live set well under 20 MB): a small heap per
      // worker keeps the importer under its memory budget (each worker's heap sits at its bound).
      const worker = new Worker(join(__dirname, 'stage-worker.js'), { workerData: { keys, issuers, exportId, today: today.toISOString() }, resourceLimits: { maxOldGenerationSizeMb: 40, maxYoungGenerationSizeMb: 8 } });
      worker.on('message', (m: { id: number }) => {
        const p = this.#pending.get(m.id);
        this.#pending.delete(m.id);
        p?.resolve(m as never);
      });
      worker.on('error', (err) => {
        for (const p of this.#pending.values()) p.reject(err);
        this.#pending.clear();
      });
      return worker;
    });
  }

  prepare(lines: CertificateLine[]): Promise<PreparedBatch> {
    return this.#send<PreparedBatch>('certificates', lines);
  }

  prepareSubscribers(lines: SubscriberLine[]): Promise<PreparedSubscribers> {
    return this.#send<PreparedSubscribers>('subscribers', lines);
  }

  #send<T>(kind: 'certificates' | 'subscribers', lines: unknown[]): Promise<T> {
    const id = this.#next++;
    const worker = this.#workers[id % this.#workers.length]!;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (b: never) => void, reject });
      worker.postMessage({ id, kind, lines });
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.terminate()));
  }
}
