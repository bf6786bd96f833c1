import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PkiError } from '@pki/kit';
import { createTestDatabase } from '@pki/testing';
import type { Pool } from 'pg';
import { createPool, migrate } from '../src';

describe('migrate', () => {
  let url: string;
  let pool: Pool;
  let folder: string;

  beforeAll(async () => {
    url = await createTestDatabase('db_migrate');
    pool = createPool({ url, schema: 'ra', maxConnections: 6 });
  });
  afterAll(async () => pool.end());
  beforeEach(() => {
    folder = mkdtempSync(join(tmpdir(), 'migrations-'));
  });
  afterEach(() => rmSync(folder, { recursive: true, force: true }));

  function write(file: string, sql: string): void {
    writeFileSync(join(folder, file), sql);
  }

  it('creates the schema, applies files in version order, and a second run changes nothing', async () => {
    // 002 depends on 001 and 010 on both: a lexical or unordered apply would fail.
    write('010_serial_index.sql', 'CREATE INDEX certificates_serial ON certificates (serial);');
    write('001_subscribers.sql', 'CREATE TABLE subscribers (id bigint PRIMARY KEY);');
    write('002_certificates.sql', 'CREATE TABLE certificates (serial text PRIMARY KEY, subscriber_id bigint REFERENCES subscribers(id));');
    write('README.md', 'not a migration');

    const first = await migrate(pool, { schema: 'ra', directory: folder });
    expect(first).toEqual({ applied: [1, 2, 10], version: 10 });

    const { rows } = await pool.query('SELECT version, name, length(checksum) AS checksum_length FROM ra.schema_migrations ORDER BY version');
    expect(rows).toEqual([
      { version: 1, name: 'subscribers', checksum_length: 64 },
      { version: 2, name: 'certificates', checksum_length: 64 },
      { version: 10, name: 'serial_index', checksum_length: 64 },
    ]);
    // The pool's search_path is the service schema: unqualified names resolve there.
    await pool.query('INSERT INTO subscribers (id) VALUES (1)');

    const second = await migrate(pool, { schema: 'ra', directory: folder });
    expect(second).toEqual({ applied: [], version: 10 });
  });

  it('refuses to start when an applied migration was edited, naming the file', async () => {
    const schema = 'crl';
    write('001_partitions.sql', 'CREATE TABLE partitions (id int PRIMARY KEY);');
    await migrate(pool, { schema, directory: folder });
    write('001_partitions.sql', 'CREATE TABLE partitions (id bigint PRIMARY KEY);');

    const refusal = migrate(pool, { schema, directory: folder });
    await expect(refusal).rejects.toThrow(PkiError);
    await expect(migrate(pool, { schema, directory: folder })).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
      message: expect.stringMatching(/^migrate crl: 001_partitions\.sql was changed after it was applied/),
    });
  });

  it('rolls back a failing migration entirely and names it', async () => {
    const schema = 'ocsp';
    write('001_responses.sql', 'CREATE TABLE responses (serial text PRIMARY KEY);');
    write('002_broken.sql', 'CREATE TABLE half_done (id int); SELECT no_such_function();');
    await expect(migrate(pool, { schema, directory: folder })).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
      message: expect.stringContaining('migrate ocsp: 002_broken.sql failed: function no_such_function() does not exist'),
    });
    const tables = await pool.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'ocsp' ORDER BY 1");
    expect(tables.rows.map((r) => r.table_name)).toEqual(['responses', 'schema_migrations']);
  });

  it('lets concurrent replicas race: each migration is applied exactly once', async () => {
    const schema = 'card_mgmt';
    write('001_cards.sql', 'CREATE TABLE cards (id int PRIMARY KEY); SELECT pg_sleep(0.2);');
    write('002_card_events.sql', 'CREATE TABLE card_events (id int PRIMARY KEY);');
    const results = await Promise.all([1, 2, 3].map(() => migrate(pool, { schema, directory: folder })));
    expect(results.map((r) => r.applied).flat().sort()).toEqual([1, 2]);
    expect(results.every((r) => r.version === 2)).toBe(true);
  });

  it('rejects misnamed files, duplicate versions and a version below the applied ones', async () => {
    write('1-bad-name.sql', 'SELECT 1;');
    await expect(migrate(pool, { schema: 'audit', directory: folder })).rejects.toThrow('load migrations: 1-bad-name.sql in');
    rmSync(join(folder, '1-bad-name.sql'));

    write('001_events.sql', 'CREATE TABLE events (id int);');
    const shipped = { version: 1, name: 'outbox', sql: 'SELECT 1;', source: '@pki/outbox outbox' };
    await expect(migrate(pool, { schema: 'audit', directory: folder, migrations: [shipped] })).rejects.toThrow(
      'migrate audit: 001_events.sql and @pki/outbox outbox both claim version 1',
    );

    write('003_later.sql', 'CREATE TABLE later (id int);');
    await migrate(pool, { schema: 'audit', directory: folder });
    write('002_forgotten.sql', 'CREATE TABLE forgotten (id int);');
    await expect(migrate(pool, { schema: 'audit', directory: folder })).rejects.toThrow(
      'migrate audit: 002_forgotten.sql is numbered below the newest applied migration 3',
    );
  });
});
