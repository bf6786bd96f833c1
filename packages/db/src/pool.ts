import { PkiError } from '@pki/kit';
import { Pool, type PoolConfig } from 'pg';

/** One service's database settings; each service owns one schema (ra, ca_signer, ocsp, crl, card_mgmt, audit). */
export interface DatabaseConfig {
  /** postgres://user@host:port/database; credentials come from the service config's secret file. */
  url: string;
  /** The service's schema: unqualified names in its SQL resolve here. */
  schema: string;
  maxConnections?: number;
  /** Shown in pg_stat_activity, so operators see which service holds a connection. */
  applicationName?: string;
  /** Server-side cap for any one statement; a runaway query fails instead of holding locks. */
  statementTimeoutMs?: number;
  /** How long to wait for a connection (from the pool or a new one) before failing UNAVAILABLE. */
  connectionTimeoutMs?: number;
  idleTimeoutMs?: number;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** Checks a schema name before it is spliced into SQL as an identifier. */
export function assertSchemaName(schema: string): void {
  if (!SCHEMA_NAME.test(schema)) {
    throw new PkiError('INVALID_ARGUMENT', `database: schema name ${JSON.stringify(schema)} must be a lower-case SQL identifier`);
  }
}

/**
 * A connection pool whose every connection uses the service's schema as its search_path. The
 * setting travels in the startup packet (`options=-c search_path=...`), so it holds from the
 * first statement and survives DISCARD ALL; `public` is deliberately not on the path, so a
 * missing table fails instead of silently resolving to another schema's object.
 */
export function createPool(config: DatabaseConfig): Pool {
  assertSchemaName(config.schema);
  const options = [`-c search_path=${config.schema}`];
  if (config.statementTimeoutMs !== undefined) options.push(`-c statement_timeout=${Math.max(0, Math.floor(config.statementTimeoutMs))}`);
  const poolConfig: PoolConfig = {
    connectionString: config.url,
    max: config.maxConnections ?? 10,
    application_name: config.applicationName ?? config.schema,
    connectionTimeoutMillis: config.connectionTimeoutMs ?? 10_000,
    idleTimeoutMillis: config.idleTimeoutMs ?? 30_000,
    options: options.join(' '),
  };
  const pool = new Pool(poolConfig);
  // An idle connection dropped by the server (restart, failover) emits 'error' on the pool; without
  // a listener that would crash the process. pg discards the broken client; the next checkout dials anew.
  pool.on('error', () => undefined);
  return pool;
}
