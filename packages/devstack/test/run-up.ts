import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { devPorts, portsInUse } from '../src/layout';
import { portIsFree } from '../src/preflight';

export const REPO = path.resolve(__dirname, '..', '..', '..');
const UP = path.join(REPO, 'packages', 'devstack', 'dist', 'up.js');

/**
 * `make up` as the person runs it: the built wrapper (packages/devstack/dist/up.js, what the
 * Makefile runs), its state in `stateDir` and its ports from `portBase`, its terminal captured.
 */
export interface RunningUp {
  child: ChildProcess;
  /** Everything written to the terminal so far (stdout and stderr, in order of arrival). */
  output(): string;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function runUp(stateDir: string, portBase: number): RunningUp {
  if (!existsSync(UP)) throw new Error(`${UP} is missing: run 'make build' (make test builds first)`);
  const child = spawn(process.execPath, [UP], {
    cwd: REPO,
    env: { ...process.env, PKI_DEV_STATE_DIR: stateDir, PKI_DEV_PORT_BASE: String(portBase) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let done = false;
  void exited.then(() => (done = true));
  return {
    child,
    exited,
    output: () => text,
    async waitFor(pattern, timeoutMs = 240_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const match = pattern.exec(text);
        if (match) return match;
        if (done) throw new Error(`make up exited before printing ${pattern}:\n${text}`);
        if (Date.now() > until) throw new Error(`make up did not print ${pattern} within ${timeoutMs} ms:\n${text}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
}

/** A port block (PKI_DEV_PORT_BASE) whose every port is free now, away from the developers' bases. */
export async function freePortBase(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    // Below Linux's ephemeral range (32768-60999 by default), where outgoing connections take their
    // local ports and can take one of the block's between this check and a service's bind; above
    // make up's default block (18000) and the blocks developers move it to.
    const base = 24_200 + 200 * Math.floor(Math.random() * 42);
    const ports = portsInUse(devPorts(base));
    if ((await Promise.all(ports.map(([p]) => portIsFree(p)))).every(Boolean)) return base;
  }
  throw new Error('no free port block found');
}

/**
 * `make up` in a fresh state folder on a free port block. A block free when chosen can be taken
 * before a service binds it (an outgoing connection's ephemeral port on a busy machine): make up
 * then stops on EADDRINUSE, and another block (in another folder) is tried, up to three times.
 */
export async function startUp(stateFor: (attempt: number) => string, timeoutMs?: number): Promise<{ up: RunningUp; state: string; portBase: number }> {
  for (let attempt = 1; ; attempt++) {
    const state = stateFor(attempt);
    const portBase = await freePortBase();
    const up = runUp(state, portBase);
    try {
      await up.waitFor(/The PKI is running/, timeoutMs);
      return { up, state, portBase };
    } catch (err) {
      if (attempt === 3 || !/EADDRINUSE/.test(up.output())) throw err;
      await up.exited;
    }
  }
}
