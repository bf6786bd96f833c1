import { createHash, hash } from 'node:crypto';

/** SHA-256 output size: every node of the tree is this long. */
export const HASH_SIZE = 32;

const NODE_PREFIX = Buffer.from([0x01]);

/** MTH({}) = SHA-256() (RFC 9162 §2.1.1). */
export const EMPTY_ROOT: Buffer = hash('sha256', Buffer.alloc(0), 'buffer');

/** MTH({d}) = SHA-256(0x00 || d): the leaf prefix keeps a leaf from passing for a node (RFC 9162 §2.1.1). */
export function hashLeaf(data: Uint8Array): Buffer {
  // One-shot hashing of one buffer is several times faster than a Hash object for short inputs.
  const input = Buffer.allocUnsafe(data.length + 1);
  input[0] = 0x00;
  input.set(data, 1);
  return hash('sha256', input, 'buffer');
}

/** SHA-256(0x01 || left || right) (RFC 9162 §2.1.1). */
export function hashChildren(left: Uint8Array, right: Uint8Array): Buffer {
  if (left.length !== HASH_SIZE || right.length !== HASH_SIZE) {
    return createHash('sha256').update(NODE_PREFIX).update(left).update(right).digest();
  }
  const input = Buffer.allocUnsafe(1 + 2 * HASH_SIZE);
  input[0] = 0x01;
  input.set(left, 1);
  input.set(right, 1 + HASH_SIZE);
  return hash('sha256', input, 'buffer');
}

/** The largest power of two strictly below n (n > 1): where RFC 9162 §2.1.1 splits a tree of n leaves. */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * MTH over leaf hashes, straight from the definition (RFC 9162 §2.1.1). O(n): for tests, small
 * trees and cross-checks; the log itself keeps a {@link CompactRange}.
 */
export function rootOf(leafHashes: readonly Uint8Array[]): Buffer {
  if (leafHashes.length === 0) return EMPTY_ROOT;
  if (leafHashes.length === 1) return Buffer.from(leafHashes[0]!);
  const k = splitPoint(leafHashes.length);
  return hashChildren(rootOf(leafHashes.slice(0, k)), rootOf(leafHashes.slice(k)));
}
