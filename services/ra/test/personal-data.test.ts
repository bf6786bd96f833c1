import { fromBinary, toJsonString } from '@bufbuild/protobuf';
import { FixedClock } from '@pki/kit';
import { eventsV1 } from '@pki/proto';
import pg from 'pg';
import { startRaFixture, type RaFixture } from './ra-fixture';
import { cardNumber, issueCard, person, register, type IssuedCard, type Person } from './lifecycle-helpers';
import { confirm, identityBody, identityXml, onboard } from './agency-helpers';

// A full day at the counters and of agency systems' identity confirmations, then a search for
// every national ID, name, birth date and e-mail the day used: in every log line of ra and
// ca-signer, in every event and audit record both services wrote (raw bytes and decoded), and in
// every table of ra at rest (the agency tables included). None may appear.
const DAY = 86_400_000;
let f: RaFixture;
const clock = new FixedClock(new Date(Math.floor(Date.now() / 1000) * 1000));
const people: Person[] = [];
const issuedSerials: string[] = [];
/** All the decoded events, for the control check that the scan reads real content. */
const everything: string[] = [];

beforeAll(async () => {
  f = await startRaFixture({ transport: 'kafka', clock, shareClockWithSigner: true });
  // The CA hierarchy was made during the start: catch up with it.
  clock.advance(Date.now() - clock.now().getTime() + 1000);
}, 120_000);
afterAll(async () => {
  await f?.stop();
});

it('runs a day of operations', async () => {
  const cards: Array<{ citizen: Person; card: IssuedCard }> = [];
  for (let i = 0; i < 12; i++) {
    const citizen = person({ email: `citizen${i}.${process.pid}@example.tw` });
    people.push(citizen);
    const subscriberId = await register(f, citizen, i % 2 === 0 ? 'registrar-a' : 'registrar-b');
    const found = await f.call('registrar-a', 'POST', '/v1/subscriber-searches', { nationalId: citizen.nationalId });
    expect(found.body.subscriberId).toBe(subscriberId);
    expect((await f.call('registrar-b', 'GET', `/v1/subscribers/${subscriberId}`)).status).toBe(200);
    const card = await issueCard(f, subscriberId);
    cards.push({ citizen, card });
    issuedSerials.push(card.certificates[0]!.serialHex);
    await f.call('registrar-a', 'POST', `/v1/cards/${card.cardNumber}/activation`, {});
  }
  // Counter mistakes and bad requests carrying personal data.
  for (const { citizen } of cards.slice(0, 3)) {
    await f.call('registrar-a', 'POST', '/v1/subscribers', { ...citizen }); // already registered
    await f.call('registrar-a', 'POST', '/v1/subscribers', { ...citizen, nationalId: citizen.nationalId.slice(0, 9) + String((Number(citizen.nationalId[9]) + 1) % 10) });
    await f.call('registrar-a', 'POST', '/v1/subscribers', { ...citizen, birthDate: '31/02/1980', nationalId: 'X' });
    await f.call('registrar-a', 'POST', '/v1/subscriber-searches', { nationalId: citizen.nationalId.toLowerCase() });
  }
  // Citizens at home: suspensions, resumptions, wrong codes, a lock.
  for (const { citizen, card } of cards.slice(0, 6)) {
    await f.call('anonymous', 'POST', '/v1/self-service/suspension', { cardNumber: card.cardNumber, subscriberCode: citizen.subscriberCode });
    await f.call('anonymous', 'POST', '/v1/self-service/resumption', { cardNumber: card.cardNumber, subscriberCode: `${citizen.subscriberCode}x` });
    await f.call('anonymous', 'POST', '/v1/self-service/resumption', { cardNumber: card.cardNumber, subscriberCode: citizen.subscriberCode });
  }
  for (let i = 0; i < 5; i++) await f.call('anonymous', 'POST', '/v1/self-service/suspension', { cardNumber: cards[6]!.card.cardNumber, subscriberCode: `${cards[6]!.citizen.name}${i}` });
  // Revocations, with and without a second officer.
  const request = await f.call('registrar-a', 'POST', `/v1/cards/${cards[7]!.card.cardNumber}/revocation`, { reason: 'keyCompromise', comment: 'stolen purse' });
  await f.call('registrar-b', 'POST', `/v1/approvals/${request.body.approvalRequestId}/decision`, { decision: 'approve' });
  const bulk = await f.call('supervisor-a', 'POST', '/v1/bulk-revocations', { cardNumbers: [cards[8]!.card.cardNumber], reason: 'card-cut' });
  await f.call('card-centre', 'POST', `/v1/approvals/${bulk.body.approvalRequestId}/decision`, { decision: 'approve' });
  // A replacement card.
  await issueCard(f, cards[9]!.card.subscriberId, { kind: 'REPLACEMENT', replacesCard: cards[9]!.card.cardNumber });
  // The household-registration system: a name change, a death, an unknown person.
  await f.call('household', 'POST', '/v1/household-events', { eventId: `N-${process.pid}`, kind: 'NAME_CHANGE', nationalId: cards[10]!.citizen.nationalId, occurredAt: new Date().toISOString() });
  await f.call('household', 'POST', '/v1/household-events', { eventId: `D-${process.pid}`, kind: 'DEATH', nationalId: cards[11]!.citizen.nationalId, occurredAt: new Date().toISOString() });
  const stranger = person();
  people.push(stranger);
  await f.call('household', 'POST', '/v1/household-events', { eventId: `U-${process.pid}`, kind: 'DEATH', nationalId: stranger.nationalId, occurredAt: new Date().toISOString() });
  // The public repository.
  for (const { card } of cards) await f.call('anonymous', 'GET', `/v1/public/certificates/${card.certificates[0]!.serialHex}`);
  // Agency systems ask about the day's people (JSON and XML, with birth dates), and send bad batches.
  const { client: agency } = await onboard(f, 'PD-SCAN-01', 'GOVERNMENT');
  const records = cards.map(({ citizen, card }, i) => ({ seq: i + 1, serialNumber: card.subjectSerialNumber, nationalId: citizen.nationalId, birthDate: citizen.birthDate }));
  expect((await confirm(f, agency, identityBody(clock, records))).status).toBe(200);
  expect((await confirm(f, agency, identityXml(clock, records))).status).toBe(200);
  const wrongCheck = (id: string) => id.slice(0, 9) + String((Number(id[9]) + 1) % 10);
  expect((await confirm(f, agency, identityBody(clock, [{ ...records[0]!, nationalId: wrongCheck(records[0]!.nationalId) }]))).status).toBe(400);
  expect((await confirm(f, agency, identityBody(clock, [{ ...records[1]!, birthDate: `${records[1]!.birthDate}x` }]))).status).toBe(400);
  expect((await confirm(f, agency, identityXml(clock, records).replace('</records>', '</record>'))).status).toBe(400);
  expect((await confirm(f, agency, identityXml(clock, records).replace(records[2]!.nationalId, `${records[2]!.nationalId}<x>`))).status).toBe(400);
  const tampered = identityBody(clock, records);
  expect((await confirm(f, agency, tampered, { send: tampered.replace('"seq":1', '"seq":99') })).status).toBe(401);
  await agency.agent.close();
  // Late in the day: an extension (the window opens 60 days before expiry).
  clock.advance(new Date(cards[0]!.card.certificates[0]!.notAfter).getTime() - clock.now().getTime() - 10 * DAY);
  expect((await f.call('registrar-a', 'POST', `/v1/cards/${cards[0]!.card.cardNumber}/extension`)).status).toBe(201);
  // An application with a key that is refused, and one for a card number taken.
  await f.call('registrar-a', 'POST', '/v1/applications', { subscriberId: cards[1]!.card.subscriberId, cardNumber: cardNumber(), kind: 'NEW', signingCsr: f.csr('bad', 1024), encryptionCsr: f.csr('bad2') });
}, 300_000);

it('leaves no national ID, name, birth date or e-mail in any log line, event or audit record, nor in clear in ra\'s tables', async () => {
  const secrets = people.flatMap((p) => [p.nationalId, p.nationalId.toLowerCase(), p.name, jsonEscaped(p.name), p.birthDate, p.birthDate.replace(/-/g, ''), p.email!, p.subscriberCode].filter(Boolean));
  expect(secrets.length).toBeGreaterThan(50);

  const logs = [...f.logs, ...f.signerLogs];
  expect(logs.length).toBeGreaterThan(100); // a day of requests was logged
  const leaks: string[] = [];
  const scan = (where: string, text: string) => {
    for (const s of secrets) if (text.includes(s)) leaks.push(`${where}: ${s}`);
  };
  logs.forEach((line, i) => scan(`log line ${i}`, line));

  // Every event both services wrote, as stored bytes and as decoded JSON.
  for (const [schema, service] of [['ra', 'ra'], ['ca_signer', 'ca-signer']] as const) {
    const db = new pg.Pool({ connectionString: f.signer.databaseUrl, options: `-c search_path=${schema}`, max: 1 });
    try {
      const { rows } = await db.query(`SELECT producer, seq, topic, key, payload, headers FROM outbox ORDER BY producer, seq`);
      expect(rows.length).toBeGreaterThan(10);
      for (const r of rows) {
        const where = `${service} event ${r.producer}#${r.seq}`;
        scan(where, (r.payload as Buffer).toString('utf8') + r.key + JSON.stringify(r.headers));
        const decoded =
          r.topic === 'pki.audit.v1'
            ? toJsonString(eventsV1.AuditEventSchema, fromBinary(eventsV1.AuditEventSchema, r.payload))
            : toJsonString(eventsV1.CertificateStatusChangedSchema, fromBinary(eventsV1.CertificateStatusChangedSchema, r.payload));
        scan(where, decoded);
        everything.push(decoded);
      }
    } finally {
      await db.end();
    }
  }

  // ra's tables at rest: every text and bytea column of every row.
  const { rows: tables } = await f.db.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'ra' AND table_type = 'BASE TABLE'`);
  for (const { table_name: table } of tables) {
    const { rows } = await f.db.query(`SELECT * FROM ra.${table}`);
    for (const row of rows) {
      const text = Object.values(row)
        .map((v) => (Buffer.isBuffer(v) ? v.toString('utf8') + v.toString('latin1') : typeof v === 'object' ? JSON.stringify(v) : String(v)))
        .join('|');
      scan(`ra.${table}`, text);
    }
  }
  expect(leaks).toEqual([]);
  // Control: the same scan does find what is supposed to be there (serials, card numbers), so an
  // empty result means absence, not a scan that reads nothing.
  for (const serial of issuedSerials) {
    expect(logs.some((l) => l.includes(serial))).toBe(true);
    expect(everything.some((e) => e.includes(serial))).toBe(true);
  }
});

function jsonEscaped(value: string): string {
  return JSON.stringify(value).slice(1, -1).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
