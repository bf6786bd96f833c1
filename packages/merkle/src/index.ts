export { HASH_SIZE, EMPTY_ROOT, hashLeaf, hashChildren, splitPoint, rootOf } from './hashing';
export {
  perfectSubtrees,
  rangeHash,
  inclusionProofRanges,
  consistencyProofRanges,
  nodesOfRanges,
  nodeKey,
  type NodeAddress,
  type LeafRange,
} from './ranges';
export { CompactRange, type CompletedNode } from './compact-range';
export { verifyInclusion, verifyConsistency } from './verify';
