import { HASH_SIZE, splitPoint, hashChildren } from './hashing';

/**
 * Where the tree's nodes are addressed: a perfect subtree of 2^level leaves starting at leaf
 * index * 2^level. Leaves are level 0. Every node of an RFC 9162 tree that is not on its right
 * edge is such a subtree, and so is every node a log has to store to answer proofs.
 */
export interface NodeAddress {
  level: number;
  index: number;
}

/** A leaf range [start, end) whose hash a proof carries. */
export type LeafRange = readonly [start: number, end: number];

function assertSize(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`merkle: ${what} must be a non-negative safe integer, got ${value}`);
}

/**
 * Splits [start, end) into aligned perfect subtrees, left to right (largest first when start is
 * 0 or aligned, as for every range a proof needs).
 */
export function perfectSubtrees(start: number, end: number): NodeAddress[] {
  assertSize(start, 'start');
  assertSize(end, 'end');
  if (end < start) throw new RangeError(`merkle: range [${start}, ${end}) is reversed`);
  const out: NodeAddress[] = [];
  let at = start;
  while (at < end) {
    let level = 0;
    // Grow while `at` stays aligned to the larger subtree and the subtree stays inside the range.
    while (at % 2 ** (level + 1) === 0 && at + 2 ** (level + 1) <= end) level++;
    out.push({ level, index: at / 2 ** level });
    at += 2 ** level;
  }
  return out;
}

/**
 * MTH(D[start:end]) from the hashes of its perfect subtrees: the first is the left child of the
 * RFC 9162 split and the rest the right one, recursively, so folding from the right rebuilds it.
 * Valid for ranges that are nodes of an RFC 9162 tree, i.e. every range {@link inclusionProofRanges}
 * and {@link consistencyProofRanges} return, and every [0, n).
 */
export function rangeHash(start: number, end: number, perfect: (node: NodeAddress) => Uint8Array): Buffer {
  const nodes = perfectSubtrees(start, end);
  if (nodes.length === 0) throw new RangeError(`merkle: range [${start}, ${end}) is empty`);
  let acc: Buffer = Buffer.from(perfect(nodes[nodes.length - 1]!));
  for (let i = nodes.length - 2; i >= 0; i--) acc = hashChildren(perfect(nodes[i]!), acc);
  return acc;
}

/**
 * The ranges whose hashes make the inclusion proof of leaf `index` in the tree of `size` leaves,
 * in proof order (nearest the leaf first): PATH(m, D[n]) of RFC 9162 §2.1.3.1.
 */
export function inclusionProofRanges(index: number, size: number): LeafRange[] {
  assertSize(index, 'leaf index');
  assertSize(size, 'tree size');
  if (index >= size) throw new RangeError(`merkle: leaf ${index} is not in a tree of ${size} leaves`);
  const out: LeafRange[] = [];
  const path = (m: number, lo: number, hi: number): void => {
    if (hi - lo <= 1) return;
    const k = splitPoint(hi - lo);
    if (m < k) {
      path(m, lo, lo + k);
      out.push([lo + k, hi]);
    } else {
      path(m - k, lo + k, hi);
      out.push([lo, lo + k]);
    }
  };
  path(index, 0, size);
  return out;
}

/**
 * The ranges whose hashes prove that the tree of `first` leaves is a prefix of the tree of
 * `second` leaves: PROOF(m, D[n]) = SUBPROOF(m, D[n], true) of RFC 9162 §2.1.4.1. Empty when
 * first is 0 or equal to second (nothing to prove).
 */
export function consistencyProofRanges(first: number, second: number): LeafRange[] {
  assertSize(first, 'first tree size');
  assertSize(second, 'second tree size');
  if (first > second) throw new RangeError(`merkle: a tree of ${first} leaves cannot be a prefix of one of ${second}`);
  const out: LeafRange[] = [];
  if (first === 0 || first === second) return out;
  const sub = (m: number, lo: number, hi: number, complete: boolean): void => {
    const n = hi - lo;
    if (m === n) {
      if (!complete) out.push([lo, hi]);
      return;
    }
    const k = splitPoint(n);
    if (m <= k) {
      sub(m, lo, lo + k, complete);
      out.push([lo + k, hi]);
    } else {
      sub(m - k, lo + k, hi, false);
      out.push([lo, lo + k]);
    }
  };
  sub(first, 0, second, true);
  return out;
}

/** The perfect subtrees a set of ranges is made of, each once (what a store must look up). */
export function nodesOfRanges(ranges: readonly LeafRange[]): NodeAddress[] {
  const seen = new Map<string, NodeAddress>();
  for (const [start, end] of ranges) for (const node of perfectSubtrees(start, end)) seen.set(`${node.level}/${node.index}`, node);
  return [...seen.values()];
}

export function nodeKey(node: NodeAddress): string {
  return `${node.level}/${node.index}`;
}

export function assertHash(value: Uint8Array, what: string): void {
  if (value.length !== HASH_SIZE) throw new RangeError(`merkle: ${what} must be ${HASH_SIZE} bytes, got ${value.length}`);
}
