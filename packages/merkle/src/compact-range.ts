import { EMPTY_ROOT, hashChildren } from './hashing';
import { assertHash, perfectSubtrees, type NodeAddress } from './ranges';

/** Called for each perfect subtree an append completes (level 1 and above), for a log that stores them. */
export type CompletedNode = (node: NodeAddress, hash: Buffer) => void;

/**
 * The state of an append-only tree without its leaves: the hashes of the perfect subtrees that
 * make up [0, size), largest first (at most one per set bit of size). Enough to append and to
 * compute the root at every size reached; the "compact range" of transparency logs.
 */
export class CompactRange {
  #size: number;
  readonly #nodes: Buffer[];

  private constructor(size: number, nodes: Buffer[]) {
    this.#size = size;
    this.#nodes = nodes;
  }

  static empty(): CompactRange {
    return new CompactRange(0, []);
  }

  /** Restores a range from its node hashes; refuses a count that does not fit the size. */
  static fromNodes(size: number, nodes: readonly Uint8Array[]): CompactRange {
    const expected = perfectSubtrees(0, size).length;
    if (nodes.length !== expected) throw new RangeError(`merkle: a tree of ${size} leaves has ${expected} frontier nodes, got ${nodes.length}`);
    nodes.forEach((n, i) => assertHash(n, `frontier node ${i}`));
    return new CompactRange(size, nodes.map((n) => Buffer.from(n)));
  }

  get size(): number {
    return this.#size;
  }

  /** The frontier's node hashes, largest subtree first. */
  get nodes(): readonly Buffer[] {
    return this.#nodes;
  }

  /** The frontier's node addresses, in the order of {@link nodes}. */
  addresses(): NodeAddress[] {
    return perfectSubtrees(0, this.#size);
  }

  /**
   * Appends one leaf hash; merges equal-sized subtrees as a binary counter carries. The range
   * keeps a view of `leafHash` (no copy): do not modify it afterwards.
   */
  append(leafHash: Uint8Array, onCompleted?: CompletedNode): void {
    if (leafHash.length !== 32) assertHash(leafHash, 'leaf hash');
    let hash: Buffer = Buffer.isBuffer(leafHash) ? leafHash : Buffer.from(leafHash.buffer, leafHash.byteOffset, leafHash.byteLength);
    let index = this.#size;
    let level = 0;
    // The trailing one bits of the old size are the subtrees this leaf completes.
    for (let carry = this.#size; carry % 2 === 1; carry = (carry - 1) / 2) {
      hash = hashChildren(this.#nodes.pop()!, hash);
      level++;
      index = Math.floor(index / 2);
      onCompleted?.({ level, index }, hash);
    }
    this.#nodes.push(hash);
    this.#size++;
  }

  /** MTH of the tree so far (RFC 9162 §2.1.1). */
  root(): Buffer {
    if (this.#nodes.length === 0) return EMPTY_ROOT;
    let acc = this.#nodes[this.#nodes.length - 1]!;
    for (let i = this.#nodes.length - 2; i >= 0; i--) acc = hashChildren(this.#nodes[i]!, acc);
    return acc;
  }

  clone(): CompactRange {
    return new CompactRange(this.#size, [...this.#nodes]);
  }
}
