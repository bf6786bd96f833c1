import { existsSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { PkiError, type Logger } from '@pki/kit';
import type { DirectorySnapshot } from '../domain/issuer-directory';
import { Coalescer } from './coalescer';
import type { Ask, MainAnswer, ServingThreadData, ToMain, ToThread } from './protocol';
import type { TallySnapshot } from './usage-tally';

export interface ServingPoolHandlers {
  miss(message: Extract<Ask, { type: 'miss' }>): Promise<MainAnswer>;
  live(message: Extract<Ask, { type: 'live' }>): Promise<MainAnswer>;
  /** A thread's usage counts (metering): whenever they arrive, including late and final ones. */
  usage?(tally: TallySnapshot): void;
}

/** The compiled serving thread: next to this file in dist/, or in dist/ when this runs from src/ (tests). */
function servingThreadScript(): string {
  const beside = path.join(__dirname, 'serving-thread.js');
  if (existsSync(beside)) return beside;
  const built = path.join(__dirname, '..', '..', 'dist', 'http', 'serving-thread.js');
  if (existsSync(built)) return built;
  throw new PkiError('FAILED_PRECONDITION', `ocsp: the serving thread is not built (${built}); run the TypeScript build first`);
}

/**
 * The serving threads, started from the main thread: one HTTP listener each on the same port
 * (the first binds it, the others join with SO_REUSEPORT), all reading the shared store. Misses
 * and live requests come back here as messages and are answered by `handlers`.
 */
export class ServingPool {
  readonly #workers: Worker[] = [];
  readonly #logger: Logger;
  /** Threads whose usage counts are awaited by `collectUsage`. */
  readonly #usageAwaited = new Map<number, () => void>();
  port = 0;
  httpsPort: number | undefined;

  private constructor(logger: Logger) {
    this.#logger = logger;
  }

  static async start(threads: number, data: Omit<ServingThreadData, 'thread'>, handlers: ServingPoolHandlers, logger: Logger): Promise<ServingPool> {
    const pool = new ServingPool(logger);
    const script = servingThreadScript();
    try {
      let port = data.port;
      let https = data.https;
      for (let thread = 0; thread < threads; thread++) {
        // The first thread binds the ports (0: any free one); the others join them (SO_REUSEPORT).
        const bound = await pool.#startThread(script, { ...data, port, ...(https ? { https } : {}), thread }, handlers);
        port = bound.port;
        if (https && bound.httpsPort !== undefined) https = { ...https, port: bound.httpsPort };
      }
      pool.port = port;
      pool.httpsPort = https?.port;
      return pool;
    } catch (err) {
      await pool.stop();
      throw err;
    }
  }

  #startThread(script: string, data: ServingThreadData, handlers: ServingPoolHandlers): Promise<{ port: number; httpsPort?: number }> {
    const worker = new Worker(script, { workerData: data, name: `ocsp-serving-${data.thread}` });
    this.#workers.push(worker);
    const answers = new Coalescer<{ id: number; answer: MainAnswer }>((items) => worker.postMessage({ type: 'answers', answers: items } satisfies ToThread));
    const reply = (id: number, answer: MainAnswer) =>
      answers.add({
        id,
        // A live answer's DER is a view into the whole gRPC message of its batch (protobuf-es bytes
        // fields are subarrays), a miss's often one into a pooled slab, and structured clone copies
        // a view's entire backing buffer: copied alone, only the answer's own bytes cross over.
        answer: answer.kind === 'response' ? { ...answer, der: new Uint8Array(answer.der) } : answer,
      });
    return new Promise((resolve, reject) => {
      worker.on('message', (message: ToMain) => {
        switch (message.type) {
          case 'listening':
            resolve({ port: message.port, ...(message.httpsPort !== undefined ? { httpsPort: message.httpsPort } : {}) });
            break;
          case 'usage':
            handlers.usage?.(message.tally);
            this.#usageAwaited.get(message.thread)?.();
            break;
          case 'failed':
            reject(new PkiError('UNAVAILABLE', `ocsp: serving thread ${message.thread} could not listen on ${data.host}:${data.port}: ${message.message}`));
            break;
          case 'asks':
            for (const ask of message.asks) {
              (ask.type === 'miss' ? handlers.miss(ask) : handlers.live(ask)).then(
                (answer) => reply(ask.id, answer),
                (err: unknown) => {
                  this.#logger.error({ err }, `ocsp: answering a ${ask.type} failed`);
                  reply(ask.id, { kind: 'error', status: 'internalError' });
                },
              );
            }
            break;
        }
      });
      worker.on('error', (err) => {
        this.#logger.error({ err, thread: data.thread }, 'ocsp: serving thread failed');
        reject(err);
      });
    });
  }

  /**
   * Asks every thread for its usage counts and waits until each has answered (they reach
   * `handlers.usage`), or until `timeoutMs`: a thread too busy to answer in time hands its counts
   * over later, and they go to the next window rather than being lost.
   */
  async collectUsage(timeoutMs: number): Promise<void> {
    const replies = this.#workers.map(
      (worker, thread) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(done, timeoutMs);
          const usage = this.#usageAwaited;
          function done(): void {
            clearTimeout(timer);
            usage.delete(thread);
            resolve();
          }
          usage.get(thread)?.();
          usage.set(thread, done);
          worker.postMessage({ type: 'take-usage' } satisfies ToThread);
        }),
    );
    await Promise.all(replies);
  }

  broadcast(directory: DirectorySnapshot): void {
    for (const worker of this.#workers) worker.postMessage({ type: 'directory', directory } satisfies ToThread);
  }

  /** Stops accepting, lets in-flight requests finish, then ends the threads. */
  async stop(graceMs = 10_000): Promise<void> {
    await Promise.all(
      this.#workers.map(
        (worker) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => void worker.terminate().then(() => resolve()), graceMs);
            worker.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            worker.postMessage({ type: 'stop' } satisfies ToThread);
          }),
      ),
    );
    this.#workers.length = 0;
  }
}
