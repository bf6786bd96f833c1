import { parentPort } from 'node:worker_threads';
import { hashBlock } from './leaf-hasher';

// One block in, its hashed lines out (the big arrays are transferred, not copied).
parentPort!.on('message', ({ id, block }: { id: number; block: Uint8Array }) => {
  const result = hashBlock(Buffer.from(block.buffer, block.byteOffset, block.byteLength));
  parentPort!.postMessage({ id, result }, [result.hashes.buffer as ArrayBuffer, result.numbers.buffer as ArrayBuffer, result.kinds.buffer as ArrayBuffer, result.producerIds.buffer as ArrayBuffer]);
});
