/**
 * Counters the serving threads keep in shared memory, one region per thread (each written by its
 * own thread only), summed by the main thread when Prometheus scrapes. Cheaper than a message per
 * request, and exact.
 */
export const ANSWERS = ['good', 'revoked', 'unknown', 'malformedRequest', 'unauthorized', 'tryLater', 'internalError', 'sigRequired', 'notModified'] as const;
export type AnswerKind = (typeof ANSWERS)[number];

export const COUNTERS = [
  'requestsGet',
  'requestsPost',
  'requestsOther',
  /** Answered from memory without asking the main thread. */
  'memoryHits',
  /** Known certificates whose response was not in memory: asked from PostgreSQL through the main thread. */
  'memoryMisses',
  'liveRequests',
  'shedLive',
  'shedMisses',
  'neverIssued',
  /** Requests counted for usage metering, by how the caller identified itself (issue 13). */
  'usageMtls',
  'usageSignedRequest',
  'usageSystemUrl',
  'usageAnonymous',
  /** Signed requests (RFC 6960 §4.1.2) whose signer was verified, and those answered unauthorized. */
  'signedVerified',
  'signedRejected',
  /** TLS connections whose client certificate is not one of ours (answered, counted as anonymous). */
  'mtlsUnidentified',
] as const;
export type CounterName = (typeof COUNTERS)[number];
const COUNTER_INDEX = Object.fromEntries(COUNTERS.map((name, i) => [name, i])) as Record<CounterName, number>;

/** Upper bounds (seconds) of the latency histogram, as Prometheus buckets. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** Issuers counted per index; answers for an issuer beyond are counted in the last one. */
export const MAX_ISSUERS = 32;
export const ISSUER_ANSWERS = ['good', 'revoked', 'other'] as const;

const ANSWER_BASE = 0;
const COUNTER_BASE = ANSWER_BASE + ANSWERS.length;
const BUCKET_BASE = COUNTER_BASE + COUNTERS.length;
const SUM_INDEX = BUCKET_BASE + LATENCY_BUCKETS.length + 1;
const COUNT_INDEX = SUM_INDEX + 1;
const ISSUER_BASE = COUNT_INDEX + 1;
export const REGION_LENGTH = ISSUER_BASE + MAX_ISSUERS * ISSUER_ANSWERS.length;

export function createMetricsBuffer(threads: number): SharedArrayBuffer {
  return new SharedArrayBuffer(threads * REGION_LENGTH * 8);
}

/** One thread's counters. */
export class ServingMetrics {
  readonly #values: Float64Array;

  constructor(buffer: SharedArrayBuffer, thread: number) {
    this.#values = new Float64Array(buffer, thread * REGION_LENGTH * 8, REGION_LENGTH);
  }

  answer(kind: AnswerKind, issuerIndex?: number, seconds?: number): void {
    this.#values[ANSWER_BASE + ANSWERS.indexOf(kind)]! += 1;
    if (issuerIndex !== undefined) {
      const slot = ISSUER_BASE + Math.min(issuerIndex, MAX_ISSUERS - 1) * ISSUER_ANSWERS.length + (kind === 'good' ? 0 : kind === 'revoked' ? 1 : 2);
      this.#values[slot]! += 1;
    }
    if (seconds !== undefined) this.latency(seconds);
  }

  count(name: CounterName): void {
    // A property read, not an indexOf over the list: several counters move on every request.
    this.#values[COUNTER_BASE + COUNTER_INDEX[name]]! += 1;
  }

  latency(seconds: number): void {
    let bucket = 0;
    while (bucket < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[bucket]!) bucket++;
    this.#values[BUCKET_BASE + bucket]! += 1;
    this.#values[SUM_INDEX]! += seconds;
    this.#values[COUNT_INDEX]! += 1;
  }
}

export interface MetricsTotals {
  answers: Record<AnswerKind, number>;
  counters: Record<CounterName, number>;
  /** Per bucket (not cumulative), the last one +Inf. */
  buckets: number[];
  sum: number;
  count: number;
  /** [issuer index][good, revoked, other]. */
  byIssuer: number[][];
}

/** The sum over every thread's region. */
export function readMetrics(buffer: SharedArrayBuffer, threads: number): MetricsTotals {
  const all = new Float64Array(buffer);
  const total = (index: number) => {
    let sum = 0;
    for (let t = 0; t < threads; t++) sum += all[t * REGION_LENGTH + index]!;
    return sum;
  };
  return {
    answers: Object.fromEntries(ANSWERS.map((a, i) => [a, total(ANSWER_BASE + i)])) as Record<AnswerKind, number>,
    counters: Object.fromEntries(COUNTERS.map((c, i) => [c, total(COUNTER_BASE + i)])) as Record<CounterName, number>,
    buckets: Array.from({ length: LATENCY_BUCKETS.length + 1 }, (_, i) => total(BUCKET_BASE + i)),
    sum: total(SUM_INDEX),
    count: total(COUNT_INDEX),
    byIssuer: Array.from({ length: MAX_ISSUERS }, (_, issuer) => ISSUER_ANSWERS.map((_a, k) => total(ISSUER_BASE + issuer * ISSUER_ANSWERS.length + k))),
  };
}
