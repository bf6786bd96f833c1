import { PkiError, type Logger } from '@pki/kit';
import type { LiveRequestToSign, OcspSigningPort } from '../ports/ocsp-signing';
import type { DependencyHealth } from './dependency-health';

export interface LiveSignerSettings {
  batchSize: number;
  concurrentBatches: number;
  timeoutMs: number;
}

interface Waiting {
  request: LiveRequestToSign;
  deadline: number;
  resolve: (response: Uint8Array | 'tryLater') => void;
}

/**
 * Signs live answers (nonce echo, several CertIDs, never-issued "revoked") through ca-signer,
 * gathering the requests that arrive together into one SignLiveOcspResponses call: one gRPC
 * round trip and one audit event per batch instead of per request. At most `concurrentBatches`
 * calls are in flight; the HSM's session pool behind them is what bounds the signing itself.
 *
 * Every failure becomes tryLater for the requests it concerns: a relying party retries later,
 * and no answer ever depends on a signer that is not there. After a failure the signer is not
 * called again for a short, growing pause (a circuit), so a dead ca-signer costs nothing per
 * request.
 */
export class LiveSigner {
  readonly #queue: Waiting[] = [];
  #inFlight = 0;
  #scheduled = false;
  #openUntil = 0;
  #failuresInRow = 0;

  constructor(
    private readonly signer: OcspSigningPort,
    private readonly settings: LiveSignerSettings,
    private readonly health: DependencyHealth,
    private readonly logger: Logger,
    private readonly onBatch: (size: number, outcome: 'signed' | 'failed') => void = () => undefined,
  ) {}

  /** True while ca-signer is considered down (live answers are tryLater without trying). */
  get circuitOpen(): boolean {
    return Date.now() < this.#openUntil;
  }

  sign(request: LiveRequestToSign): Promise<Uint8Array | 'tryLater'> {
    if (this.circuitOpen) return Promise.resolve('tryLater');
    return new Promise((resolve) => {
      this.#queue.push({ request, deadline: Date.now() + this.settings.timeoutMs, resolve });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    // Let the requests that arrived in this turn of the event loop join the batch.
    setImmediate(() => {
      this.#scheduled = false;
      this.#dispatch();
    });
  }

  #dispatch(): void {
    while (this.#queue.length > 0 && this.#inFlight < this.settings.concurrentBatches) {
      const now = Date.now();
      const batch: Waiting[] = [];
      while (batch.length < this.settings.batchSize && this.#queue.length > 0) {
        const next = this.#queue.shift()!;
        if (next.deadline <= now) next.resolve('tryLater');
        else batch.push(next);
      }
      if (batch.length === 0) continue;
      this.#inFlight++;
      void this.#send(batch).finally(() => {
        this.#inFlight--;
        if (this.#queue.length > 0) this.#schedule();
      });
    }
  }

  async #send(batch: Waiting[]): Promise<void> {
    if (this.circuitOpen) {
      for (const w of batch) w.resolve('tryLater');
      return;
    }
    const deadline = new Date(Math.min(...batch.map((w) => w.deadline)));
    try {
      const responses = await this.signer.signLive(
        batch.map((w) => w.request),
        deadline,
      );
      if (responses.length !== batch.length) throw new PkiError('INTERNAL', `sign live OCSP responses: ${responses.length} responses for ${batch.length} requests`);
      batch.forEach((w, i) => w.resolve(responses[i]!));
      this.#failuresInRow = 0;
      this.health.up('ca-signer');
      this.onBatch(batch.length, 'signed');
    } catch (err) {
      for (const w of batch) w.resolve('tryLater');
      this.onBatch(batch.length, 'failed');
      const code = err instanceof PkiError ? err.code : 'INTERNAL';
      if (code === 'UNAVAILABLE' || code === 'DEADLINE_EXCEEDED') {
        this.#failuresInRow++;
        this.#openUntil = Date.now() + Math.min(5_000, 100 * 2 ** Math.min(this.#failuresInRow - 1, 6));
        this.health.down('ca-signer', (err as Error).message);
      }
      this.logger.warn({ err, requests: batch.length }, 'live OCSP signing failed; answered tryLater');
    }
  }
}
