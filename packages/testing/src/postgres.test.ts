import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { createDatabase, startPostgres, uniqueDatabaseName } from './postgres';

describe('postgres test harness', () => {
  it('starts a private server, creates isolated databases and removes everything on stop', async () => {
    const server = await startPostgres({ dir: join(__dirname, '../../../var/test') });
    try {
      const url = await createDatabase(server.url, uniqueDatabaseName('harness check'));
      const client = new Client({ connectionString: url });
      await client.connect();
      try {
        const { rows } = await client.query<{ db: string; fsync: string }>(
          "SELECT current_database() AS db, current_setting('fsync') AS fsync",
        );
        expect(rows[0]?.db).toMatch(/^harness_check_\d+_/);
        expect(rows[0]?.fsync).toBe('off');
      } finally {
        await client.end();
      }
    } finally {
      await server.stop();
    }
    expect(existsSync(server.dir)).toBe(false);
  });

  it('rejects a database name that is not a plain identifier', async () => {
    await expect(createDatabase('postgres://127.0.0.1:1/postgres', 'x; DROP')).rejects.toThrow(/lower-case SQL identifier/);
  });
});
