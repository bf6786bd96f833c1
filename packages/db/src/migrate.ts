import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PkiError, type Logger } from '@pki/kit';
import type { Pool, PoolClient } from 'pg';
import { toDatabaseError } from './errors';
import { assertSchemaName } from './pool';

/** One versioned schema change. Files are named `NNN_description.sql` (e.g. `001_subscribers.sql`). */
export interface Migration {
  version: number;
  /** The description part of the name (`subscribers`). */
  name: string;
  sql: string;
  /** Where it came from (file name or module), for error messages. */
  source: string;
}

export interface MigrateOptions {
  /** The service's schema; created when missing; the migration SQL runs with it as search_path. */
  schema: string;
  /** Folder of `NNN_description.sql` files. */
  directory?: string;
  /**
   * Migrations shipped in code by a shared package (e.g. `outboxMigration(2)` from @pki/outbox),
   * merged with the folder's files by version.
   */
  migrations?: Migration[];
  logger?: Logger;
}

export interface MigrateResult {
  /** Versions applied by this call, in order. */
  applied: number[];
  /** The schema's version afterwards. */
  version: number;
}

const FILE_NAME = /^(\d{3,})_([a-z0-9][a-z0-9_]*)\.sql$/;

/**
 * Applies the pending migrations of one schema, in version order, each in its own transaction
 * together with its row in `<schema>.schema_migrations`. Replicas starting at once queue on a
 * session advisory lock per schema, so exactly one applies and the others find nothing to do.
 *
 * Refuses (FAILED_PRECONDITION, naming the file) when an applied migration's checksum no longer
 * matches its file: the database would silently differ from what the code declares. Also refuses a
 * pending migration numbered below the newest applied one (two branches merged out of order).
 * Applied versions the code does not know are tolerated with a warning: during a rolling
 * deployment or a rollback, older replicas start against a schema already migrated forward,
 * which expand/contract migrations keep compatible.
 *
 * Migration SQL must be transactional (no CREATE INDEX CONCURRENTLY, no ALTER TYPE ... ADD VALUE
 * used in the same file).
 */
export async function migrate(pool: Pool, options: MigrateOptions): Promise<MigrateResult> {
  const { schema, logger } = options;
  assertSchemaName(schema);
  const operation = `migrate ${schema}`;
  const migrations = collectMigrations(options, operation);

  let client: PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    throw toDatabaseError(err, operation);
  }
  let broken: Error | undefined;
  try {
    // Migrations may legitimately outlast the service's statement timeout (index builds, and the
    // wait for another replica's lock); RESET at the end restores the connection's own value.
    await client.query('SET statement_timeout = 0');
    await client.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [`pki.migrate:${schema}`]);
    try {
      return await applyPending(client, schema, migrations, operation, logger);
    } finally {
      await client.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [`pki.migrate:${schema}`]);
      await client.query('RESET statement_timeout');
    }
  } catch (err) {
    if (!(err instanceof PkiError)) broken = err instanceof Error ? err : new Error(String(err));
    throw toDatabaseError(err, operation);
  } finally {
    client.release(broken);
  }
}

async function applyPending(client: PoolClient, schema: string, migrations: Migration[], operation: string, logger?: Logger): Promise<MigrateResult> {
  await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  await client.query(`
    CREATE TABLE IF NOT EXISTS ${schema}.schema_migrations (
      version    integer     PRIMARY KEY,
      name       text        NOT NULL,
      checksum   text        NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
  const { rows } = await client.query<{ version: number; name: string; checksum: string }>(
    `SELECT version, name, checksum FROM ${schema}.schema_migrations ORDER BY version`,
  );
  const applied = new Map(rows.map((row) => [row.version, row]));
  const known = new Map(migrations.map((m) => [m.version, m]));

  for (const row of rows) {
    const migration = known.get(row.version);
    if (!migration) {
      logger?.warn({ schema, version: row.version, name: row.name }, `${operation}: database has migration ${row.version} (${row.name}) this code does not know`);
      continue;
    }
    if (migrationChecksum(migration.sql) !== row.checksum) {
      throw new PkiError(
        'FAILED_PRECONDITION',
        `${operation}: ${migration.source} was changed after it was applied (checksum ${row.checksum.slice(0, 12)}... recorded, ` +
          `${migrationChecksum(migration.sql).slice(0, 12)}... now); add a new migration instead of editing an applied one`,
        { details: { schema, version: String(row.version) } },
      );
    }
  }

  const newestApplied = rows.length > 0 ? Math.max(...rows.map((r) => r.version)) : 0;
  const pending = migrations.filter((m) => !applied.has(m.version));
  const outOfOrder = pending.find((m) => m.version < newestApplied);
  if (outOfOrder) {
    throw new PkiError(
      'FAILED_PRECONDITION',
      `${operation}: ${outOfOrder.source} is numbered below the newest applied migration ${newestApplied}; renumber it after ${newestApplied}`,
      { details: { schema, version: String(outOfOrder.version) } },
    );
  }

  const done: number[] = [];
  for (const migration of pending) {
    await client.query('BEGIN');
    try {
      await client.query(`SET LOCAL search_path TO ${schema}`);
      await client.query(migration.sql);
      await client.query(`INSERT INTO ${schema}.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)`, [
        migration.version,
        migration.name,
        migrationChecksum(migration.sql),
      ]);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      const failure = toDatabaseError(err, operation);
      if (failure instanceof PkiError) throw failure;
      throw new PkiError('FAILED_PRECONDITION', `${operation}: ${migration.source} failed: ${(err as Error).message}`, {
        cause: err,
        details: { schema, version: String(migration.version) },
      });
    }
    done.push(migration.version);
    logger?.info({ schema, version: migration.version, name: migration.name }, `${operation}: applied ${migration.source}`);
  }
  const version = Math.max(newestApplied, ...done, 0);
  return { applied: done, version };
}

/** Reads a folder of `NNN_description.sql` files; any other .sql name is an error, not silently skipped. */
export function loadMigrations(directory: string): Migration[] {
  if (!existsSync(directory)) {
    throw new PkiError('FAILED_PRECONDITION', `load migrations: folder ${directory} does not exist`);
  }
  const migrations: Migration[] = [];
  for (const file of readdirSync(directory).sort()) {
    if (!file.endsWith('.sql')) continue;
    const match = FILE_NAME.exec(file);
    if (!match) {
      throw new PkiError('FAILED_PRECONDITION', `load migrations: ${file} in ${directory} is not named NNN_description.sql`);
    }
    migrations.push({ version: Number(match[1]), name: match[2]!, sql: readFileSync(join(directory, file), 'utf8'), source: file });
  }
  return migrations;
}

/**
 * SHA-256 of the migration text with line endings normalised, so a checkout with CRLF endings
 * does not count as an edit.
 */
export function migrationChecksum(sql: string): string {
  return createHash('sha256').update(sql.replace(/\r\n/g, '\n'), 'utf8').digest('hex');
}

function collectMigrations(options: MigrateOptions, operation: string): Migration[] {
  const all = [...(options.directory !== undefined ? loadMigrations(options.directory) : []), ...(options.migrations ?? [])];
  const byVersion = new Map<number, Migration>();
  for (const migration of all) {
    if (!Number.isInteger(migration.version) || migration.version <= 0) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: ${migration.source} has version ${migration.version}; versions are positive integers`);
    }
    const clash = byVersion.get(migration.version);
    if (clash) {
      throw new PkiError('FAILED_PRECONDITION', `${operation}: ${clash.source} and ${migration.source} both claim version ${migration.version}`);
    }
    byVersion.set(migration.version, migration);
  }
  return [...byVersion.values()].sort((a, b) => a.version - b.version);
}
