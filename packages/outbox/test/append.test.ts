import { migrate, withTransaction, type Pool } from '@pki/db';
import { acceptEventOnce, appendEvent, appendEvents, inboxMigration } from '../src';
import { producerDatabase } from './delivery-scenario';

describe('appendEvent', () => {
  let pool: Pool;

  beforeAll(async () => {
    ({ pool } = await producerDatabase('outbox_append'));
    await migrate(pool, { schema: 'ra', migrations: [inboxMigration(2)] });
  });
  afterAll(async () => pool.end());

  const event = { producer: 'ra.status', topic: 'certificate-status', key: '0a1b2c', payload: new Uint8Array([1, 2, 3]) };

  it('numbers a producer\'s events 1, 2, 3 and gives a rolled-back number to the next writer', async () => {
    const first = await withTransaction(pool, (tx) => appendEvent(tx, event));
    await expect(
      withTransaction(pool, async (tx) => {
        await appendEvent(tx, event);
        throw new Error('officer lacks the revoke role');
      }),
    ).rejects.toThrow('officer lacks the revoke role');
    const second = await withTransaction(pool, async (tx) => [await appendEvent(tx, event), await appendEvent(tx, event)]);
    const otherProducer = await withTransaction(pool, (tx) => appendEvent(tx, { ...event, producer: 'ra.audit' }));
    expect([first, ...second, otherProducer]).toEqual([1, 2, 3, 1]);
  });

  it('appends several events of one producer in one statement, numbered in order after single appends', async () => {
    const seqs = await withTransaction(pool, async (tx) => [
      await appendEvent(tx, { ...event, producer: 'card-mgmt.audit' }),
      ...(await appendEvents(tx, [1, 2, 3].map((n) => ({ ...event, producer: 'card-mgmt.audit', key: `k${n}`, payload: new Uint8Array([n]) })))),
      await appendEvent(tx, { ...event, producer: 'card-mgmt.audit' }),
    ]);
    expect(seqs).toEqual([1, 2, 3, 4, 5]);
    const { rows } = await pool.query(`SELECT seq::int, key, payload FROM outbox WHERE producer = 'card-mgmt.audit' ORDER BY seq`);
    expect(rows.slice(1, 4).map((r) => [r.seq, r.key, [...r.payload]])).toEqual([[2, 'k1', [1]], [3, 'k2', [2]], [4, 'k3', [3]]]);
    await expect(withTransaction(pool, (tx) => appendEvents(tx, [{ ...event, topic: 'bad topic!' }]))).rejects.toThrow(/topic/);
  });

  it('appends events of several producers in one statement, each numbered on from its own head, answered in array order', async () => {
    await withTransaction(pool, (tx) => appendEvent(tx, { ...event, producer: 'mixed.audit' }));
    const seqs = await withTransaction(pool, (tx) =>
      appendEvents(tx, [
        { ...event, producer: 'mixed.status', key: 's1' },
        { ...event, producer: 'mixed.audit', key: 'a1' },
        { ...event, producer: 'mixed.status', key: 's2' },
        { ...event, producer: 'mixed.audit', key: 'a2' },
      ]),
    );
    expect(seqs).toEqual([1, 2, 2, 3]);
    const { rows } = await pool.query(`SELECT producer, seq::int, key FROM outbox WHERE producer LIKE 'mixed.%' ORDER BY producer, seq`);
    expect(rows.map((r) => `${r.producer}/${r.seq}/${r.key}`)).toEqual(['mixed.audit/1/0a1b2c', 'mixed.audit/2/a1', 'mixed.audit/3/a2', 'mixed.status/1/s1', 'mixed.status/2/s2']);
    const heads = await pool.query(`SELECT producer, last_seq::int FROM outbox_head WHERE producer LIKE 'mixed.%' ORDER BY producer`);
    expect(heads.rows).toEqual([{ producer: 'mixed.audit', last_seq: 3 }, { producer: 'mixed.status', last_seq: 2 }]);
  });

  it('makes a second writer of the same producer wait for the first to end: seq order is commit order', async () => {
    const order: string[] = [];
    let releaseFirst!: () => void;
    const firstMayCommit = new Promise<void>((resolve) => (releaseFirst = resolve));
    const first = withTransaction(pool, async (tx) => {
      const seq = await appendEvent(tx, { ...event, producer: 'crl.status' });
      order.push(`first appended ${seq}`);
      await firstMayCommit;
      order.push('first commits');
    });
    while (order.length === 0) await new Promise((r) => setTimeout(r, 5));
    const second = withTransaction(pool, async (tx) => {
      const seq = await appendEvent(tx, { ...event, producer: 'crl.status' });
      order.push(`second appended ${seq}`);
    });
    // The second writer is blocked on the producer's head row until the first transaction ends.
    while ((await pool.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")).rows[0].n === 0) {
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(order).toEqual(['first appended 1']);
    releaseFirst();
    await Promise.all([first, second]);
    expect(order).toEqual(['first appended 1', 'first commits', 'second appended 2']);
  });

  it('refuses malformed events before touching the database', async () => {
    await withTransaction(pool, async (tx) => {
      await expect(appendEvent(tx, { ...event, producer: 'RA Status' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^append event: producer "RA Status"/) });
      await expect(appendEvent(tx, { ...event, topic: 'status/changes' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      await expect(appendEvent(tx, { ...event, headers: { 'pki-seq': '7' } })).rejects.toThrow('append event: header pki-seq uses the reserved prefix pki-');
    });
  });

  it('records a consumer\'s applied events durably so a redelivery has no second effect', async () => {
    const apply = (seq: number) => withTransaction(pool, (tx) => acceptEventOnce(tx, 'ocsp', { producer: 'ra.status', seq }));
    expect(await apply(1)).toBe(true);
    expect(await apply(2)).toBe(true);
    expect(await apply(2)).toBe(false);
    expect(await apply(1)).toBe(false);
    // A rolled-back effect leaves the event unapplied, so its redelivery is accepted.
    await expect(
      withTransaction(pool, async (tx) => {
        expect(await acceptEventOnce(tx, 'ocsp', { producer: 'ra.status', seq: 3 })).toBe(true);
        throw new Error('re-sign OCSP response: HSM unavailable');
      }),
    ).rejects.toThrow('HSM unavailable');
    expect(await apply(3)).toBe(true);
  });
});
