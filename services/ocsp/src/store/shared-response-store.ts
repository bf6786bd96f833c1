/**
 * The responder's memory: every pre-produced response it holds, in SharedArrayBuffers that the
 * serving threads read directly and one writer (the main thread) changes. Millions of responses
 * do not fit as JavaScript objects (a Buffer object alone costs more than the response's
 * ResponseData), so the store is two flat tables:
 *
 * - an index: one slot per known certificate (open addressing, linear probing), keyed by a 64-bit
 *   hash of the serial, holding a reference to its resident SHA-1 and SHA-256 responses (0 when
 *   not in memory) and flags: KNOWN (the certificate exists; a serial that is not known was never
 *   issued), STALE (its status changed and the new response is not signed yet: answer tryLater,
 *   never the old status) and REFERENCED (read since the last eviction sweep: CLOCK);
 * - an arena of records, each the parts that differ between responses: the serial, the signed
 *   ResponseData and the signature, with what the HTTP headers need. The responder certificate and
 *   signature algorithm are shared per responder and put back around them on the way out.
 *
 * Concurrency: one writer, lock-free readers. The writer fills a record, then publishes its
 * reference with Atomics.store (sequentially consistent, so the record's bytes are visible to a
 * reader that loads the reference). A record is never changed in place: a newer response goes to
 * a new record and the old one is freed, but its space is reused only after a grace period, and
 * every record carries a generation number bumped when it is freed; a reader re-checks the
 * reference and the generation after copying and retries if either moved.
 */

export const HASH_INDEX = { SHA1: 0, SHA256: 1 } as const;
export type HashIndex = 0 | 1;

export const FLAG_KNOWN = 1;
export const FLAG_STALE = 2;
const FLAG_REFERENCED = 4;

export const STATUS_CODE = { good: 0, revoked: 1, unknown: 2 } as const;

/** Bytes per arena unit; record references count units, so 2^32 units address 64 GiB. */
const UNIT = 16;
const RECORD_HEADER = 32;
// Linear probing at the 0.7 load the index is sized for leaves runs of occupied slots well beyond
// 64 among millions of certificates (about 7,000 of them at 262,144 slots); 512 makes a run that
// long vanishingly rare (below 1e-7 at that size), and only a lookup that walks such a run pays.
const MAX_PROBES = 512;

export interface StoreBuffers {
  header: SharedArrayBuffer;
  index: SharedArrayBuffer;
  flags: SharedArrayBuffer;
  arena: SharedArrayBuffer;
}

export interface StoreLayout {
  /** Certificates the index can hold (its slots are the next power of two above 1/0.7 of this). */
  maxCertificates: number;
  /** Bytes of memory for resident responses. */
  arenaBytes: number;
}

export interface ResponseRecord {
  serial: Uint8Array;
  hash: HashIndex;
  issuerIndex: number;
  responderIndex: number;
  status: number;
  producedAt: number;
  nextUpdate: number;
  /** Version of the status this response says (the event sequence number), for the writer's ordering. */
  statusSeq: number;
  responseData: Uint8Array;
  signature: Uint8Array;
}

/** What a reader finds for one serial and hash. */
export type Lookup =
  | { kind: 'resident'; record: ResidentRecord }
  | { kind: 'stale' }
  /** Known certificate whose response is not in memory (the store asks the database). */
  | { kind: 'not-resident' }
  /** No such certificate, and the index is complete: never issued. */
  | { kind: 'unknown' }
  /** No such certificate in an index that overflowed: the database decides. */
  | { kind: 'unsure' };

/** A resident response, as views into the arena; valid until `stillValid()` says otherwise. */
export interface ResidentRecord {
  issuerIndex: number;
  responderIndex: number;
  status: number;
  producedAt: number;
  nextUpdate: number;
  responseData: Uint8Array;
  signature: Uint8Array;
  /** True if the record was not freed or replaced while the caller read it (copy first, then ask). */
  stillValid(): boolean;
}

/** 64-bit FNV-1a of the serial as two 32-bit halves; never (0, 0), which marks an empty slot. */
export function serialKey(serial: Uint8Array): [number, number] {
  let lo = 0x811c9dc5;
  let hi = 0x050c5d1f;
  for (let i = 0; i < serial.length; i++) {
    lo = Math.imul(lo ^ serial[i]!, 0x01000193) >>> 0;
    hi = Math.imul(hi ^ serial[i]!, 0x01000193) >>> 0;
  }
  // A final mix so that serials differing in the last octet spread over the table.
  lo = Math.imul(lo ^ (lo >>> 15), 0x2c1b3c6d) >>> 0;
  hi = Math.imul(hi ^ (hi >>> 13), 0x297a2d39) >>> 0;
  if (lo === 0 && hi === 0) lo = 1;
  return [lo, hi];
}

function slotsFor(maxCertificates: number): number {
  let slots = 1024;
  while (slots * 0.7 < maxCertificates) slots *= 2;
  return slots;
}

/** The read side, used by every serving thread on the buffers the writer made. */
export class ResponseStoreReader {
  protected readonly header: Int32Array;
  protected readonly index: Uint32Array;
  protected readonly flags: Uint8Array;
  protected readonly arena: Uint8Array;
  protected readonly arenaWords: Int32Array;
  protected readonly arenaView: DataView;
  protected readonly mask: number;

  constructor(buffers: StoreBuffers) {
    this.header = new Int32Array(buffers.header);
    this.index = new Uint32Array(buffers.index);
    this.flags = new Uint8Array(buffers.flags);
    this.arena = new Uint8Array(buffers.arena);
    this.arenaWords = new Int32Array(buffers.arena);
    this.arenaView = new DataView(buffers.arena);
    this.mask = this.flags.length - 1;
  }

  /** True once the writer had the index overflow: "not in the index" then proves nothing. */
  get overflowed(): boolean {
    return Atomics.load(this.header, 0) !== 0;
  }

  /** The slot holding `serial`, or -1. */
  protected findSlot(serial: Uint8Array, lo: number, hi: number): number {
    let slot = lo & this.mask;
    for (let probe = 0; probe < MAX_PROBES; probe++, slot = (slot + 1) & this.mask) {
      const at = slot * 4;
      const slotLo = Atomics.load(this.index, at);
      const slotHi = Atomics.load(this.index, at + 1);
      if (slotLo === 0 && slotHi === 0) return -1;
      if (slotLo === lo && slotHi === hi) return slot;
    }
    return -1;
  }

  lookup(serial: Uint8Array, hash: HashIndex): Lookup {
    const [lo, hi] = serialKey(serial);
    const slot = this.findSlot(serial, lo, hi);
    if (slot < 0) return this.overflowed ? { kind: 'unsure' } : { kind: 'unknown' };
    const flags = Atomics.load(this.flags, slot);
    if ((flags & FLAG_KNOWN) === 0) return this.overflowed ? { kind: 'unsure' } : { kind: 'unknown' };
    if ((flags & FLAG_STALE) !== 0) return { kind: 'stale' };
    const refAt = slot * 4 + 2 + hash;
    const ref = Atomics.load(this.index, refAt);
    if (ref === 0) return { kind: 'not-resident' };
    const offset = ref * UNIT;
    const generation = Atomics.load(this.arenaWords, offset >> 2);
    const view = this.arenaView;
    const serialLength = view.getUint8(offset + 6);
    // A 64-bit key collision, or a record reused under us: the record's own serial decides.
    if (serialLength !== serial.length || !sameBytes(this.arena, offset + RECORD_HEADER, serial)) return { kind: 'not-resident' };
    if ((flags & FLAG_REFERENCED) === 0) Atomics.or(this.flags, slot, FLAG_REFERENCED);
    const dataLength = view.getUint16(offset + 10);
    const signatureLength = view.getUint16(offset + 12);
    const dataStart = offset + RECORD_HEADER + serialLength;
    const arenaWords = this.arenaWords;
    const index = this.index;
    return {
      kind: 'resident',
      record: {
        issuerIndex: view.getUint8(offset + 7),
        responderIndex: view.getUint16(offset + 8),
        status: view.getUint8(offset + 15),
        producedAt: view.getUint32(offset + 16),
        nextUpdate: view.getUint32(offset + 20),
        responseData: this.arena.subarray(dataStart, dataStart + dataLength),
        signature: this.arena.subarray(dataStart + dataLength, dataStart + dataLength + signatureLength),
        stillValid: () => Atomics.load(index, refAt) === ref && Atomics.load(arenaWords, offset >> 2) === generation,
      },
    };
  }
}

function sameBytes(arena: Uint8Array, at: number, bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (arena[at + i] !== bytes[i]) return false;
  return true;
}

interface PendingFree {
  ref: number;
  units: number;
  at: number;
}

export interface StoreStats {
  knownCertificates: number;
  residentResponses: number;
  arenaBytesInUse: number;
  arenaBytes: number;
  indexSlots: number;
  overflowed: boolean;
}

/**
 * The write side: the main thread only. Records are allocated in size classes of 64 bytes with a
 * free list per class, so a refreshed response of the same shape takes the space its
 * predecessor had (after the grace period), and memory does not fragment.
 */
export class ResponseStoreWriter extends ResponseStoreReader {
  readonly buffers: StoreBuffers;
  readonly #freeLists = new Map<number, number[]>();
  readonly #pending: PendingFree[] = [];
  readonly #graceMs: number;
  readonly #now: () => number;
  #nextUnit = 1; // reference 0 means "no record"
  #unitsInUse = 0;
  #known = 0;
  #resident = 0;
  #clockHand = 0;

  static create(layout: StoreLayout, options: { graceMs?: number; now?: () => number } = {}): ResponseStoreWriter {
    const slots = slotsFor(layout.maxCertificates);
    const arenaBytes = Math.max(64 * 1024, Math.ceil(layout.arenaBytes / UNIT) * UNIT);
    if (arenaBytes / UNIT > 0xffffffff) throw new RangeError(`response store: ${arenaBytes} bytes is more than the 64 GiB a record reference can address`);
    return new ResponseStoreWriter(
      { header: new SharedArrayBuffer(64), index: new SharedArrayBuffer(slots * 16), flags: new SharedArrayBuffer(slots), arena: new SharedArrayBuffer(arenaBytes) },
      options,
    );
  }

  private constructor(buffers: StoreBuffers, options: { graceMs?: number; now?: () => number }) {
    super(buffers);
    this.buffers = buffers;
    this.#graceMs = options.graceMs ?? 2_000;
    this.#now = options.now ?? Date.now;
  }

  stats(): StoreStats {
    return {
      knownCertificates: this.#known,
      residentResponses: this.#resident,
      arenaBytesInUse: this.#unitsInUse * UNIT,
      arenaBytes: this.arena.length,
      indexSlots: this.flags.length,
      overflowed: this.overflowed,
    };
  }

  /** The slot for `serial`, inserting its key when absent; -1 when the index is full. */
  #slotFor(serial: Uint8Array): number {
    const [lo, hi] = serialKey(serial);
    let slot = lo & this.mask;
    for (let probe = 0; probe < MAX_PROBES; probe++, slot = (slot + 1) & this.mask) {
      const at = slot * 4;
      const slotLo = this.index[at]!;
      const slotHi = this.index[at + 1]!;
      if (slotLo === lo && slotHi === hi) return slot;
      if (slotLo === 0 && slotHi === 0) {
        if (this.#known + 1 > this.flags.length * 0.85) break;
        // Key first (hi, then lo: a reader compares both), flags and references are still 0.
        Atomics.store(this.index, at + 1, hi);
        Atomics.store(this.index, at, lo);
        return slot;
      }
    }
    Atomics.store(this.header, 0, 1);
    return -1;
  }

  /** Records that a certificate exists (or no longer does: expired past the policy). */
  setKnown(serial: Uint8Array, known: boolean): void {
    const slot = known ? this.#slotFor(serial) : this.findSlot(serial, ...serialKey(serial));
    if (slot < 0) return;
    const was = (this.flags[slot]! & FLAG_KNOWN) !== 0;
    if (known === was) return;
    if (known) {
      Atomics.or(this.flags, slot, FLAG_KNOWN);
      this.#known++;
    } else {
      this.#drop(slot, 0);
      this.#drop(slot, 1);
      Atomics.and(this.flags, slot, ~(FLAG_KNOWN | FLAG_STALE));
      this.#known--;
    }
  }

  /** Frees a certificate's resident responses; it stays known (its answers come from the database). */
  dropResponses(serial: Uint8Array): void {
    const slot = this.findSlot(serial, ...serialKey(serial));
    if (slot < 0) return;
    this.#drop(slot, 0);
    this.#drop(slot, 1);
    Atomics.and(this.flags, slot, ~FLAG_STALE);
  }

  /** Marks a certificate whose status changed before its new response was signed: it is answered tryLater meanwhile. */
  setStale(serial: Uint8Array, stale: boolean): void {
    const slot = this.#slotFor(serial);
    if (slot < 0) return;
    if (stale) Atomics.or(this.flags, slot, FLAG_STALE);
    else Atomics.and(this.flags, slot, ~FLAG_STALE);
  }

  isStale(serial: Uint8Array): boolean {
    const slot = this.findSlot(serial, ...serialKey(serial));
    return slot >= 0 && (this.flags[slot]! & FLAG_STALE) !== 0;
  }

  /** The status sequence of the resident response, if any (the writer orders updates by it). */
  residentSeq(serial: Uint8Array, hash: HashIndex): number | undefined {
    const slot = this.findSlot(serial, ...serialKey(serial));
    if (slot < 0) return undefined;
    const ref = this.index[slot * 4 + 2 + hash]!;
    return ref === 0 ? undefined : this.arenaView.getFloat64(ref * UNIT + 24);
  }

  /**
   * Makes `record` the resident response for its serial and hash (and the certificate known),
   * evicting unreferenced responses when memory is short. Returns false if it did not fit.
   */
  put(record: ResponseRecord): boolean {
    const slot = this.#slotFor(record.serial);
    if (slot < 0) return false;
    if ((this.flags[slot]! & FLAG_KNOWN) === 0) {
      Atomics.or(this.flags, slot, FLAG_KNOWN);
      this.#known++;
    }
    const length = RECORD_HEADER + record.serial.length + record.responseData.length + record.signature.length;
    const units = Math.ceil(length / 64) * (64 / UNIT);
    // Freed space is reusable only after the grace period: `maintain` keeps headroom ahead of need.
    const ref = this.#allocate(units);
    if (ref === 0) return false;
    const offset = ref * UNIT;
    const view = this.arenaView;
    view.setUint16(offset + 4, length);
    view.setUint8(offset + 6, record.serial.length);
    view.setUint8(offset + 7, record.issuerIndex);
    view.setUint16(offset + 8, record.responderIndex);
    view.setUint16(offset + 10, record.responseData.length);
    view.setUint16(offset + 12, record.signature.length);
    view.setUint8(offset + 14, record.hash);
    view.setUint8(offset + 15, record.status);
    view.setUint32(offset + 16, record.producedAt);
    view.setUint32(offset + 20, record.nextUpdate);
    view.setFloat64(offset + 24, record.statusSeq);
    let at = offset + RECORD_HEADER;
    this.arena.set(record.serial, at);
    at += record.serial.length;
    this.arena.set(record.responseData, at);
    at += record.responseData.length;
    this.arena.set(record.signature, at);
    this.#drop(slot, record.hash);
    // Publishing the reference makes the record visible (Atomics are sequentially consistent).
    Atomics.store(this.index, slot * 4 + 2 + record.hash, ref);
    this.#resident++;
    return true;
  }

  /** Frees the resident response of one hash, if any; its space is reused after the grace period. */
  #drop(slot: number, hash: number): void {
    const refAt = slot * 4 + 2 + hash;
    const ref = this.index[refAt]!;
    if (ref === 0) return;
    Atomics.store(this.index, refAt, 0);
    const offset = ref * UNIT;
    Atomics.add(this.arenaWords, offset >> 2, 1);
    const units = Math.ceil(this.arenaView.getUint16(offset + 4) / 64) * (64 / UNIT);
    this.#pending.push({ ref, units, at: this.#now() });
    this.#resident--;
  }

  #allocate(units: number): number {
    this.#reclaim();
    const free = this.#freeLists.get(units);
    if (free && free.length > 0) {
      this.#unitsInUse += units;
      return free.pop()!;
    }
    if ((this.#nextUnit + units) * UNIT > this.arena.length) return 0;
    const ref = this.#nextUnit;
    this.#nextUnit += units;
    this.#unitsInUse += units;
    return ref;
  }

  #reclaim(): void {
    const cutoff = this.#now() - this.#graceMs;
    let reclaimed = 0;
    while (reclaimed < this.#pending.length && this.#pending[reclaimed]!.at <= cutoff) {
      const { ref, units } = this.#pending[reclaimed]!;
      let list = this.#freeLists.get(units);
      if (!list) this.#freeLists.set(units, (list = []));
      list.push(ref);
      this.#unitsInUse -= units;
      reclaimed++;
    }
    if (reclaimed > 0) this.#pending.splice(0, reclaimed);
  }

  /**
   * Keeps free space ahead of demand: when less than `lowWater` of the arena is free, evicts
   * until `highWater` is (freed space becomes reusable after the grace period). Called
   * periodically by the writer's owner.
   */
  maintain(lowWater = 0.1, highWater = 0.2): number {
    this.#reclaim();
    const free = this.arena.length - this.#unitsInUse * UNIT;
    if (free >= lowWater * this.arena.length) return 0;
    return this.evict(highWater * this.arena.length - free);
  }

  /**
   * CLOCK eviction: sweeps the index from where it stopped, clearing REFERENCED flags and freeing
   * the responses of slots read since the last pass did not find, until `bytes` are freed or a
   * whole turn is done. The certificate stays KNOWN: its response comes back from the database.
   */
  evict(bytes: number): number {
    let freed = 0;
    const slots = this.flags.length;
    for (let step = 0; step < 2 * slots && freed < bytes; step++) {
      const slot = this.#clockHand;
      this.#clockHand = (this.#clockHand + 1) & this.mask;
      const refs = this.index[slot * 4 + 2]! + this.index[slot * 4 + 3]!;
      if (refs === 0) continue;
      if ((this.flags[slot]! & FLAG_REFERENCED) !== 0) {
        Atomics.and(this.flags, slot, ~FLAG_REFERENCED);
        continue;
      }
      for (const hash of [0, 1]) {
        const ref = this.index[slot * 4 + 2 + hash]!;
        if (ref !== 0) freed += Math.ceil(this.arenaView.getUint16(ref * UNIT + 4) / 64) * 64;
        this.#drop(slot, hash);
      }
    }
    return freed;
  }
}
