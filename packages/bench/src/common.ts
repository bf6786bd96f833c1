import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { POSTGRES_PID_FILE } from '@pki/testing';

/* Shared by the benchmarks: CPU accounting from /proc, openssl speed, the PKCS#11-alone reference. */

// /proc times are in clock ticks; Linux reports USER_HZ = 100 to user space on every architecture.
const TICK_US = 10_000;

/**
 * The fields of /proc/<pid>/stat after the command name (which may hold spaces), so that index 1
 * is the parent pid, 11 and 12 utime and stime, 13 and 14 the reaped children's; undefined when
 * the process is gone.
 */
function procStat(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** CPU microseconds a process has used so far (user + system), from /proc/<pid>/stat. */
export function processCpuUs(pid: number): number {
  const fields = procStat(pid);
  if (fields === undefined) throw new Error(`process ${pid} is gone`);
  return (Number(fields[11]) + Number(fields[12])) * TICK_US;
}

/**
 * CPU microseconds a benchmark's own PostgreSQL server has used so far: the postmaster with the
 * backends it has reaped, and its live backends (processes whose parent it is). Reported apart
 * from "other", which on these shared machines also holds everybody else's load.
 */
export function postgresCpuUs(postmasterPid: number): number {
  const postmaster = procStat(postmasterPid);
  const own = postmaster === undefined ? 0 : (Number(postmaster[11]) + Number(postmaster[12]) + Number(postmaster[13]) + Number(postmaster[14])) * TICK_US;
  let children = 0;
  for (const us of postgresChildrenCpuUs(postmasterPid).values()) children += us;
  return own + children;
}

/** CPU microseconds so far of each live child of the postmaster (backends and background processes), by pid. */
export function postgresChildrenCpuUs(postmasterPid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    const fields = procStat(Number(entry));
    if (fields !== undefined && Number(fields[1]) === postmasterPid) out.set(Number(entry), (Number(fields[11]) + Number(fields[12])) * TICK_US);
  }
  return out;
}

/**
 * PostgreSQL's CPU between two {@link postgresChildrenCpuUs} readings, by who the process served:
 * a client backend by its application_name (each service's pool names itself), a background
 * process by its type (walwriter, checkpointer, autovacuum worker...). `roles` comes from
 * pg_stat_activity (pid, application_name, backend_type). A process that exited meanwhile is not
 * counted here (its CPU is in the postmaster's total only).
 */
export function postgresCpuByRole(before: Map<number, number>, after: Map<number, number>, roles: ReadonlyArray<{ pid: number; application_name: string; backend_type: string }>): Record<string, number> {
  const roleOf = new Map(roles.map((r) => [r.pid, r.backend_type === 'client backend' ? r.application_name || '(unnamed client)' : r.backend_type]));
  const out: Record<string, number> = {};
  for (const [pid, us] of after) {
    const role = roleOf.get(pid) ?? '(unknown)';
    out[role] = (out[role] ?? 0) + us - (before.get(pid) ?? 0);
  }
  return out;
}

/** The postmaster's pid of a test harness cluster (its folder), for {@link postgresCpuUs}; undefined if unknown. */
export function postmasterPidOf(clusterDir: string): number | undefined {
  return Number(readFileSync(path.join(clusterDir, POSTGRES_PID_FILE), 'utf8').trim()) || undefined;
}

/** Busy CPU microseconds of the whole machine so far (all but idle and iowait), from /proc/stat. */
export function machineBusyUs(): number {
  const ticks = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  return (ticks.reduce((a, b) => a + b, 0) - ticks[3]! - ticks[4]!) * TICK_US;
}

/** CPU of several processes and of the machine between two points in time. */
export class CpuMeter {
  readonly #pids: Record<string, number>;
  readonly #postmasterPid: number | undefined;
  #before: { processes: Record<string, number>; self: number; machine: number; at: bigint } | undefined;

  /** `postmasterPid`: the benchmark's own PostgreSQL, reported as `postgres` apart from `other`. */
  constructor(pids: Record<string, number>, postmasterPid?: number) {
    this.#pids = pids;
    this.#postmasterPid = postmasterPid;
  }

  start(): void {
    const self = process.cpuUsage();
    this.#before = { processes: this.#read(), self: self.user + self.system, machine: machineBusyUs(), at: process.hrtime.bigint() };
  }

  /** Microseconds of CPU per operation by process, the benchmark client itself and everything else (PostgreSQL, the OS). */
  stop(operations: number): { perOperationUs: Record<string, number>; machineUtilisation: number; elapsed: number } {
    const before = this.#before!;
    const after = this.#read();
    const selfUsage = process.cpuUsage();
    const self = selfUsage.user + selfUsage.system - before.self;
    const machine = machineBusyUs() - before.machine;
    const elapsed = Number(process.hrtime.bigint() - before.at) / 1e9;
    const per = (us: number) => Math.round(us / Math.max(operations, 1));
    const perOperationUs: Record<string, number> = {};
    let accounted = self;
    for (const name of Object.keys(after)) {
      const used = after[name]! - before.processes[name]!;
      accounted += used;
      perOperationUs[name] = per(used);
    }
    perOperationUs.client = per(self);
    perOperationUs.other = per(Math.max(0, machine - accounted));
    return { perOperationUs, machineUtilisation: Number((machine / (elapsed * 1e6 * os.availableParallelism())).toFixed(2)), elapsed };
  }

  #read(): Record<string, number> {
    const processes = Object.fromEntries(Object.entries(this.#pids).map(([name, pid]) => [name, processCpuUs(pid)]));
    if (this.#postmasterPid !== undefined) processes.postgres = postgresCpuUs(this.#postmasterPid);
    return processes;
  }
}

/** `openssl speed` signing rate for one algorithm (rsa2048, rsa4096, ecdsap256), single process. */
export function opensslSpeed(algorithm: string, seconds: number): number {
  const out = execFileSync('openssl', ['speed', '-seconds', String(seconds), algorithm], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const line = out.split('\n').reverse().find((l) => (algorithm.startsWith('rsa') ? /^rsa\s+\d+ bits/.test(l) : /ecdsa \(nistp256\)/.test(l)));
  const numbers = line?.trim().split(/\s+/).map(Number).filter((n) => !Number.isNaN(n)) ?? [];
  const rate = numbers[numbers.length - 2];
  if (rate === undefined) throw new Error(`cannot read openssl speed ${algorithm} output:\n${out}`);
  return rate;
}

/** The PKCS#11 adapter alone with the same token, key, sessions and threads (pkcs11-alone.ts), in a process of its own. */
export function pkcs11Alone(settings: Record<string, unknown>): { perSecond: number; cpuPerSignatureUs: number } {
  const out = execFileSync(process.execPath, [path.join(__dirname, 'pkcs11-alone.js'), JSON.stringify(settings)], {
    encoding: 'utf8',
    env: { ...process.env, UV_THREADPOOL_SIZE: String(os.availableParallelism()) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return JSON.parse(out.trim().split('\n').pop()!) as { perSecond: number; cpuPerSignatureUs: number };
}

/** The p-th percentile (nearest rank) of ascending `sorted`; NaN when it is empty. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
