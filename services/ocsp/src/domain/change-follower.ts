import type { Clock, Logger } from '@pki/kit';
import type { CertIdHash } from '@pki/x509';
import type { StatusStore, StoredCertificate, TransactionSnapshot } from '../adapters/postgres/status-store';
import { pastRetention, type ResponsePolicy } from './certificate-status';
import { isDatabaseFailure, type DependencyHealth } from './dependency-health';
import type { IssuerDirectory } from './issuer-directory';
import { Pause } from './pause';
import type { ResponseMemory } from './response-memory';

export interface ChangeFollowerDeps {
  store: StatusStore;
  memory: ResponseMemory;
  directory: IssuerDirectory;
  health: DependencyHealth;
  policy: Pick<ResponsePolicy, 'expiredRetentionDays'>;
  certIdHashes: CertIdHash[];
  pollIntervalMs: number;
  clock: Clock;
  logger: Logger;
  refreshIssuers: () => Promise<void>;
}

const PAGE = 5_000;

/**
 * Keeps this pod's memory in step with the store: at start it reads every row (the whole
 * population: memory knows every certificate that exists, so a serial it does not know was never
 * issued), then at each pass the rows changed by the transactions that completed since the
 * previous pass (responses other pods signed, statuses they applied), by the snapshots PostgreSQL
 * gives. Not by change number: numbers are taken before their transaction commits, and a change
 * that commits after a higher number was read would be missed (decision 0039). After a database
 * outage it resumes from its last snapshot, so it catches up by itself.
 */
export class ChangeFollower {
  readonly #deps: ChangeFollowerDeps;
  /** The snapshot the last pass read up to: what completed after it is read by the next pass. */
  #watermark: TransactionSnapshot | undefined;
  #stopping = false;
  #loop: Promise<void> | undefined;
  readonly #pause = new Pause();

  constructor(deps: ChangeFollowerDeps) {
    this.#deps = deps;
  }

  /** Reads every change not seen yet; resolves when the store has no more. Throws when the database fails. */
  async catchUp(): Promise<number> {
    const { store } = this.#deps;
    const seen = { refreshed: false };
    let applied = 0;
    if (this.#watermark === undefined) {
      // The first pass reads every row. Its snapshot is taken first: a transaction still running
      // then is read by the next pass, once it has completed.
      const start = await store.snapshot();
      for (let after = 0; ; ) {
        const rows = await store.changesSince(after, PAGE);
        await this.#applyAll(rows, seen);
        applied += rows.length;
        after = rows.reduce((max, r) => Math.max(max, r.changeId), after);
        if (rows.length < PAGE) break;
      }
      this.#watermark = start;
      return applied;
    }
    const now = await store.snapshot();
    for (let after: { xid: string; serialHex: string } | undefined; ; ) {
      const rows = await store.committedBetween(this.#watermark, now, PAGE, after);
      await this.#applyAll(rows, seen);
      applied += rows.length;
      const last = rows[rows.length - 1];
      if (last) after = { xid: last.changeXid, serialHex: last.serialHex };
      if (rows.length < PAGE) break;
    }
    this.#watermark = now;
    return applied;
  }

  async #applyAll(rows: readonly StoredCertificate[], seen: { refreshed: boolean }): Promise<void> {
    if (!seen.refreshed && rows.some((r) => !this.#deps.directory.issuer(r.issuerKeyId))) {
      seen.refreshed = true;
      await this.#deps.refreshIssuers().catch((err: unknown) => this.#deps.logger.warn({ err }, 'ocsp: could not refresh the CA generations'));
    }
    for (const row of rows) this.#apply(row);
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    this.#pause.wake();
    await this.#loop;
  }

  async #run(): Promise<void> {
    while (!this.#stopping) {
      try {
        await this.catchUp();
        this.#deps.health.up('database');
      } catch (err) {
        if (isDatabaseFailure(err)) this.#deps.health.down('database', (err as Error).message);
        else this.#deps.logger.error({ err }, 'ocsp: following store changes failed');
      }
      if (!this.#stopping) await this.#pause.sleep(this.#deps.pollIntervalMs);
    }
  }

  #apply(row: StoredCertificate): void {
    const { memory } = this.#deps;
    if (!this.#deps.directory.issuer(row.issuerKeyId)) {
      // Still known: a serial of a generation we cannot match is answered from the store (never "never issued").
      memory.markKnown(row.serialHex);
      return;
    }
    if (pastRetention(row.notAfter, this.#deps.clock.now(), this.#deps.policy)) {
      memory.forget(row.serialHex);
      return;
    }
    if (row.signedSeq !== row.statusSeq) {
      memory.markPending(row);
      return;
    }
    try {
      for (const hash of this.#deps.certIdHashes) {
        const der = hash === 'SHA1' ? row.responseSha1 : row.responseSha256;
        if (der) memory.put(row, der, hash);
        else memory.markKnown(row.serialHex);
      }
    } catch (err) {
      // A response that does not say what its row says is never served; the row is re-signed.
      this.#deps.logger.error({ err, serial: row.serialHex }, 'ocsp: a stored response does not match its certificate; not serving it');
      memory.markPending(row);
    }
  }
}
