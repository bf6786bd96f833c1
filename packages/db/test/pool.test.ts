import { PkiError } from '@pki/kit';
import { createTestDatabase } from '@pki/testing';
import type { Pool } from 'pg';
import { checkDatabase, createPool, withTransaction } from '../src';

describe('createPool and withTransaction', () => {
  let url: string;
  let pool: Pool;

  beforeAll(async () => {
    url = await createTestDatabase('db_pool');
    const admin = createPool({ url, schema: 'public' });
    await admin.query('CREATE SCHEMA ra; CREATE TABLE ra.applications (id int PRIMARY KEY, state text NOT NULL)');
    await admin.end();
    pool = createPool({ url, schema: 'ra', applicationName: 'ra-test', statementTimeoutMs: 500 });
  });
  afterAll(async () => pool.end());

  it('gives every connection the service schema, application name and statement timeout', async () => {
    const { rows } = await pool.query(
      "SELECT current_schema() AS schema, current_setting('application_name') AS app, current_setting('statement_timeout') AS timeout",
    );
    expect(rows[0]).toEqual({ schema: 'ra', app: 'ra-test', timeout: '500ms' });
    await expect(pool.query('SELECT pg_sleep(2)')).rejects.toThrow(/statement timeout/);
  });

  it('commits the work of a transaction that completes', async () => {
    const id = await withTransaction(pool, async (tx) => {
      await tx.query("INSERT INTO applications VALUES (1, 'submitted')");
      return 1;
    });
    expect(id).toBe(1);
    expect((await pool.query('SELECT state FROM applications WHERE id = 1')).rows).toEqual([{ state: 'submitted' }]);
  });

  it('rolls back and rethrows when the work fails, and returns the connection', async () => {
    const refusal = new PkiError('FAILED_PRECONDITION', 'approve application: already approved');
    await expect(
      withTransaction(pool, async (tx) => {
        await tx.query("INSERT INTO applications VALUES (2, 'approved')");
        throw refusal;
      }),
    ).rejects.toBe(refusal);
    expect((await pool.query('SELECT count(*)::int AS n FROM applications WHERE id = 2')).rows[0].n).toBe(0);
    expect(pool.totalCount - pool.idleCount).toBe(0);
  });

  it('runs at the requested isolation level', async () => {
    const level = await withTransaction(pool, async (tx) => (await tx.query('SHOW transaction_isolation')).rows[0].transaction_isolation, {
      isolation: 'serializable',
    });
    expect(level).toBe('serializable');
  });

  it('reports readiness, and UNAVAILABLE for an unreachable database', async () => {
    await expect(checkDatabase(pool)).resolves.toBeUndefined();
    const unreachable = new URL(url);
    unreachable.port = '1';
    const deadPool = createPool({ url: unreachable.toString(), schema: 'ra', connectionTimeoutMs: 500 });
    try {
      await expect(checkDatabase(deadPool, 1000)).rejects.toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/^database: readiness check: /) });
      await expect(withTransaction(deadPool, async () => undefined)).rejects.toMatchObject({
        code: 'UNAVAILABLE',
        message: expect.stringMatching(/^database: begin transaction: /),
      });
    } finally {
      await deadPool.end();
    }
  });

  it('rejects a schema name that is not a plain identifier', () => {
    expect(() => createPool({ url, schema: 'ra; DROP SCHEMA ra' })).toThrow(/schema name .* must be a lower-case SQL identifier/);
  });
});
