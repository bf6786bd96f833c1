export { createPool, assertSchemaName, type DatabaseConfig } from './pool';
export { withTransaction, type Tx, type IsolationLevel, type TransactionOptions } from './transaction';
export { migrate, loadMigrations, migrationChecksum, type Migration, type MigrateOptions, type MigrateResult } from './migrate';
export { checkDatabase } from './readiness';
export { isConnectionFailure, toDatabaseError } from './errors';
export type { Pool, PoolClient } from 'pg';
export { BatchCommit, type BatchQueryable } from './group-commit';
