import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { PkiError, type Clock, type Logger } from '@pki/kit';
import type { CrlSchedule } from '../config';
import type { CrlSigningClient } from '../ports/crl-signer';
import type { CrlRecord, CrlStore, KnownIssuer, LeaseClaim } from '../ports/crl-store';
import type { CrlGenerator, CrlTarget } from './crl-generator';

export interface CrlSchedulerDeps {
  store: CrlStore;
  signer: CrlSigningClient;
  generator: CrlGenerator;
  schedule: CrlSchedule;
  clock: Clock;
  logger: Logger;
  /** This pod's name in the lease (default a random id). */
  holder?: string;
  /** After each look at ca-signer: apply status events parked for generations now known. */
  afterIssuerRefresh?: () => Promise<void>;
}

const ageSeconds = (now: Date, since: Date) => (now.getTime() - since.getTime()) / 1000;

/**
 * The generator loop of one pod: it takes or renews the lease, and while it holds it, refreshes
 * the CA generations from ca-signer, publishes new ARLs, runs operators' regenerations, and makes
 * each generation's CRLs when their schedule says so or a status change asks for it. A pod
 * without the lease only serves.
 */
export class CrlScheduler {
  readonly #deps: CrlSchedulerDeps;
  readonly holder: string;
  #claim: LeaseClaim | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #wakeRequested = false;
  #stopped = false;
  #lastIssuerRefresh = 0;
  #issuers: KnownIssuer[] = [];
  #arls = new Map<string, Buffer>();

  constructor(deps: CrlSchedulerDeps) {
    this.#deps = deps;
    this.holder = deps.holder ?? `crl-${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  }

  get leaseHeld(): boolean {
    return this.#claim !== undefined;
  }

  start(): void {
    this.#schedule(0);
  }

  /** Runs a tick soon (a status change, a regeneration request). */
  wake(): void {
    if (this.#running) this.#wakeRequested = true;
    else this.#schedule(0);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#running;
    if (this.#claim) await this.#deps.store.releaseLease(this.#claim).catch(() => undefined);
    this.#claim = undefined;
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#running = this.tick()
        .catch((err: unknown) => this.#deps.logger.error({ err }, 'CRL generation tick failed'))
        .finally(() => {
          this.#running = undefined;
          const again = this.#wakeRequested;
          this.#wakeRequested = false;
          this.#schedule(again ? 0 : this.#deps.schedule.tickSeconds * 1000);
        });
    }, ms);
    this.#timer.unref();
  }

  /** One pass: lease, issuers, ARLs, regenerations, schedule. Public for tests. */
  async tick(): Promise<void> {
    const { store, schedule, clock } = this.#deps;
    this.#claim = await store.claimLease(this.holder, schedule.leaseSeconds, this.#claim);
    const claim = this.#claim;
    if (!claim) return;
    const now = clock.now();
    if (this.#issuers.length === 0 || now.getTime() - this.#lastIssuerRefresh >= schedule.issuerRefreshSeconds * 1000) await this.refreshIssuers();
    for (const root of this.#issuers.filter((i) => i.role === 'ROOT')) {
      const arl = this.#arls.get(root.keyId);
      if (arl) await this.#deps.generator.publishArl(claim, root, arl).catch((err: unknown) => this.#deps.logger.error({ err, rootKeyId: root.keyId }, 'ARL publication failed'));
    }
    for (const request of await store.pendingRegenerations()) {
      const issuer = this.#issuers.find((i) => i.keyId === request.issuerKeyId);
      try {
        if (!issuer) throw new PkiError('NOT_FOUND', `regenerate: no generation ${request.issuerKeyId}`);
        const target: CrlTarget = request.kind === 'PARTITION' ? { kind: 'PARTITION', partition: request.partition! } : { kind: request.kind };
        const built = await this.#deps.generator.build(claim, issuer, target);
        await store.finishRegeneration(request.id, { crlNumber: built.number });
        if (request.kind === 'FULL') await this.#deps.generator.build(claim, issuer, { kind: 'DELTA' });
      } catch (err) {
        const error = PkiError.from(err, 'regenerate CRL');
        // Lost the lease: leave it pending for the next holder.
        if (error.message.includes('no longer holds the lease')) throw error;
        // The operator sees the code and, unless it is an internal failure, the reason; the log has the rest.
        this.#deps.logger.error({ err, requestId: request.id }, 'regeneration failed');
        await store.finishRegeneration(request.id, { error: error.code === 'INTERNAL' ? 'INTERNAL: CRL generation failed (see the crl service log)' : `${error.code}: ${error.message}` });
      }
    }
    for (const issuer of this.#issuers.filter((i) => i.role === 'ISSUING' && i.notAfter > now)) {
      await this.#generateDue(claim, issuer).catch((err: unknown) => {
        if (err instanceof PkiError && err.message.includes('no longer holds the lease')) throw err;
        this.#deps.logger.error({ err, issuerKeyId: issuer.keyId }, 'CRL generation failed; retried at the next tick');
      });
    }
  }

  /** Reads the generations and ARLs from ca-signer and records them. */
  async refreshIssuers(): Promise<KnownIssuer[]> {
    const { issuers, arls } = await this.#deps.signer.getIssuers();
    await this.#deps.store.saveIssuers(issuers);
    this.#issuers = await this.#deps.store.issuers();
    this.#arls = arls;
    this.#lastIssuerRefresh = this.#deps.clock.now().getTime();
    await this.#deps.afterIssuerRefresh?.();
    return this.#issuers;
  }

  async #generateDue(claim: LeaseClaim, issuer: KnownIssuer): Promise<void> {
    const { store, schedule, clock, generator } = this.#deps;
    const latest = await store.latest(issuer.keyId);
    const find = (scope: string, kind: CrlRecord['kind']) => latest.find((c) => c.scope === scope && c.kind === kind);
    const changes = await store.scopeChanges(issuer.keyId);
    const now = clock.now();
    let full = find('full', 'FULL');
    if (!full || ageSeconds(now, full.thisUpdate) >= schedule.fullIntervalSeconds) {
      full = (await generator.build(claim, issuer, { kind: 'FULL' })).record;
      // A delta on the new base right away, so the delta URL always matches the current complete CRL.
      await generator.build(claim, issuer, { kind: 'DELTA' });
    } else {
      const delta = find('full', 'DELTA');
      const covered = delta && delta.baseCrlNumber === full.crlNumber ? delta.snapshotSeq : full.snapshotSeq;
      const last = delta && delta.baseCrlNumber === full.crlNumber ? delta.thisUpdate : full.thisUpdate;
      const changed = (changes.get('full') ?? 0n) > covered;
      if (!delta || delta.baseCrlNumber !== full.crlNumber || ageSeconds(now, delta.thisUpdate) >= schedule.deltaIntervalSeconds || (changed && ageSeconds(now, last) >= schedule.deltaAfterChangeSeconds)) {
        await generator.build(claim, issuer, { kind: 'DELTA' });
      }
    }
    for (let p = 0; p < (issuer.crlPartitions ?? 0); p++) {
      const part = find(`p${p}`, 'PARTITION');
      const changed = part !== undefined && (changes.get(`p${p}`) ?? 0n) > part.snapshotSeq;
      if (!part || ageSeconds(now, part.thisUpdate) >= schedule.partitionIntervalSeconds || (changed && ageSeconds(now, part.thisUpdate) >= schedule.partitionAfterChangeSeconds)) {
        await generator.build(claim, issuer, { kind: 'PARTITION', partition: p });
      }
    }
    await store.prune(schedule.retentionSeconds, issuer.keyId, { snapshotSeq: full.snapshotSeq, expiredBefore: new Date(full.thisUpdate.getTime() - schedule.expiredGraceSeconds * 1000) });
  }
}
