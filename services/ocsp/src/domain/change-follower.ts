import type { Clock, Logger } from '@pki/kit';
import type { CertIdHash } from '@pki/x509';
import type { StatusStore, StoredCertificate } from '../adapters/postgres/status-store';
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
 * issued), then every row changed since (responses other pods signed, statuses they applied).
 * After a database outage it resumes from the last change it saw, so it catches up by itself.
 */
export class ChangeFollower {
  readonly #deps: ChangeFollowerDeps;
  #lastChangeId = 0;
  #stopping = false;
  #loop: Promise<void> | undefined;
  readonly #pause = new Pause();

  constructor(deps: ChangeFollowerDeps) {
    this.#deps = deps;
  }

  get lastChangeId(): number {
    return this.#lastChangeId;
  }

  /** Reads every change not seen yet; resolves when the store has no more. Throws when the database fails. */
  async catchUp(): Promise<number> {
    let applied = 0;
    let refreshed = false;
    for (;;) {
      const rows = await this.#deps.store.changesSince(this.#lastChangeId, PAGE);
      if (!refreshed && rows.some((r) => !this.#deps.directory.issuer(r.issuerKeyId))) {
        refreshed = true;
        await this.#deps.refreshIssuers().catch((err: unknown) => this.#deps.logger.warn({ err }, 'ocsp: could not refresh the CA generations'));
      }
      for (const row of rows) {
        this.#apply(row);
        this.#lastChangeId = Math.max(this.#lastChangeId, row.changeId);
      }
      applied += rows.length;
      if (rows.length < PAGE) return applied;
    }
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
