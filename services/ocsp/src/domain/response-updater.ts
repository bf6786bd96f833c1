import { PkiError, type Clock, type Logger } from '@pki/kit';
import type { Tx } from '@pki/db';
import type { CertIdHash } from '@pki/x509';
import type { StatusStore, SignedResponses, StoredCertificate } from '../adapters/postgres/status-store';
import type { OcspSigningPort, ResponseToSign } from '../ports/ocsp-signing';
import { pastRetention, responseTimes, singleStatusOf, type CertificateState, type ResponsePolicy } from './certificate-status';
import { isDatabaseFailure, type DependencyHealth } from './dependency-health';
import type { IssuerDirectory } from './issuer-directory';
import { Pause } from './pause';
import type { ResponseMemory } from './response-memory';

export interface UpdaterSettings extends ResponsePolicy {
  certIdHashes: CertIdHash[];
  batchSize: number;
  maxSignaturesPerSecond: number;
  /** Scheduled batches signed at once (each loop claims its own rows). */
  concurrentBatches?: number;
}

export interface UpdaterDeps {
  store: StatusStore;
  signer: OcspSigningPort;
  directory: IssuerDirectory;
  memory: ResponseMemory;
  health: DependencyHealth;
  settings: UpdaterSettings;
  clock: Clock;
  logger: Logger;
  /** Asks ca-signer for its generations again (a status names one the directory lacks). */
  refreshIssuers: () => Promise<void>;
  /** Counts signatures by cause (`scheduled`, `status-change`). */
  onSigned?: (cause: 'scheduled' | 'status-change', count: number) => void;
  /** A status change is served: its new responses are in memory. */
  onServed?: (state: CertificateState) => void;
}

interface UrgentItem {
  state: CertificateState;
  resolve: () => void;
  reject: (err: unknown) => void;
}

const POSTPONE_MS = 10 * 60_000;

/**
 * Keeps a pre-produced response ready for every certificate: signs each one as it first appears
 * and again well before its nextUpdate (refresh times are spread per serial), in batches through
 * ca-signer's SignOcspResponses, at a bounded rate; and signs a certificate whose status changed
 * at once, outside that bound. Pods share the scheduled work through the store (rows are claimed
 * with SKIP LOCKED).
 */
export class ResponseUpdater {
  readonly #deps: UpdaterDeps;
  #stopping = false;
  #loop: Promise<void> | undefined;
  readonly #pauser = new Pause();
  #urgent: UrgentItem[] = [];
  #urgentScheduled = false;
  #urgentInFlight = 0;

  constructor(deps: UpdaterDeps) {
    this.#deps = deps;
  }

  start(): void {
    // Each loop claims its own rows (SKIP LOCKED); the rate bound is shared among them.
    const loops = this.#deps.settings.concurrentBatches ?? 1;
    this.#loop ??= Promise.all(Array.from({ length: loops }, () => this.#run(loops))).then(() => undefined);
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    this.#pauser.wake();
    await this.#loop;
  }

  /** Looks for due rows now rather than after the current pause. */
  wake(): void {
    this.#pauser.wake();
  }

  /** Waits while many status changes are queued for signing, so a backlog of events cannot grow memory without bound. */
  async backpressure(): Promise<void> {
    while (!this.#stopping && this.#urgent.length + this.#urgentInFlight > 4 * this.#deps.settings.batchSize) await new Promise((r) => setTimeout(r, 5));
  }

  /**
   * Signs the responses for a status just changed (or a certificate just issued), stores them and
   * files them in memory. Resolves once they are served; rejects when ca-signer could not sign.
   * Concurrent calls are signed together in one batch.
   */
  signNow(state: CertificateState): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#urgent.push({ state, resolve, reject });
      if (!this.#urgentScheduled) {
        this.#urgentScheduled = true;
        setImmediate(() => void this.#flushUrgent());
      }
    });
  }

  async #flushUrgent(): Promise<void> {
    this.#urgentScheduled = false;
    const batch = this.#urgent.splice(0, this.#deps.settings.batchSize);
    if (this.#urgent.length > 0) {
      this.#urgentScheduled = true;
      setImmediate(() => void this.#flushUrgent());
    }
    if (batch.length === 0) return;
    this.#urgentInFlight += batch.length;
    try {
      const signed = await this.#sign(batch.map((b) => b.state));
      this.#deps.onSigned?.('status-change', signed.signatures);
      for (const item of batch) this.#deps.onServed?.(item.state);
      // Stored for the other pods; if the database is down, the row stays due and is signed again.
      await this.#deps.store.saveResponses(signed.results).then(
        () => this.#deps.health.up('database'),
        (err: unknown) => {
          if (!isDatabaseFailure(err)) throw err;
          this.#deps.health.down('database', (err as Error).message);
        },
      );
      for (const item of batch) item.resolve();
    } catch (err) {
      for (const item of batch) item.reject(err);
    } finally {
      this.#urgentInFlight -= batch.length;
    }
  }

  async #run(loops: number): Promise<void> {
    let failures = 0;
    while (!this.#stopping) {
      const started = this.#deps.clock.now().getTime();
      let claimed = 0;
      let signatures = 0;
      try {
        claimed = await this.#deps.store.signDue(this.#deps.settings.batchSize, this.#deps.settings.expiredRetentionDays, async (rows, tx, expired) => {
          // Past the expired-certificate policy: this pod stops serving them now. Its change follower
          // would also see the change, but a change id taken in this long transaction can commit
          // after higher ones it has already passed (other pods still depend on that path).
          for (const serial of expired) this.#deps.memory.forget(serial);
          if (rows.length === 0) return [];
          const signed = await this.#sign(rows, tx);
          signatures = signed.signatures;
          return signed.results;
        });
        this.#deps.health.up('database');
        if (signatures > 0) this.#deps.onSigned?.('scheduled', signatures);
        failures = 0;
      } catch (err) {
        failures++;
        const delay = Math.min(30_000, 500 * 2 ** Math.min(failures - 1, 6));
        if (isDatabaseFailure(err)) this.#deps.health.down('database', (err as Error).message);
        this.#deps.logger.warn({ err, retryInMs: delay }, 'ocsp updater: signing due responses failed; retrying');
        await this.#pause(delay);
        continue;
      }
      if (claimed === 0) {
        await this.#pause(1_000);
        continue;
      }
      // The rate bound: a batch of n signatures takes at least n / rate seconds.
      const minimumMs = ((signatures * loops) / this.#deps.settings.maxSignaturesPerSecond) * 1000;
      const elapsed = this.#deps.clock.now().getTime() - started;
      if (elapsed < minimumMs) await this.#pause(minimumMs - elapsed);
    }
  }

  /** Builds and signs the responses for `states`; rows that cannot be signed now are postponed. */
  async #sign(states: readonly (CertificateState | StoredCertificate)[], tx?: Tx): Promise<{ results: SignedResponses[]; signatures: number }> {
    const now = this.#deps.clock.now();
    const { certIdHashes } = this.#deps.settings;
    const wanted: Array<{ state: CertificateState; times: ReturnType<typeof responseTimes> }> = [];
    const postponed: string[] = [];
    let refreshed = false;
    for (const state of states) {
      if (pastRetention(state.notAfter, now, this.#deps.settings)) {
        this.#deps.memory.forget(state.serialHex);
        continue;
      }
      let issuer = this.#deps.directory.issuer(state.issuerKeyId);
      if (!issuer?.responderCertificate && !refreshed) {
        refreshed = true;
        await this.#deps.refreshIssuers().catch((err: unknown) => this.#deps.logger.warn({ err }, 'ocsp updater: could not refresh the CA generations'));
        issuer = this.#deps.directory.issuer(state.issuerKeyId);
      }
      if (!issuer?.responderCertificate) {
        this.#deps.logger.error({ serial: state.serialHex, issuerKeyId: state.issuerKeyId }, 'ocsp updater: no CA generation with a delegated responder for this certificate; postponed');
        postponed.push(state.serialHex);
        continue;
      }
      const times = responseTimes(state.serialHex, now, this.#deps.settings, issuer.responderCertificate.notAfter);
      // Due again when the expired-certificate policy ends, if that comes first: then it is dropped.
      const retentionEnds = state.notAfter.getTime() + this.#deps.settings.expiredRetentionDays * 86_400_000 + 1000;
      if (retentionEnds < times.refreshAt.getTime()) times.refreshAt = new Date(retentionEnds);
      wanted.push({ state, times });
    }
    if (postponed.length > 0) {
      const until = new Date(now.getTime() + POSTPONE_MS);
      if (tx) await tx.query(`UPDATE certificates SET refresh_at = $2 WHERE serial_hex = ANY($1::text[])`, [postponed, until]);
      else await this.#deps.store.postpone(postponed, until).catch(() => undefined);
    }
    if (wanted.length === 0) return { results: [], signatures: 0 };
    const items: ResponseToSign[] = [];
    for (const { state, times } of wanted) {
      for (const certIdHash of certIdHashes) {
        items.push({ issuerKeyId: state.issuerKeyId, serialHex: state.serialHex, certIdHash, status: singleStatusOf(state), thisUpdate: times.thisUpdate, nextUpdate: times.nextUpdate });
      }
    }
    let signed: Uint8Array[];
    try {
      signed = await this.#deps.signer.signPreProduced(items);
      this.#deps.health.up('ca-signer');
    } catch (err) {
      if (err instanceof PkiError && (err.code === 'UNAVAILABLE' || err.code === 'DEADLINE_EXCEEDED')) this.#deps.health.down('ca-signer', err.message);
      if (tx && err instanceof PkiError && (err.code === 'INVALID_ARGUMENT' || err.code === 'FAILED_PRECONDITION' || err.code === 'NOT_FOUND')) {
        // A batch the signer refuses must not block every row behind it: these wait, the rest go on.
        this.#deps.logger.error({ err, serials: wanted.length }, 'ocsp updater: ca-signer refused a batch; its certificates are postponed');
        await tx.query(`UPDATE certificates SET refresh_at = $2 WHERE serial_hex = ANY($1::text[])`, [wanted.map((w) => w.state.serialHex), new Date(now.getTime() + POSTPONE_MS)]);
        return { results: [], signatures: 0 };
      }
      throw err;
    }
    const results = wanted.map(({ state, times }, index) => {
      const result: SignedResponses = { serialHex: state.serialHex, statusSeq: state.statusSeq, ...times };
      certIdHashes.forEach((hash, h) => {
        const der = Buffer.from(signed[index * certIdHashes.length + h]!);
        this.#deps.memory.put(state, der, hash);
        if (hash === 'SHA1') result.responseSha1 = der;
        else result.responseSha256 = der;
      });
      return result;
    });
    return { results, signatures: items.length };
  }

  #pause(ms: number): Promise<void> {
    return this.#stopping ? Promise.resolve() : this.#pauser.sleep(ms);
  }
}
