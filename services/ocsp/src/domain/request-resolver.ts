import type { Clock, Logger } from '@pki/kit';
import { readOcspResponse, type OcspSingleResponseSpec } from '@pki/x509';
import type { StatusStore, StoredCertificate } from '../adapters/postgres/status-store';
import type { MainAnswer, RequestedSingle } from '../http/protocol';
import type { ResponseToSign } from '../ports/ocsp-signing';
import { NEVER_ISSUED_REVOKED, pastRetention, singleStatusOf, validityWindow, type ResponsePolicy } from './certificate-status';
import { isDatabaseFailure, type DependencyHealth } from './dependency-health';
import type { IssuerDirectory } from './issuer-directory';
import type { LiveSigner } from './live-signer';
import type { ResponseMemory } from './response-memory';

export interface ResolverDeps {
  memory: ResponseMemory;
  directory: IssuerDirectory;
  store: StatusStore;
  live: LiveSigner;
  health: DependencyHealth;
  policy: ResponsePolicy & { neverIssued: 'unauthorized' | 'revoked' };
  clock: Clock;
  logger: Logger;
}

type Found = { kind: 'row'; row: StoredCertificate } | { kind: 'none' } | { kind: 'unavailable' };

/**
 * Answers, on the main thread, what the serving threads cannot answer from memory: a known
 * certificate whose response is not resident (read from PostgreSQL and filed in memory), and
 * live answers (the status from memory or the store, signed by ca-signer with the nonce echoed).
 * Lookups arriving together are read in one query.
 */
export class RequestResolver {
  readonly #deps: ResolverDeps;
  #lookups = new Map<string, Array<(found: Found) => void>>();
  #scheduled = false;

  constructor(deps: ResolverDeps) {
    this.#deps = deps;
  }

  async miss(issuerIndex: number, single: RequestedSingle): Promise<MainAnswer> {
    const found = await this.#find(single.serialHex!);
    if (found.kind === 'unavailable') return { kind: 'error', status: 'tryLater' };
    if (found.kind === 'none') return { kind: 'never-issued' };
    const row = found.row;
    if (this.#deps.directory.issuer(row.issuerKeyId)?.index !== issuerIndex) return { kind: 'never-issued' };
    if (pastRetention(row.notAfter, this.#deps.clock.now(), this.#deps.policy)) return { kind: 'error', status: 'unauthorized' };
    const der = single.hash === 'SHA1' ? row.responseSha1 : row.responseSha256;
    if (row.signedSeq !== row.statusSeq) {
      // Issued or changed, and not signed yet: never the previous answer.
      this.#deps.memory.markPending(row);
      return { kind: 'error', status: 'tryLater' };
    }
    // A CertID hash this deployment does not pre-produce: answered live, without a nonce.
    if (!der) return this.live(issuerIndex, [single], undefined);
    this.#deps.memory.put(row, der, single.hash);
    const read = readOcspResponse(der);
    return {
      kind: 'response',
      der,
      status: read.singles[0]!.status.kind,
      cache: { producedAt: Math.floor(read.producedAt.getTime() / 1000), nextUpdate: Math.floor(read.singles[0]!.nextUpdate!.getTime() / 1000), etag: `"${read.signature.subarray(0, 12).toString('hex')}"` },
    };
  }

  async live(issuerIndex: number, singles: readonly RequestedSingle[], nonce: Uint8Array | undefined): Promise<MainAnswer> {
    // A serial no CA can have issued (negative, over 20 octets) cannot even be put in a CertID we sign.
    if (singles.some((s) => s.serialHex === undefined)) return { kind: 'error', status: 'unauthorized' };
    const issuer = this.#deps.directory.issuerByIndex(issuerIndex);
    if (!issuer?.responderCertificate) return { kind: 'error', status: 'tryLater' };
    const statuses: Array<OcspSingleResponseSpec['status'] | 'never-issued'> = [];
    for (const single of singles) {
      const status = await this.#statusOf(single, issuerIndex);
      if (status === 'tryLater' || status === 'unauthorized') return { kind: 'error', status };
      statuses.push(status);
    }
    const neverIssued = statuses.includes('never-issued');
    if (neverIssued && this.#deps.policy.neverIssued === 'unauthorized') return { kind: 'error', status: 'unauthorized' };
    // A live answer is never stored or refreshed: its validity window alone, the same for every single.
    const times = validityWindow(this.#deps.clock.now(), this.#deps.policy, issuer.responderCertificate.notAfter);
    const responses: ResponseToSign[] = singles.map((single, i) => {
      const status = statuses[i]!;
      return {
        issuerKeyId: issuer.keyId,
        serialHex: single.serialHex!,
        certIdHash: single.hash,
        status: status === 'never-issued' ? NEVER_ISSUED_REVOKED : status,
        thisUpdate: times.thisUpdate,
        nextUpdate: times.nextUpdate,
      };
    });
    const signed = await this.#deps.live.sign({ responses, ...(nonce ? { nonce } : {}), extendedRevoke: neverIssued });
    if (signed === 'tryLater') return { kind: 'error', status: 'tryLater' };
    const first = statuses[0]!;
    return { kind: 'response', der: signed, status: first === 'never-issued' ? 'revoked' : first.kind };
  }

  async #statusOf(single: RequestedSingle, issuerIndex: number): Promise<OcspSingleResponseSpec['status'] | 'never-issued' | 'tryLater' | 'unauthorized'> {
    if (single.serialHex === undefined) return 'never-issued';
    const known = this.#deps.memory.statusOf(single.serialHex, issuerIndex);
    if (known === 'other-issuer') return 'never-issued';
    if (known !== undefined) return known.status;
    const found = await this.#find(single.serialHex);
    if (found.kind === 'unavailable') return 'tryLater';
    if (found.kind === 'none' || this.#deps.directory.issuer(found.row.issuerKeyId)?.index !== issuerIndex) {
      // Not in the store: never issued, if memory agrees it never heard of it (a store that lost rows must not make a liar of us).
      return 'never-issued';
    }
    if (pastRetention(found.row.notAfter, this.#deps.clock.now(), this.#deps.policy)) return 'unauthorized';
    // The store has the newest status even when its responses are not signed yet.
    return singleStatusOf(found.row);
  }

  /** One row from the store; lookups made in the same turn share one query. */
  #find(serialHex: string): Promise<Found> {
    return new Promise((resolve) => {
      const waiting = this.#lookups.get(serialHex);
      if (waiting) waiting.push(resolve);
      else this.#lookups.set(serialHex, [resolve]);
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => void this.#flush());
      }
    });
  }

  async #flush(): Promise<void> {
    this.#scheduled = false;
    const lookups = this.#lookups;
    this.#lookups = new Map();
    try {
      const rows = await this.#deps.store.find([...lookups.keys()]);
      this.#deps.health.up('database');
      const bySerial = new Map(rows.map((r) => [r.serialHex, r]));
      for (const [serial, waiting] of lookups) {
        const row = bySerial.get(serial);
        for (const resolve of waiting) resolve(row ? { kind: 'row', row } : { kind: 'none' });
      }
    } catch (err) {
      if (isDatabaseFailure(err)) this.#deps.health.down('database', (err as Error).message);
      else this.#deps.logger.error({ err }, 'ocsp: store lookup failed');
      for (const waiting of lookups.values()) for (const resolve of waiting) resolve({ kind: 'unavailable' });
    }
  }
}
