/**
 * How a caller identified itself, as the serving threads count it (mapped to the proto's
 * OcspCallerIdentification by the main thread). Order of precedence when a request carries
 * several: mTLS (authenticated by the TLS handshake), then a verified signed request, then the
 * per-system URL (self-declared).
 */
export const CALLER_KINDS = ['mtls', 'signedRequest', 'systemUrl'] as const;
export type CallerKind = (typeof CALLER_KINDS)[number];
export const MTLS = 0;
export const SIGNED_REQUEST = 1;
export const SYSTEM_URL = 2;
export type CallerKindIndex = typeof MTLS | typeof SIGNED_REQUEST | typeof SYSTEM_URL;

/** One thread's counts since its last hand-over, as sent to the main thread (structured clone). */
export interface TallySnapshot {
  /** [kind index, caller key, requests]. */
  entries: Array<[CallerKindIndex, string, number]>;
  anonymous: number;
  /** Identified requests of callers beyond the table's capacity (counted, not attributed). */
  overflow: number;
}

/**
 * One serving thread's usage counts for the open window: a small interned id per caller key (one
 * Map per identification kind, so that a request never builds a composite key) indexing a
 * preallocated array. Counting a request is a Map lookup and an increment: no lock, no message, no
 * allocation once the caller has been seen in the window. The main thread collects and resets it
 * at the window's end (`take`), which is the only time anything is allocated.
 *
 * The table is bounded (`capacity` callers per window): the per-system URL is self-declared, and a
 * client inventing a new system id per request must not grow memory. Requests of callers beyond it
 * are counted as overflow, so the totals stay exact.
 */
export class UsageTally {
  readonly #byKind: [Map<string, number>, Map<string, number>, Map<string, number>] = [new Map(), new Map(), new Map()];
  readonly #counts: Float64Array;
  readonly #capacity: number;
  #used = 0;
  #anonymous = 0;
  #overflow = 0;

  constructor(capacity: number) {
    this.#capacity = capacity;
    this.#counts = new Float64Array(capacity);
  }

  identified(kind: CallerKindIndex, key: string): void {
    const ids = this.#byKind[kind];
    let id = ids.get(key);
    if (id === undefined) {
      if (this.#used >= this.#capacity) {
        this.#overflow++;
        return;
      }
      id = this.#used++;
      ids.set(key, id);
    }
    this.#counts[id]! += 1;
  }

  anonymous(): void {
    this.#anonymous++;
  }

  /** The counts since the last take, and a fresh window. */
  take(): TallySnapshot {
    const entries: TallySnapshot['entries'] = [];
    this.#byKind.forEach((ids, kind) => {
      for (const [key, id] of ids) entries.push([kind as CallerKindIndex, key, this.#counts[id]!]);
      ids.clear();
    });
    const snapshot = { entries, anonymous: this.#anonymous, overflow: this.#overflow };
    this.#counts.fill(0, 0, this.#used);
    this.#used = 0;
    this.#anonymous = 0;
    this.#overflow = 0;
    return snapshot;
  }
}
