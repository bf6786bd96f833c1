import { createHash, randomBytes } from 'node:crypto';
import { startRaFixture, type RaFixture } from './ra-fixture';
import { issueCard, person, register } from './lifecycle-helpers';

// A subscriber migrated from the legacy CA centre keeps the old system's code hash (salted SHA-1
// or MD5, packages/migration) until the citizen next uses the code: then ra verifies it as the old
// system did and replaces it with scrypt, audited. Real ra, ca-signer, PostgreSQL.
let f: RaFixture;

beforeAll(async () => {
  f = await startRaFixture({ transport: 'postgres' });
}, 120_000);
afterAll(async () => {
  await f?.stop();
});

it('verifies a legacy hash, then replaces it with scrypt on that first successful use', async () => {
  const citizen = person();
  const subscriberId = await register(f, citizen);
  const card = await issueCard(f, subscriberId);
  expect((await f.call('registrar-a', 'POST', `/v1/cards/${card.cardNumber}/activation`, {})).status).toBe(200);
  // What the importer writes for a legacy subscriber (format of docs/migration/legacy-export.md).
  const salt = randomBytes(8);
  const legacyCode = 'old1234';
  const legacy = `legacy-sha1-salt$${salt.toString('hex')}$${createHash('sha1').update(salt).update(legacyCode, 'utf8').digest('hex')}`;
  await f.db.query(`UPDATE subscribers SET subscriber_code_hash = $2 WHERE id = $1`, [subscriberId, legacy]);

  // A wrong code is still wrong, and leaves the legacy hash alone.
  const wrong = await f.call('anonymous', 'POST', '/v1/self-service/suspension', { cardNumber: card.cardNumber, subscriberCode: 'old1235' });
  expect(wrong.status).toBe(401);
  expect((await f.db.query(`SELECT subscriber_code_hash FROM subscribers WHERE id = $1`, [subscriberId])).rows[0].subscriber_code_hash).toBe(legacy);

  const suspended = await f.call('anonymous', 'POST', '/v1/self-service/suspension', { cardNumber: card.cardNumber, subscriberCode: legacyCode });
  expect(suspended.status).toBe(200);
  const stored = (await f.db.query(`SELECT subscriber_code_hash FROM subscribers WHERE id = $1`, [subscriberId])).rows[0].subscriber_code_hash as string;
  expect(stored).toMatch(/^scrypt\$/);
  const upgrade = (await f.auditEvents()).filter((e) => e.action === 'subscriber-code.upgrade');
  expect(upgrade).toHaveLength(1);
  expect(upgrade[0]!.attributes).toEqual({ from: 'legacy-sha1-salt', to: 'scrypt' });
  expect(JSON.stringify(upgrade[0], (_, v: unknown) => (typeof v === 'bigint' ? String(v) : v))).not.toContain(legacyCode);

  // The same code keeps working against the new hash.
  const resumed = await f.call('anonymous', 'POST', '/v1/self-service/resumption', { cardNumber: card.cardNumber, subscriberCode: legacyCode });
  expect(resumed.status).toBe(200);
  expect((await f.auditEvents()).filter((e) => e.action === 'subscriber-code.upgrade')).toHaveLength(1);
}, 120_000);
