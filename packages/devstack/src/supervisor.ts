import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Counter, Gauge, type Registry } from 'prom-client';
import { lastLogMessage } from './terminal';

/** One process the supervisor keeps running: PostgreSQL or a service. */
export interface ProcessSpec {
  name: string;
  file: string;
  args: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** Where its stdout and stderr go (appended; the process keeps writing there if we die). */
  logFile: string;
  /** One readiness attempt: resolves when the process serves, throws (with the reason) when not yet. */
  probe(): Promise<void>;
  /** The signal for a graceful stop: SIGTERM for the services (they drain), SIGINT for PostgreSQL (fast shutdown). */
  stopSignal?: NodeJS.Signals;
  /**
   * Exit codes after which restarting cannot help, with what the person should do. A service exits
   * with 78 (EX_CONFIG) when it refuses its config: the same file would be refused again.
   */
  permanentExits?: Readonly<Record<number, string>>;
}

/**
 * Restart with exponential backoff: the first restart after `initialDelayMs`, each further one in
 * a row twice as late, up to `maxDelayMs`. A process that stayed up for `stableAfterMs` starts
 * again from the first delay. It never gives up on a crash (the embedded deployment also runs a
 * small PKI unattended, and a crash caused by a passing fault must heal by itself), but a process
 * that keeps crashing is retried at most once per `maxDelayMs`, and the terminal says so.
 */
export interface RestartPolicy {
  initialDelayMs: number;
  maxDelayMs: number;
  stableAfterMs: number;
  /** After this many crashes in a row the terminal calls it a crash loop. */
  crashLoopAfter: number;
  /** Graceful stop budget before SIGKILL. */
  stopTimeoutMs: number;
  /** Between readiness attempts. */
  probeIntervalMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  initialDelayMs: 1_000,
  maxDelayMs: 60_000,
  stableAfterMs: 60_000,
  crashLoopAfter: 3,
  stopTimeoutMs: 30_000,
  probeIntervalMs: 200,
};

/** The delay before the n-th restart in a row (n from 1). */
export function restartDelay(policy: Pick<RestartPolicy, 'initialDelayMs' | 'maxDelayMs'>, crashesInARow: number): number {
  return Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** Math.max(0, Math.min(30, crashesInARow - 1)));
}

export type ProcessState = 'starting' | 'ready' | 'waiting-to-restart' | 'failed' | 'stopping' | 'stopped';

export interface ProcessStatus {
  name: string;
  state: ProcessState;
  pid: number | undefined;
  restarts: number;
  crashesInARow: number;
}

/** Thrown when a process stops (or never serves) during its first start: `make up` cannot go on. */
export class StartFailure extends Error {
  constructor(
    readonly process: string,
    readonly reason: string,
    readonly logFile: string,
  ) {
    super(`${process} did not start: ${reason}`);
  }
}

interface Managed {
  spec: ProcessSpec;
  child: ChildProcess | undefined;
  state: ProcessState;
  restarts: number;
  crashesInARow: number;
  startedAt: number;
  restartTimer: NodeJS.Timeout | undefined;
  exited: Promise<void>;
}

export interface SupervisorOptions {
  /** A line for the person at the terminal (and the run's log). */
  say: (line: string) => void;
  /** `<name>.pid` files go here while a process runs. */
  pidDir: string;
  registry: Registry;
  policy?: Partial<RestartPolicy>;
  /** How a path is shown in the terminal (relative to the clone). */
  show?: (file: string) => string;
}

/**
 * Runs the processes of the embedded deployment: starts them in order, each once the one before
 * serves; restarts one that dies, with backoff, while the others keep serving; stops them in
 * reverse order. Restarts are counted in `devstack_restarts_total{process}` and said in the
 * terminal. Knows nothing about any particular service: a new one is one more {@link ProcessSpec}.
 */
export class Supervisor {
  readonly #options: SupervisorOptions;
  readonly #policy: RestartPolicy;
  readonly #processes: Managed[] = [];
  readonly #metrics: { restarts: Counter<'process'>; up: Gauge<'process'>; backoff: Gauge<'process'> };
  #stopping = false;

  constructor(options: SupervisorOptions) {
    this.#options = options;
    this.#policy = { ...DEFAULT_RESTART_POLICY, ...options.policy };
    const registers = [options.registry];
    this.#metrics = {
      restarts: new Counter({ name: 'devstack_restarts_total', help: 'Restarts of a process of the embedded deployment after it stopped unexpectedly', labelNames: ['process'] as const, registers }),
      up: new Gauge({ name: 'devstack_process_up', help: '1 while the process serves (its readiness probe passed), 0 otherwise', labelNames: ['process'] as const, registers }),
      backoff: new Gauge({ name: 'devstack_restart_backoff_seconds', help: 'Delay before the pending restart of the process; 0 when none is pending', labelNames: ['process'] as const, registers }),
    };
    mkdirSync(options.pidDir, { recursive: true, mode: 0o700 });
  }

  /** Starts one process and resolves once it serves; throws {@link StartFailure} if it stops first. */
  async start(spec: ProcessSpec): Promise<void> {
    if (this.#stopping) throw new StartFailure(spec.name, 'make up is stopping', spec.logFile);
    const managed: Managed = { spec, child: undefined, state: 'starting', restarts: 0, crashesInARow: 0, startedAt: 0, restartTimer: undefined, exited: Promise.resolve() };
    this.#processes.push(managed);
    this.#metrics.restarts.inc({ process: spec.name }, 0);
    this.#metrics.backoff.set({ process: spec.name }, 0);
    this.#spawn(managed);
    const outcome = await this.#waitReady(managed);
    if (outcome !== 'ready') {
      const reason = outcome === 'stopping' ? 'make up is stopping' : `${outcome}${describeLog(lastLogMessage(spec.logFile))}`;
      throw new StartFailure(spec.name, reason, spec.logFile);
    }
  }

  status(): ProcessStatus[] {
    return this.#processes.map((m) => ({ name: m.spec.name, state: m.state, pid: m.child?.pid, restarts: m.restarts, crashesInARow: m.crashesInARow }));
  }

  /** Whether every process serves (the supervisor's own readiness). */
  allReady(): boolean {
    return this.#processes.length > 0 && this.#processes.every((m) => m.state === 'ready');
  }

  /** Stops every process, the last started first; SIGKILL after the policy's stop budget. */
  async stopAll(): Promise<void> {
    this.#stopping = true;
    for (const managed of [...this.#processes].reverse()) await this.#stop(managed);
  }

  /** Kills everything at once (a second Ctrl-C). */
  killAll(): void {
    this.#stopping = true;
    for (const m of this.#processes) {
      clearTimeout(m.restartTimer);
      if (m.child && m.child.exitCode === null && m.child.signalCode === null) m.child.kill('SIGKILL');
    }
  }

  #spawn(managed: Managed): void {
    const { spec } = managed;
    const out = openSync(spec.logFile, 'a', 0o600);
    let child: ChildProcess;
    try {
      child = spawn(spec.file, [...spec.args], { stdio: ['ignore', out, out], env: spec.env ?? process.env });
    } finally {
      closeSync(out);
    }
    managed.child = child;
    managed.startedAt = Date.now();
    managed.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    // A command that cannot be run at all (missing binary): the exit handler reports it.
    child.once('error', (err) => {
      if (child.pid === undefined) this.#onExit(managed, child, null, null, err.message);
    });
    if (child.pid !== undefined) writeFileSync(this.#pidFile(spec.name), `${child.pid}\n`, { mode: 0o600 });
    child.once('exit', (code, signal) => this.#onExit(managed, child, code, signal));
  }

  async #waitReady(managed: Managed): Promise<'ready' | 'stopping' | string> {
    const child = managed.child!;
    let exit: string | undefined;
    child.once('exit', (code, signal) => (exit = describeExit(code, signal)));
    child.once('error', (err) => (exit ??= err.message));
    let lastReason = '';
    let warned = false;
    for (;;) {
      if (this.#stopping) return 'stopping';
      if (exit !== undefined || managed.child !== child) return `it stopped (${exit ?? 'replaced'}) before it was ready`;
      try {
        await managed.spec.probe();
        if (managed.child !== child || exit !== undefined) continue;
        managed.state = 'ready';
        this.#metrics.up.set({ process: managed.spec.name }, 1);
        this.#metrics.backoff.set({ process: managed.spec.name }, 0);
        return 'ready';
      } catch (err) {
        lastReason = (err as Error).message;
      }
      // A restarted process that runs but never serves is not restarted again (it is not dead),
      // but the person is told, once.
      if (!warned && managed.restarts > 0 && Date.now() - managed.startedAt > 60_000) {
        warned = true;
        this.#options.say(`${managed.spec.name} was restarted a minute ago and is running, but not ready yet: ${lastReason}`);
      }
      await sleep(this.#policy.probeIntervalMs);
    }
  }

  #onExit(managed: Managed, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null, spawnError?: string): void {
    if (managed.child !== child) return;
    rmSync(this.#pidFile(managed.spec.name), { force: true });
    this.#metrics.up.set({ process: managed.spec.name }, 0);
    const wasReadyOnce = managed.state === 'ready' || managed.restarts > 0;
    if (this.#stopping || managed.state === 'stopping') {
      managed.state = 'stopped';
      return;
    }
    // During its first start the starter reports the failure (make up cannot go on without it).
    if (!wasReadyOnce) {
      managed.state = 'stopped';
      return;
    }

    const { spec } = managed;
    const how = spawnError ?? describeExit(code, signal);
    const upFor = Date.now() - managed.startedAt;
    managed.crashesInARow = upFor >= this.#policy.stableAfterMs ? 1 : managed.crashesInARow + 1;
    const log = this.#show(spec.logFile);
    const permanent = code !== null ? spec.permanentExits?.[code] : undefined;
    if (permanent !== undefined) {
      managed.state = 'failed';
      this.#options.say(`${spec.name} stopped (${how}): ${permanent}. Not restarting it; the other services keep running. Its log: ${log}`);
      return;
    }
    const delay = restartDelay(this.#policy, managed.crashesInARow);
    managed.state = 'waiting-to-restart';
    this.#metrics.backoff.set({ process: spec.name }, delay / 1000);
    this.#options.say(`${spec.name} stopped unexpectedly (${how}) after ${duration(upFor)}; restarting it in ${duration(delay)} (restart ${managed.restarts + 1}). Its log: ${log}`);
    if (managed.crashesInARow >= this.#policy.crashLoopAfter) {
      this.#options.say(
        `${spec.name} keeps stopping: ${managed.crashesInARow} times in a row, each within ${duration(this.#policy.stableAfterMs)} of starting${describeLog(lastLogMessage(spec.logFile))}. ` +
          `Waiting longer before each attempt (at most ${duration(this.#policy.maxDelayMs)}); fix the cause and it comes back by itself, or stop everything with Ctrl-C.`,
      );
    }
    managed.restartTimer = setTimeout(() => void this.#restart(managed), delay);
  }

  async #restart(managed: Managed): Promise<void> {
    if (this.#stopping) return;
    managed.restarts += 1;
    managed.state = 'starting';
    this.#metrics.restarts.inc({ process: managed.spec.name });
    this.#metrics.backoff.set({ process: managed.spec.name }, 0);
    this.#spawn(managed);
    const outcome = await this.#waitReady(managed);
    if (outcome === 'ready') this.#options.say(`${managed.spec.name} is back (pid ${managed.child?.pid}, restart ${managed.restarts}).`);
    // Otherwise it stopped again: its exit handler has already scheduled the next attempt.
  }

  async #stop(managed: Managed): Promise<void> {
    clearTimeout(managed.restartTimer);
    const child = managed.child;
    if (!child || child.exitCode !== null || child.signalCode !== null || child.pid === undefined) {
      managed.state = 'stopped';
      return;
    }
    managed.state = 'stopping';
    child.kill(managed.spec.stopSignal ?? 'SIGTERM');
    const killer = setTimeout(() => {
      this.#options.say(`${managed.spec.name} did not stop within ${duration(this.#policy.stopTimeoutMs)}; killing it (SIGKILL).`);
      child.kill('SIGKILL');
    }, this.#policy.stopTimeoutMs);
    await managed.exited;
    clearTimeout(killer);
  }

  #pidFile(name: string): string {
    return path.join(this.#options.pidDir, `${name}.pid`);
  }

  #show(file: string): string {
    return this.#options.show ? this.#options.show(file) : file;
  }
}

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `killed by ${signal}` : `exit code ${code}`;
}

function describeLog(message: string | undefined): string {
  return message ? `; its log ends with: ${message}` : '';
}

/** 200 ms, 1.5 s, 2 min, 1 min 5 s: what a person reads at a glance. */
export function duration(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  if (ms < 10_000) return `${Number((ms / 1000).toFixed(1))} s`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  return s % 60 === 0 ? `${m} min` : `${m} min ${s % 60} s`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
