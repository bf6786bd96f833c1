import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { killFromPidFile, startKafka, type TestKafka } from './packages/testing/src/kafka';
import { startPostgres, type TestPostgres } from './packages/testing/src/postgres';

/**
 * Starts ONE PostgreSQL server and ONE Kafka broker for the whole jest run and hands them to the
 * test workers through the environment (workers are forked after this runs and inherit it):
 *   PKI_TEST_DATABASE_URL   superuser URL; each test file creates its own database on it
 *   PKI_TEST_KAFKA_BROKERS  comma-separated host:port list
 * When a variable is already set (servers supplied by CI or by hand), that server is used as is.
 * Everything lives under var/test/run-<pid>/ so a later run can clean up after a crashed one
 * without touching the servers of a run still in progress in the same tree.
 */
export interface TestServers {
  runDir: string;
  postgres?: TestPostgres;
  kafka?: TestKafka;
}

declare global {
  var __PKI_TEST_SERVERS__: TestServers | undefined;
}

const OWNER_FILE = 'owner.pid';

export default async function globalSetup(): Promise<void> {
  const testRoot = join(__dirname, 'var', 'test');
  mkdirSync(testRoot, { recursive: true });
  removeAbandonedRuns(testRoot);
  const runDir = join(testRoot, `run-${process.pid}`);
  mkdirSync(runDir, { recursive: true });
  writeFileSync(join(runDir, OWNER_FILE), `${process.pid}\n`);

  const servers: TestServers = { runDir };
  globalThis.__PKI_TEST_SERVERS__ = servers;
  killServersOnAbruptExit(servers);

  const timings: string[] = [];
  const timed = async <T>(label: string, start: () => Promise<T>): Promise<T> => {
    const began = Date.now();
    const result = await start();
    timings.push(`${label} ${((Date.now() - began) / 1000).toFixed(1)} s`);
    return result;
  };

  // Both servers start in parallel: the broker's JVM start dominates, PostgreSQL hides behind it.
  const results = await Promise.allSettled([
    process.env.PKI_TEST_DATABASE_URL
      ? Promise.resolve(timings.push('postgres (given)'))
      : timed('postgres', () => startPostgres({ dir: runDir })).then((pg) => {
          servers.postgres = pg;
          process.env.PKI_TEST_DATABASE_URL = pg.url;
        }),
    process.env.PKI_TEST_KAFKA_BROKERS
      ? Promise.resolve(timings.push('kafka (given)'))
      : timed('kafka', () => startKafka({ dir: runDir })).then((kafka) => {
          servers.kafka = kafka;
          process.env.PKI_TEST_KAFKA_BROKERS = kafka.brokers.join(',');
        }),
  ]);
  const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failures.length > 0) {
    await stopTestServers(servers);
    throw new Error(`jest global setup: ${failures.map((f) => (f.reason as Error).message ?? String(f.reason)).join('\n\n')}`);
  }
  process.stdout.write(
    `\n[test servers] ${timings.join(', ')}; PKI_TEST_DATABASE_URL=${process.env.PKI_TEST_DATABASE_URL} ` +
      `PKI_TEST_KAFKA_BROKERS=${process.env.PKI_TEST_KAFKA_BROKERS}\n`,
  );
}

/** Stops whatever was started, each independently, and removes the run folder. */
export async function stopTestServers(servers: TestServers): Promise<void> {
  await Promise.allSettled([servers.postgres?.stop(), servers.kafka?.stop()]);
  killLeftovers(servers.runDir);
  rmSync(servers.runDir, { recursive: true, force: true });
}

/** Kills every server process recorded under a run folder (SIGKILL: the data is disposable). */
function killLeftovers(runDir: string): void {
  if (!existsSync(runDir)) return;
  for (const entry of readdirSync(runDir)) {
    const dir = join(runDir, entry);
    killFromPidFile(dir);
    // PostgreSQL's own record of its postmaster, in case the harness pid file was never written.
    killFromPidFile(join(dir, 'data'), 'postmaster.pid');
  }
}

/** Run folders whose jest process is gone: a crash or a kill skipped the teardown. */
function removeAbandonedRuns(testRoot: string): void {
  for (const entry of readdirSync(testRoot)) {
    if (!entry.startsWith('run-')) continue;
    const runDir = join(testRoot, entry);
    const owner = Number(readFileSyncQuietly(join(runDir, OWNER_FILE)));
    if (Number.isInteger(owner) && owner > 0 && isAlive(owner)) continue;
    killLeftovers(runDir);
    rmSync(runDir, { recursive: true, force: true });
  }
}

/** Ctrl-C or a kill of jest skips the global teardown; the servers must not outlive the run. */
function killServersOnAbruptExit(servers: TestServers): void {
  const killNow = () => {
    killLeftovers(servers.runDir);
    rmSync(servers.runDir, { recursive: true, force: true });
  };
  process.once('exit', killNow);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      killNow();
      process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1));
    });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readFileSyncQuietly(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
}
