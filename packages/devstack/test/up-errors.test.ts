import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import path from 'node:path';
import { REPO, freePortBase, runUp } from './run-up';

/**
 * What the person sees when `make up` cannot start: one line saying what failed and what to do,
 * naming the log with the details; no stack trace; nothing left running.
 */
jest.setTimeout(240_000);

describe('make up refuses clearly', () => {
  let parent: string;
  beforeAll(() => {
    const testRoot = path.join(REPO, 'var', 'test');
    mkdirSync(testRoot, { recursive: true });
    parent = mkdtempSync(path.join(testRoot, 'up-errors-'));
  });
  afterAll(() => rmSync(parent, { recursive: true, force: true }));

  const linesOf = (text: string) => text.split('\n').filter((l) => l.trim() !== '');

  it('when a port it needs is already in use', async () => {
    const state = path.join(parent, 'port-in-use');
    const base = await freePortBase();
    const raPort = base + 80;
    const squatter: Server = createServer();
    await new Promise<void>((resolve) => squatter.listen(raPort, '127.0.0.1', resolve));
    try {
      const up = runUp(state, base);
      const { code } = await up.exited;
      expect(code).toBe(1);
      const lines = linesOf(up.output());
      expect(lines[0]).toBe(`citizen PKI: starting the embedded deployment (state in ${shown(state)})`);
      expect(lines.slice(1)).toHaveLength(1);
      expect(lines[1]).toMatch(
        new RegExp(
          `^make up: port ${raPort} \\(ra HTTP\\) is already in use on 127\\.0\\.0\\.1\\. Stop what uses it \\(ss -ltnp 'sport = :${raPort}' shows it\\) ` +
            `or move every port: PKI_DEV_PORT_BASE=\\d+ make up \\(details: ${escape(shown(path.join(state, 'logs', 'up.log')))}\\)$`,
        ),
      );
      // Refused before starting anything.
      expect(existsSync(path.join(state, 'postgres', 'data'))).toBe(false);
      expect(existsSync(path.join(state, 'run')) ? readdirSync(path.join(state, 'run')) : []).toEqual([]);
    } finally {
      squatter.close();
    }
  });

  it('when PostgreSQL fails to start', async () => {
    const state = path.join(parent, 'postgres-fails');
    // A data folder from a PostgreSQL version this one cannot read: the server refuses it at start.
    const data = path.join(state, 'postgres', 'data');
    mkdirSync(data, { recursive: true, mode: 0o700 });
    writeFileSync(path.join(data, 'PG_VERSION'), '9\n');
    writeFileSync(path.join(data, 'postgresql.conf'), '');
    const up = runUp(state, await freePortBase());
    const { code } = await up.exited;
    expect(code).toBe(1);
    const lines = linesOf(up.output());
    // Nothing else had started: the line saying what failed is the only one after the first.
    expect(lines).toHaveLength(2);
    const failure = lines[1]!;
    expect(failure).toMatch(/^make up: PostgreSQL did not start: it stopped \(exit code 1\) before it was ready; its log ends with: FATAL: database files are incompatible with server.*\. /);
    expect(failure).toContain(`See ${shown(path.join(state, 'logs', 'postgres.log'))}; if ${shown(path.join(state, 'postgres'))} comes from another PostgreSQL version or is damaged, move it away`);
    expect(failure).toMatch(/\(details: .*up\.log\)$/);
    expect(up.output()).not.toMatch(/\n\s+at /);
    // The detail is in the log it names.
    expect(readFileSync(path.join(state, 'logs', 'postgres.log'), 'utf8')).toContain('The data directory was initialized by PostgreSQL version 9');
    expect(readdirSync(path.join(state, 'run'))).toEqual([]);
  });
});

/** Paths inside the clone are shown relative to it, as the person would type them. */
function shown(file: string): string {
  return path.relative(REPO, file);
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
