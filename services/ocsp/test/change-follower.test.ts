import { createPool, migrate, type Pool, type PoolClient } from '@pki/db';
import { createLogger, systemClock } from '@pki/kit';
import { outboxMigration } from '@pki/outbox';
import { createTestDatabase } from '@pki/testing';
import { MIGRATIONS_DIRECTORY, SHARED_MIGRATIONS } from '../src/app';
import { StatusStore, type SignedResponses, type StoredCertificate } from '../src/adapters/postgres/status-store';
import { ChangeFollower } from '../src/domain/change-follower';
import type { DependencyHealth } from '../src/domain/dependency-health';
import type { IssuerDirectory } from '../src/domain/issuer-directory';
import type { ResponseMemory } from '../src/domain/response-memory';

/**
 * The change follower of a pod that did not make the change, against real PostgreSQL: it must
 * read every committed change of the shared store, whichever order the changes took their numbers
 * in and committed in (several pods write the store at once).
 */

let pool: Pool;
let store: StatusStore;
const seen: Array<{ serial: string; what: string }> = [];
const memory = {
  put: (row: StoredCertificate) => seen.push({ serial: row.serialHex, what: 'response' }),
  markKnown: (serial: string) => seen.push({ serial, what: 'known' }),
  markPending: (row: { serialHex: string }) => seen.push({ serial: row.serialHex, what: 'pending' }),
  forget: (serial: string) => seen.push({ serial, what: 'forget' }),
} as unknown as ResponseMemory;
const follower = () =>
  new ChangeFollower({
    store,
    memory,
    directory: { issuer: () => ({}) } as unknown as IssuerDirectory,
    health: { up: () => undefined, down: () => undefined } as unknown as DependencyHealth,
    policy: { expiredRetentionDays: 3650 },
    certIdHashes: ['SHA256'],
    pollIntervalMs: 50,
    clock: systemClock,
    logger: createLogger({ service: 'test', level: 'silent' }),
    refreshIssuers: async () => undefined,
  });

let seq = 0;
const applyValid = (serialHex: string) =>
  store.applyStatus('test', { producer: 'ra', seq: ++seq }, { serialHex, issuerKeyId: 'ab'.repeat(20), status: 'VALID', reason: 0, notAfter: new Date(Date.now() + 86_400_000 * 365), statusProducer: 'ra', statusSeq: seq, changedAt: new Date() });
const responsesFor = async (serialHex: string): Promise<SignedResponses> => {
  const { rows } = await pool.query('SELECT status_seq FROM certificates WHERE serial_hex = $1', [serialHex]);
  const now = new Date(Math.floor(Date.now() / 1000) * 1000);
  return { serialHex, statusSeq: Number(rows[0].status_seq), responseSha256: Buffer.from(`response of ${serialHex}`), thisUpdate: now, nextUpdate: new Date(now.getTime() + 3_600_000), refreshAt: new Date(now.getTime() + 1_800_000) };
};
const changeIdOf = async (serialHex: string) => Number((await pool.query('SELECT change_id FROM certificates WHERE serial_hex = $1', [serialHex])).rows[0].change_id);

/** Pod A: a transaction that has saved responses for `serials` and stays open until it ends (or the test does). */
const open = new Set<PoolClient>();
async function openWrite(serials: string[]): Promise<{ end(how: 'COMMIT' | 'ROLLBACK'): Promise<void> }> {
  const client = await pool.connect();
  open.add(client);
  await client.query('BEGIN');
  await store.saveResponses(await Promise.all(serials.map(responsesFor)), client);
  return {
    async end(how) {
      await client.query(how);
      open.delete(client);
      client.release();
    },
  };
}
afterEach(() => {
  for (const client of open) client.release(true);
  open.clear();
});

beforeAll(async () => {
  pool = createPool({ url: await createTestDatabase('ocsp_change_follower'), schema: 'ocsp', maxConnections: 6 });
  await migrate(pool, { schema: 'ocsp', directory: MIGRATIONS_DIRECTORY, migrations: [outboxMigration(1), ...SHARED_MIGRATIONS], logger: createLogger({ service: 'test', level: 'silent' }) });
  store = new StatusStore(pool);
});
afterAll(async () => {
  await pool?.end();
});
beforeEach(() => {
  seen.length = 0;
});

it('reads a change that took its number before one it has read but committed after it', async () => {
  await applyValid('0a01');
  await applyValid('0a02');
  const other = follower();
  await other.catchUp();
  seen.length = 0;

  // Pod A saves responses for 0a01 in a transaction that stays open; pod B saves 0a02's, which
  // takes a higher change number and commits first.
  const podA = await openWrite(['0a01']);
  await store.saveResponses([await responsesFor('0a02')]);
  expect(await other.catchUp()).toBe(1);
  expect(seen).toEqual([{ serial: '0a02', what: 'response' }]);
  await podA.end('COMMIT');
  // The number order and the commit order disagreed: a follower by change number, already past
  // 0a02's, would never read 0a01's.
  expect(await changeIdOf('0a01')).toBeLessThan(await changeIdOf('0a02'));
  expect(await other.catchUp()).toBe(1);
  expect(seen).toEqual([
    { serial: '0a02', what: 'response' },
    { serial: '0a01', what: 'response' },
  ]);
  // Nothing is read twice once it has been read.
  expect(await other.catchUp()).toBe(0);
});

it('after the first full read, reads what a transaction running during it commits afterwards', async () => {
  await applyValid('0b01');
  const podA = await openWrite(['0b01']);
  const fresh = follower();
  await fresh.catchUp(); // the whole store, without the uncommitted responses
  expect(seen.filter((s) => s.serial === '0b01')).toEqual([{ serial: '0b01', what: 'pending' }]);
  seen.length = 0;
  await podA.end('COMMIT');
  expect(await fresh.catchUp()).toBe(1);
  expect(seen).toEqual([{ serial: '0b01', what: 'response' }]);
});

it('reads a row changed twice between two passes once, as it stands, and a rolled-back change never', async () => {
  await applyValid('0c01');
  const other = follower();
  await other.catchUp();
  seen.length = 0;
  await (await openWrite(['0c01'])).end('ROLLBACK');
  expect(await other.catchUp()).toBe(0);
  await applyValid('0c01'); // a newer status: responses due again
  await store.saveResponses([await responsesFor('0c01')]);
  expect(await other.catchUp()).toBe(1);
  expect(seen).toEqual([{ serial: '0c01', what: 'response' }]);
});

it('pages through a window by transaction and serial: the transactions running at the earlier snapshot, then those started after it', async () => {
  const first = ['0d01', '0d02', '0d03', '0d04', '0d05'];
  const second = ['0e01', '0e02', '0e03'];
  for (const serial of [...first, ...second]) await applyValid(serial);
  const podA = await openWrite(first);
  const earlier = await store.snapshot(); // podA's transaction is running
  await store.saveResponses(await Promise.all(second.map(responsesFor))); // starts and completes after it
  await podA.end('COMMIT');
  const later = await store.snapshot();
  const read: string[] = [];
  for (let after: { xid: string; serialHex: string } | undefined, pages = 0; pages < 10; pages++) {
    const rows = await store.committedBetween(earlier, later, 2, after);
    read.push(...rows.map((r) => r.serialHex));
    if (rows.length < 2) break;
    after = { xid: rows[1]!.changeXid, serialHex: rows[1]!.serialHex };
  }
  expect(read).toEqual([...first, ...second]);
});
