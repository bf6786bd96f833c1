import type { Pool, PoolClient } from 'pg';
import { toDatabaseError } from './errors';

/** A connection inside an open transaction. Functions that must run inside one take a `Tx`. */
export type Tx = PoolClient;

export type IsolationLevel = 'read committed' | 'repeatable read' | 'serializable';

export interface TransactionOptions {
  isolation?: IsolationLevel;
  readOnly?: boolean;
}

/**
 * Runs `work` in one transaction: COMMIT when it resolves, ROLLBACK when it throws (and the error
 * is rethrown unchanged, or as UNAVAILABLE when the connection failed). The connection goes back
 * to the pool either way; a connection whose ROLLBACK failed is destroyed rather than reused,
 * since its state is unknown.
 */
export async function withTransaction<T>(pool: Pool, work: (tx: Tx) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
  let client: PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    throw toDatabaseError(err, 'begin transaction');
  }
  let broken: Error | undefined;
  // A connection the server ends while it is checked out (PostgreSQL stopped during `work`) emits
  // 'error' on the client, which no pool listener handles then: without this, the process would
  // die of an unhandled error instead of the next query failing UNAVAILABLE.
  const onError = (err: Error) => {
    broken = err;
  };
  client.on('error', onError);
  try {
    await client.query(beginStatement(options));
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    try {
      await client.query('ROLLBACK');
    } catch (rollbackError) {
      broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
    }
    throw toDatabaseError(err, 'transaction');
  } finally {
    client.off('error', onError);
    client.release(broken);
  }
}

function beginStatement(options: TransactionOptions): string {
  const parts = ['BEGIN'];
  if (options.isolation) parts.push(`ISOLATION LEVEL ${options.isolation.toUpperCase()}`);
  if (options.readOnly) parts.push('READ ONLY');
  return parts.join(' ');
}
