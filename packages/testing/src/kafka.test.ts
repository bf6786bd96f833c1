import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findKafkaLibs, findRepoRoot, startKafka } from './kafka';

describe('kafka test harness', () => {
  it('finds the repository root from a package folder', () => {
    expect(findRepoRoot(__dirname)).toBe(join(__dirname, '../../..'));
  });

  it('names the missing jars folder and the bootstrap command', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'no-kafka-'));
    const saved = process.env.PKI_KAFKA_LIBS;
    process.env.PKI_KAFKA_LIBS = empty;
    try {
      expect(() => findKafkaLibs()).toThrow(
        `kafka harness: broker jars not found at ${empty}; run scripts/bootstrap.sh --with-kafka`,
      );
      await expect(startKafka()).rejects.toThrow(/broker jars not found/);
    } finally {
      if (saved === undefined) delete process.env.PKI_KAFKA_LIBS;
      else process.env.PKI_KAFKA_LIBS = saved;
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
