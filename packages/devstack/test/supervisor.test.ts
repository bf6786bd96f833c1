import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Registry } from 'prom-client';
import { StartFailure, Supervisor, restartDelay, type ProcessSpec, type RestartPolicy } from '../src/supervisor';

/**
 * The supervisor against real child processes (small Node programs), with short delays so that a
 * crash loop plays out in a second. Nothing here asserts a duration: only what was said, in what
 * order, and what the processes and metrics show.
 */

// A child: writes `<dir>/<name>.ready` with its pid (what the probe looks for), then behaves as told.
const CHILD = `
const fs = require('node:fs');
const [dir, name, behaviour] = process.argv.slice(1);
const after = (ms, fn) => setTimeout(fn, ms);
process.on('SIGTERM', () => {
  if (behaviour === 'ignore-sigterm') return;
  fs.appendFileSync(dir + '/stopped', name + '\\n');
  process.exit(0);
});
if (behaviour === 'die-before-ready') {
  console.log(JSON.stringify({ level: 'fatal', msg: name + ' failed to start: database password authentication failed' }));
  process.exit(1);
}
fs.writeFileSync(dir + '/' + name + '.ready', String(process.pid));
const runs = Number(fs.existsSync(dir + '/' + name + '.runs') ? fs.readFileSync(dir + '/' + name + '.runs', 'utf8') : 0) + 1;
fs.writeFileSync(dir + '/' + name + '.runs', String(runs));
// The first run lives long enough for the first start to see it ready, even on a loaded machine.
if (behaviour === 'crash') after(runs === 1 ? 500 : 30, () => process.exit(3));
if (behaviour === 'refuse-config-on-restart' && runs > 1) process.exit(78);
if (behaviour === 'refuse-config-on-restart' && runs === 1) after(500, () => process.exit(1));
setInterval(() => {}, 1 << 30);
`;

const FAST: Partial<RestartPolicy> = { initialDelayMs: 20, maxDelayMs: 80, stableAfterMs: 60_000, crashLoopAfter: 3, stopTimeoutMs: 500, probeIntervalMs: 10 };

describe('supervisor', () => {
  let dir: string;
  let said: string[];
  let registry: Registry;
  let supervisor: Supervisor;

  const spec = (name: string, behaviour: string): ProcessSpec => ({
    name,
    file: process.execPath,
    args: ['-e', CHILD, dir, name, behaviour],
    logFile: path.join(dir, `${name}.log`),
    probe: async () => {
      const file = path.join(dir, `${name}.ready`);
      const pid = existsSync(file) ? Number(readFileSync(file, 'utf8')) : 0;
      // The file of a dead run does not count: its pid no longer exists.
      if (!pid || !alive(pid)) throw new Error('not ready yet');
    },
    permanentExits: { 78: 'it refuses its configuration' },
  });
  const waitFor = async (what: () => boolean, label: string) => {
    for (let i = 0; i < 3000 && !what(); i++) await new Promise((r) => setTimeout(r, 10));
    if (!what()) throw new Error(`timed out waiting for ${label}; said:\n${said.join('\n')}`);
  };
  const metric = async (name: string, process: string) => {
    const line = (await registry.metrics()).split('\n').find((l) => l.startsWith(`${name}{process="${process}"}`));
    return Number(line?.split(' ').at(-1));
  };

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'supervisor-'));
    said = [];
    registry = new Registry();
    supervisor = new Supervisor({ say: (l) => said.push(l), pidDir: path.join(dir, 'run'), registry, policy: FAST });
  });
  afterEach(async () => {
    await supervisor.stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('restarts a process that keeps dying with doubling delays up to the cap, says so, and counts it, while another keeps running', async () => {
    await supervisor.start(spec('steady', 'run'));
    const steadyPid = supervisor.status()[0]!.pid;
    await supervisor.start(spec('flaky', 'crash'));
    await waitFor(() => said.filter((l) => l.startsWith('flaky stopped unexpectedly')).length >= 5, 'five crashes of flaky');

    const crashes = said.filter((l) => l.startsWith('flaky stopped unexpectedly'));
    expect(crashes.slice(0, 5).map((l) => /restarting it in (\d+ ms)/.exec(l)?.[1])).toEqual(['20 ms', '40 ms', '80 ms', '80 ms', '80 ms']);
    expect(crashes[0]).toMatch(/^flaky stopped unexpectedly \(exit code 3\) after .*; restarting it in 20 ms \(restart 1\)\. Its log: .*flaky\.log$/);
    // From the third crash in a row the terminal says it is a crash loop and what happens next.
    const loop = said.findIndex((l) => l.startsWith('flaky keeps stopping: 3 times in a row'));
    expect(loop).toBeGreaterThan(said.indexOf(crashes[2]!));
    expect(said[loop]).toContain('Waiting longer before each attempt (at most 80 ms)');
    expect(said.some((l) => /^flaky is back \(pid \d+, restart 1\)\.$/.test(l))).toBe(true);
    expect(await metric('devstack_restarts_total', 'flaky')).toBeGreaterThanOrEqual(4);

    // The other process was never touched.
    const steady = supervisor.status().find((s) => s.name === 'steady')!;
    expect(steady).toMatchObject({ state: 'ready', pid: steadyPid, restarts: 0 });
    expect(await metric('devstack_restarts_total', 'steady')).toBe(0);
    expect(await metric('devstack_process_up', 'steady')).toBe(1);
  });

  it('does not restart a process that refuses its configuration (exit 78), and says why', async () => {
    await supervisor.start(spec('strict', 'refuse-config-on-restart'));
    await waitFor(() => supervisor.status()[0]!.state === 'failed', 'strict to be given up');
    expect(said.at(-1)).toMatch(/^strict stopped \(exit code 78\): it refuses its configuration\. Not restarting it; the other services keep running\. Its log: /);
    expect(await metric('devstack_restarts_total', 'strict')).toBe(1);
    expect(await metric('devstack_process_up', 'strict')).toBe(0);
  });

  it('fails the first start of a process that stops before it serves, with the last error of its log', async () => {
    const error = await supervisor.start(spec('broken', 'die-before-ready')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StartFailure);
    expect((error as StartFailure).message).toBe(
      'broken did not start: it stopped (exit code 1) before it was ready; its log ends with: broken failed to start: database password authentication failed',
    );
    // Nothing is restarted behind the caller's back during a first start.
    expect(said).toEqual([]);
  });

  it('stops the processes in reverse order, and kills one that ignores SIGTERM', async () => {
    await supervisor.start(spec('first', 'run'));
    await supervisor.start(spec('stubborn', 'ignore-sigterm'));
    await supervisor.start(spec('last', 'run'));
    const pids = supervisor.status().map((s) => s.pid!);
    await supervisor.stopAll();
    expect(readFileSync(path.join(dir, 'stopped'), 'utf8').trim().split('\n')).toEqual(['last', 'first']);
    expect(said).toEqual(['stubborn did not stop within 500 ms; killing it (SIGKILL).']);
    expect(pids.filter(alive)).toEqual([]);
    expect(supervisor.status().map((s) => s.state)).toEqual(['stopped', 'stopped', 'stopped']);
    // Nothing is left claiming to run.
    expect(existsSync(path.join(dir, 'run', 'first.pid'))).toBe(false);
  });

  it('computes the backoff from the crashes in a row', () => {
    const policy = { initialDelayMs: 1000, maxDelayMs: 60_000 };
    expect([1, 2, 3, 4, 5, 6, 7, 8, 100].map((n) => restartDelay(policy, n))).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000]);
  });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
