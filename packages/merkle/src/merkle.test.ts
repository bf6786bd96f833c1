import { CompactRange, consistencyProofRanges, EMPTY_ROOT, hashLeaf, inclusionProofRanges, nodeKey, rangeHash, rootOf, verifyConsistency, verifyInclusion, type NodeAddress } from './index';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Buffer => Buffer.from(s, 'hex');

// The Certificate Transparency reference vectors (RFC 6962 test data as published with the C++
// and Go reference implementations): these leaves, then MTH for every size 1..8.
const LEAVES = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map(unhex);
const ROOTS = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
const INCLUSION = [
  { index: 0, size: 8, proof: ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4'] },
  { index: 5, size: 8, proof: ['bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7'] },
  { index: 2, size: 3, proof: ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125'] },
  { index: 1, size: 5, proof: ['6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b'] },
];
const CONSISTENCY = [
  { first: 1, second: 8, proof: ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4'] },
  { first: 6, second: 8, proof: ['0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7'] },
  { first: 2, second: 5, proof: ['5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b'] },
];

/** A whole tree in memory: every perfect node, as a log's store keeps them. */
function buildTree(leafHashes: Buffer[]): { nodes: Map<string, Buffer>; range: CompactRange } {
  const nodes = new Map<string, Buffer>();
  const range = CompactRange.empty();
  leafHashes.forEach((h, i) => {
    nodes.set(nodeKey({ level: 0, index: i }), h);
    range.append(h, (node, hash) => nodes.set(nodeKey(node), hash));
  });
  return { nodes, range };
}
const lookup = (nodes: Map<string, Buffer>) => (node: NodeAddress): Buffer => {
  const hash = nodes.get(nodeKey(node));
  if (!hash) throw new Error(`node ${nodeKey(node)} not stored`);
  return hash;
};
const proofOf = (nodes: Map<string, Buffer>, ranges: ReadonlyArray<readonly [number, number]>): Buffer[] => ranges.map(([a, b]) => rangeHash(a, b, lookup(nodes)));

describe('RFC 6962 / 9162 Merkle tree', () => {
  const leafHashes = LEAVES.map(hashLeaf);

  it('computes the reference roots by definition and by compact range', () => {
    expect(hex(EMPTY_ROOT)).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(hex(CompactRange.empty().root())).toBe(hex(EMPTY_ROOT));
    const range = CompactRange.empty();
    leafHashes.forEach((h, i) => {
      range.append(h);
      expect(hex(rootOf(leafHashes.slice(0, i + 1)))).toBe(ROOTS[i]);
      expect(hex(range.root())).toBe(ROOTS[i]);
    });
  });

  it('produces and verifies the reference inclusion proofs', () => {
    for (const v of INCLUSION) {
      const { nodes } = buildTree(leafHashes.slice(0, v.size));
      const proof = proofOf(nodes, inclusionProofRanges(v.index, v.size));
      expect(proof.map(hex)).toEqual(v.proof);
      expect(verifyInclusion(leafHashes[v.index]!, v.index, v.size, proof, unhex(ROOTS[v.size - 1]!))).toBe(true);
    }
  });

  it('produces and verifies the reference consistency proofs', () => {
    for (const v of CONSISTENCY) {
      const { nodes } = buildTree(leafHashes.slice(0, v.second));
      const proof = proofOf(nodes, consistencyProofRanges(v.first, v.second));
      expect(proof.map(hex)).toEqual(v.proof);
      expect(verifyConsistency(v.first, v.second, unhex(ROOTS[v.first - 1]!), unhex(ROOTS[v.second - 1]!), proof)).toBe(true);
    }
  });

  // Every shape of the recursion (sizes that are and are not powers of two), against MTH by definition.
  const many = Array.from({ length: 70 }, (_, i) => hashLeaf(Buffer.from(`leaf ${i}`)));
  const { nodes, range } = buildTree(many);
  const roots = many.map((_, i) => rootOf(many.slice(0, i + 1)));

  it('keeps the root of every size and its frontier restores', () => {
    expect(range.root()).toEqual(roots[69]);
    const partial = CompactRange.empty();
    many.forEach((h, i) => {
      partial.append(h);
      const restored = CompactRange.fromNodes(partial.size, partial.nodes);
      expect(restored.root()).toEqual(roots[i]);
    });
    expect(() => CompactRange.fromNodes(5, [many[0]!])).toThrow(/has 2 frontier nodes/);
  });

  it('verifies every inclusion proof in every size, and refuses wrong leaves, indexes, sizes and roots', () => {
    for (let size = 1; size <= many.length; size++) {
      const root = roots[size - 1]!;
      for (let index = 0; index < size; index++) {
        const proof = proofOf(nodes, inclusionProofRanges(index, size));
        expect(verifyInclusion(many[index]!, index, size, proof, root)).toBe(true);
        if (size > 1) {
          expect(verifyInclusion(many[(index + 1) % size]!, index, size, proof, root)).toBe(false);
          expect(verifyInclusion(many[index]!, (index + 1) % size, size, proof, root)).toBe(false);
          expect(verifyInclusion(many[index]!, index, size, proof.slice(0, -1), root)).toBe(false);
        }
        // (A proof for size n can also fit size n+1 when the sibling hash could be either a leaf or a
        // subtree: the signed checkpoint binds the root to its size, which is why proofs are checked
        // against a checkpoint and never against a bare root.)
        expect(verifyInclusion(many[index]!, index, size * 2 + 1, proof, root)).toBe(false);
        expect(verifyInclusion(many[index]!, index, size, proof, roots[size % many.length]!)).toBe(false);
      }
    }
    expect(verifyInclusion(many[0]!, 3, 3, [], roots[2]!)).toBe(false);
  });

  it('verifies every consistency proof between every pair of sizes, and refuses altered ones', () => {
    for (let second = 1; second <= 40; second++) {
      for (let first = 0; first <= second; first++) {
        const proof = proofOf(nodes, consistencyProofRanges(first, second));
        const firstRoot = first === 0 ? EMPTY_ROOT : roots[first - 1]!;
        expect(verifyConsistency(first, second, firstRoot, roots[second - 1]!, proof)).toBe(true);
        if (first > 0 && first < second) {
          // A rewritten history: the same sizes, another first root.
          expect(verifyConsistency(first, second, roots[second - 1]!, roots[second - 1]!, proof)).toBe(false);
          expect(verifyConsistency(first, second, firstRoot, roots[first - 1]!, proof)).toBe(false);
          expect(verifyConsistency(first, second, firstRoot, roots[second - 1]!, proof.slice(1))).toBe(false);
          const flipped = proof.map((p, i) => (i === proof.length - 1 ? Buffer.from(p.map((b) => b ^ 1)) : p));
          expect(verifyConsistency(first, second, firstRoot, roots[second - 1]!, flipped)).toBe(false);
          expect(verifyConsistency(first, second + 1, firstRoot, roots[second]!, proof)).toBe(false);
        }
      }
    }
    expect(verifyConsistency(3, 3, roots[2]!, roots[3]!, [])).toBe(false);
    expect(verifyConsistency(4, 3, roots[3]!, roots[2]!, [])).toBe(false);
  });
});
