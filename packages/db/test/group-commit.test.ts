import { createTestDatabase } from '@pki/testing';
import type { Pool } from 'pg';
import { BatchCommit, createPool, type Tx } from '../src';

/** Group commit against real PostgreSQL: which transaction each write landed in, and each caller's outcome. */
let pool: Pool;

beforeAll(async () => {
  pool = createPool({ url: await createTestDatabase('db_group_commit'), schema: 'public', maxConnections: 10 });
});
afterAll(async () => pool.end());

describe('BatchCommit', () => {
  it('BatchCommit writes concurrent items with one statement per batch, and retries a failed batch item by item', async () => {
    await pool.query('CREATE TABLE IF NOT EXISTS batch_commit_probe (id int PRIMARY KEY, tx bigint NOT NULL)');
    let statements = 0;
    const batches = new BatchCommit<number, number>(pool, async (tx, ids) => {
      statements++;
      const { rows } = await tx.query<{ id: number }>('INSERT INTO batch_commit_probe (id, tx) SELECT id, txid_current() FROM unnest($1::int[]) AS t(id) RETURNING id', [ids]);
      return ids.map((id) => (rows.some((r) => r.id === id) ? id * 10 : -1));
    });
    expect(await Promise.all([1, 2, 3, 4, 5, 6].map((id) => batches.submit(id)))).toEqual([10, 20, 30, 40, 50, 60]);
    // Submitted in one turn of the event loop: one batch, one statement, one transaction.
    expect(statements).toBe(1);
    expect(new Set((await pool.query('SELECT tx FROM batch_commit_probe')).rows.map((r) => r.tx)).size).toBe(1);
    // Submitted while a batch is being written: they wait for it, then go together.
    const first = batches.submit(11);
    await new Promise((r) => setImmediate(r));
    const rest = [12, 13, 14].map((id) => batches.submit(id));
    expect(await Promise.all([first, ...rest])).toEqual([110, 120, 130, 140]);
    expect(statements).toBe(3);

    // A duplicate fails the batch's statement: each item is then written alone, and only its caller sees the error.
    const outcomes = await Promise.allSettled([7, 8, 3, 9].map((id) => batches.submit(id)));
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect(outcomes[2]).toMatchObject({ reason: { constraint: 'batch_commit_probe_pkey' } });
    const { rows } = await pool.query('SELECT id FROM batch_commit_probe ORDER BY id');
    expect(rows.map((r) => r.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14]);
  });

  it('BatchCommit in single-statement mode writes a batch with one statement and no transaction around it, and calls an unreachable database UNAVAILABLE', async () => {
    await pool.query('CREATE TABLE IF NOT EXISTS batch_statement_probe (id int PRIMARY KEY, tx bigint NOT NULL)');
    const texts: string[] = [];
    const write = (db: { query: Tx['query'] }, ids: readonly number[]) => {
      const text = 'INSERT INTO batch_statement_probe (id, tx) SELECT id, txid_current() FROM unnest($1::int[]) AS t(id) RETURNING id';
      texts.push(text);
      return db.query<{ id: number }>(text, [ids]).then(({ rows }) => ids.map((id) => rows.some((r) => r.id === id)));
    };
    const batches = new BatchCommit<number, boolean>(pool, write, { singleStatement: true });
    expect(await Promise.all([1, 2, 3].map((id) => batches.submit(id)))).toEqual([true, true, true]);
    expect(texts).toHaveLength(1);
    expect(new Set((await pool.query('SELECT tx FROM batch_statement_probe')).rows.map((r) => r.tx)).size).toBe(1);

    const unreachable = createPool({ url: 'postgres://nobody@127.0.0.1:1/none', schema: 'public', maxConnections: 1 });
    try {
      const refused = new BatchCommit<number, boolean>(unreachable, write, { singleStatement: true });
      await expect(refused.submit(4)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    } finally {
      await unreachable.end();
    }
  });
});

describe('BatchCommit with a writer for lone items', () => {
  it('writes an item that goes alone with its own writer, a batch with the batch writer in one transaction, and a failed batch item by item alone', async () => {
    await pool.query('CREATE TABLE IF NOT EXISTS batch_alone_probe (id int PRIMARY KEY, tx bigint NOT NULL, how text NOT NULL)');
    const insert = (db: { query: Tx['query'] }, id: number, how: string) =>
      db.query('INSERT INTO batch_alone_probe (id, tx, how) VALUES ($1, txid_current(), $2)', [id, how]).then(() => id);
    const batches = new BatchCommit<number, number>(
      pool,
      async (tx, ids) => {
        const out: number[] = [];
        for (const id of ids) out.push(await insert(tx, id, 'batch'));
        return out;
      },
      { alone: (id) => insert(pool, id, 'alone') },
    );
    expect(await batches.submit(1)).toBe(1);
    expect(await Promise.all([2, 3, 4].map((id) => batches.submit(id)))).toEqual([2, 3, 4]);
    const outcomes = await Promise.allSettled([5, 2, 6].map((id) => batches.submit(id)));
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(outcomes[1]).toMatchObject({ reason: { constraint: 'batch_alone_probe_pkey' } });

    const { rows } = await pool.query<{ id: number; tx: string; how: string }>('SELECT id, tx, how FROM batch_alone_probe ORDER BY id');
    expect(rows.map((r) => [r.id, r.how])).toEqual([
      [1, 'alone'],
      [2, 'batch'],
      [3, 'batch'],
      [4, 'batch'],
      [5, 'alone'],
      [6, 'alone'],
    ]);
    // The batch of three committed as one transaction; the failed batch's items each in their own.
    expect(new Set(rows.slice(1, 4).map((r) => r.tx)).size).toBe(1);
    expect(new Set([rows[4]!.tx, rows[5]!.tx]).size).toBe(2);
  });
});
