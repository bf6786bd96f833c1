import { PkiError } from '@pki/kit';
import type { Pool } from 'pg';
import { toDatabaseError } from './errors';

/**
 * Readiness probe: one `SELECT 1` bounded by `timeoutMs` (including the wait for a connection).
 * Resolves when the database answers, rejects with PkiError UNAVAILABLE otherwise.
 */
export async function checkDatabase(pool: Pool, timeoutMs = 2000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PkiError('UNAVAILABLE', `database: readiness check: no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  const probe = (async () => {
    // query_timeout makes pg abandon the statement itself; the race above also covers the connect.
    const result = await pool.query({ text: 'SELECT 1 AS ok', query_timeout: timeoutMs } as { text: string });
    if (result.rows[0]?.ok !== 1) throw new PkiError('INTERNAL', 'database: readiness check: unexpected answer to SELECT 1');
  })();
  try {
    await Promise.race([probe, timeout]);
  } catch (err) {
    probe.catch(() => undefined);
    const mapped = toDatabaseError(err, 'readiness check');
    throw mapped instanceof PkiError ? mapped : new PkiError('UNAVAILABLE', `database: readiness check: ${(err as Error).message}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}
