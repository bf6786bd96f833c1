import { hashLeaf } from '@pki/merkle';

/**
 * The per-line work of verification that does not depend on earlier lines: finding the lines of a
 * block, hashing each leaf, and reading an event leaf's index, producer and sequence from its fixed
 * prefix. Runs in worker threads (hash-worker.ts) so that the verifier uses every core; the tree
 * and the sequence checks stay in order on the main thread.
 */
export interface HashedBlock {
  /** Per line: 1 an event leaf read from its prefix (hash, index, seq, producer set), 0 any other line (in `others`). */
  kinds: Uint8Array;
  /** 32 bytes per line (zero for other lines). */
  hashes: Uint8Array;
  /** index and seq per line. */
  numbers: Float64Array;
  /** Per line: its producer, as an index into `producerNames` (few names: cheap to pass between threads). */
  producerIds: Uint32Array;
  producerNames: string[];
  others: Uint8Array[];
}

export const EVENT_PREFIX = Buffer.from('{"type":"event","index":');
// Producer names are [a-z0-9._-] (the outbox refuses others), so no escapes can occur in them.
export const EVENT_FIELDS = /^\{"type":"event","index":(0|[1-9]\d{0,15}),"producer":"([a-z0-9][a-z0-9._-]{0,99})","seq":(0|[1-9]\d{0,15}),/;

/** Splits a block of complete lines (each ending with LF, or the last without) and hashes its leaves. */
export function hashBlock(block: Buffer): HashedBlock {
  const starts: number[] = [];
  const ends: number[] = [];
  let start = 0;
  for (let nl = block.indexOf(10, start); nl !== -1; nl = block.indexOf(10, start)) {
    starts.push(start);
    ends.push(nl);
    start = nl + 1;
  }
  if (start < block.length) {
    starts.push(start);
    ends.push(block.length);
  }
  const n = starts.length;
  const out: HashedBlock = { kinds: new Uint8Array(n), hashes: new Uint8Array(32 * n), numbers: new Float64Array(2 * n), producerIds: new Uint32Array(n), producerNames: [], others: [] };
  const ids = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const line = block.subarray(starts[i]!, ends[i]!);
    const m = line.length > EVENT_PREFIX.length && line.subarray(0, EVENT_PREFIX.length).equals(EVENT_PREFIX) ? EVENT_FIELDS.exec(line.toString('latin1', 0, 200)) : null;
    if (!m) {
      out.others.push(Uint8Array.prototype.slice.call(line));
      continue;
    }
    out.kinds[i] = 1;
    out.hashes.set(hashLeaf(line), 32 * i);
    out.numbers[2 * i] = Number(m[1]);
    out.numbers[2 * i + 1] = Number(m[3]);
    let id = ids.get(m[2]!);
    if (id === undefined) {
      id = out.producerNames.push(m[2]!) - 1;
      ids.set(m[2]!, id);
    }
    out.producerIds[i] = id;
  }
  return out;
}
