import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { postgresServerAccount } from './postgres-account';

const run = promisify(execFile);

/**
 * A throwaway PostgreSQL cluster for tests: initdb in a temp folder, pg_ctl start on loopback,
 * stop() removes everything. No Docker on these machines, so the harness runs Debian's server
 * binaries directly. PostgreSQL refuses to run as root: as root every server command runs through
 * {@link postgresServerAccount}, which works wherever the clone is (a 0700 folder, a path with
 * spaces).
 */
export interface TestPostgres {
  /** Superuser URL (user `postgres`, database `postgres`, no password: trust auth on loopback). */
  readonly url: string;
  readonly port: number;
  /** The cluster's folder (data directory, server log). */
  readonly dir: string;
  stop(): Promise<void>;
}

export interface StartPostgresOptions {
  /** Parent folder for the cluster's temp folder; defaults to the OS temp folder. */
  dir?: string;
  /** A fixed port; defaults to a free one. */
  port?: number;
  /** Upper bound for initdb + start. */
  startTimeoutMs?: number;
  /** More postgresql.conf lines (benchmarks: e.g. shared_preload_libraries = 'pg_stat_statements'). */
  settings?: string[];
  /**
   * Durable as deployed (fsync, synchronous_commit and full_page_writes at their defaults): for
   * benchmarks, whose figures must include the commits' WAL flushes. Tests run without them.
   */
  durable?: boolean;
}

const SUPERUSER = 'postgres';
/** Written into the cluster folder so a later run can find and stop a server a crashed run left behind. */
export const POSTGRES_PID_FILE = 'harness.pid';

export async function startPostgres(options: StartPostgresOptions = {}): Promise<TestPostgres> {
  const bindir = findPostgresBinaries();
  const parent = options.dir ?? tmpdir();
  mkdirSync(parent, { recursive: true });
  const dir = mkdtempSync(join(parent, 'pg-'));
  const dataDir = join(dir, 'data');
  const logFile = join(dir, 'server.log');
  const account = postgresServerAccount();
  const asServer = async (file: string, args: string[]) => {
    const command = account.command(file, args);
    await run(command.file, command.args, { timeout: 120_000 });
  };
  try {
    account.own(dir);
    account.assertReachable(dir, `the test cluster folder ${dir}`);

    // trust on loopback only: the server listens on 127.0.0.1 alone, with no Unix socket.
    await asServer(join(bindir, 'initdb'), ['-D', dataDir, '-U', SUPERUSER, '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-sync']).catch((err: unknown) => {
      throw new Error(`postgres harness: initdb failed in ${dataDir}: ${commandFailure(err)}`);
    });

    const port = options.port ?? (await freePort());
    const settings = [
      `port = ${port}`,
      `listen_addresses = '127.0.0.1'`,
      // No Unix socket: its path would sit in the clone, and a deep clone path exceeds the
      // 107-byte limit of a socket address; clients connect over TCP.
      `unix_socket_directories = ''`,
      // Durability is pointless for a test cluster and costs most of the time of a DDL-heavy
      // suite; a benchmark asks for it (`durable`), since a CA answers only once it is on disk.
      ...(options.durable ? [] : ['fsync = off', 'synchronous_commit = off', 'full_page_writes = off']),
      'max_connections = 300',
      'shared_buffers = 128MB',
      `log_min_messages = warning`,
      ...(options.settings ?? []),
    ];
    writeFileSync(join(dataDir, 'postgresql.auto.conf'), settings.join('\n') + '\n');
    account.own(join(dataDir, 'postgresql.auto.conf'));

    const timeoutSeconds = Math.ceil((options.startTimeoutMs ?? 60_000) / 1000);
    try {
      await asServer(join(bindir, 'pg_ctl'), ['-D', dataDir, '-l', logFile, '-w', '-t', String(timeoutSeconds), 'start']);
    } catch (err) {
      throw new Error(`postgres harness: server did not start: ${commandFailure(err)}\n${tail(logFile)}`);
    }
    const postmasterPid = readPostmasterPid(dataDir);
    if (postmasterPid !== undefined) writeFileSync(join(dir, POSTGRES_PID_FILE), `${postmasterPid}\n`);

    const url = `postgres://${SUPERUSER}@127.0.0.1:${port}/postgres`;
    await waitUntilAcceptingQueries(url, options.startTimeoutMs ?? 60_000, logFile);

    let stopped = false;
    return {
      url,
      port,
      dir,
      async stop() {
        if (stopped) return;
        stopped = true;
        try {
          // "immediate" skips the shutdown checkpoint: the data is thrown away anyway.
          await asServer(join(bindir, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', '-w', '-t', '30', 'stop']);
        } catch {
          if (postmasterPid !== undefined) killQuietly(postmasterPid);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    };
  } catch (err) {
    const pid = readPostmasterPid(dataDir);
    if (pid !== undefined) killQuietly(pid);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** What a failed server command said (its stderr), not the Node wrapper's "Command failed: ..." line. */
function commandFailure(err: unknown): string {
  const e = err as Error & { stderr?: string; code?: number | string };
  const said = `${e.stderr ?? ''}`.trim();
  return said ? said.split('\n').slice(-5).join(' ') : e.message;
}

/** Creates an empty database on the test server and returns its URL, so each test file gets its own. */
export async function createDatabase(adminUrl: string, name: string): Promise<string> {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) {
    throw new Error(`create test database: name ${JSON.stringify(name)} must be a lower-case SQL identifier`);
  }
  const client = new Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/**
 * A database name unique to this test file and process, from a readable prefix: jest runs test
 * files in parallel workers against one server.
 */
export function uniqueDatabaseName(prefix: string): string {
  const clean = prefix.toLowerCase().replace(/[^a-z0-9_]+/g, '_').slice(0, 40);
  return `${clean}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
}

/** The server binaries: `pg_config --bindir`, else the newest /usr/lib/postgresql/<major>/bin. */
export function findPostgresBinaries(): string {
  const candidates: string[] = [];
  try {
    candidates.push(execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
  } catch {
    // pg_config is in libpq-dev / postgresql-common; its absence is not an error by itself.
  }
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const majors = readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
    candidates.push(...majors.map((major) => join(root, major, 'bin')));
  }
  const found = candidates.find((bin) => existsSync(join(bin, 'initdb')) && existsSync(join(bin, 'pg_ctl')));
  if (!found) {
    throw new Error(
      'postgres harness: PostgreSQL server binaries (initdb, pg_ctl) not found via pg_config --bindir or ' +
        '/usr/lib/postgresql/*/bin; install the Debian package `postgresql` (scripts/bootstrap.sh does)',
    );
  }
  return found;
}

async function waitUntilAcceptingQueries(url: string, timeoutMs: number, logFile: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    const client = new Client({ connectionString: url, connectionTimeoutMillis: 2000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
      await client.end();
      return;
    } catch (err) {
      lastError = err;
      await client.end().catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`postgres harness: server not accepting queries after ${timeoutMs} ms: ${String(lastError)}\n${tail(logFile)}`);
}

function readPostmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no server log)';
  }
}

/**
 * `count` distinct free ports: each is held until all are found, so the kernel cannot hand the
 * same one out twice (two freePort() calls in a row may return the same port once the first
 * listener has closed).
 */
export async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.on('error', reject);
        server.listen(0, '127.0.0.1', () => resolve());
      });
    }
    return servers.map((server) => (server.address() as AddressInfo).port);
  } finally {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  }
}

/** A port free at the moment of asking (the OS picks it); the server binds it right after. */
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0]!;
}

/**
 * A fresh database for one test file on the server jest.global-setup.ts started
 * (PKI_TEST_DATABASE_URL); returns its superuser URL.
 */
export async function createTestDatabase(prefix: string): Promise<string> {
  const adminUrl = process.env.PKI_TEST_DATABASE_URL;
  if (!adminUrl) {
    throw new Error('postgres harness: PKI_TEST_DATABASE_URL is not set; run tests through jest (jest.global-setup.ts starts the server)');
  }
  return createDatabase(adminUrl, uniqueDatabaseName(prefix));
}
