import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { create, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { FixedClock, createLogger } from '@pki/kit';
import { createEventTransport, databaseUrl, type EventTransport } from '@pki/outbox';
import { eventsV1, Topics } from '@pki/proto';
import { startRaFixture, withCheckDigit, type RaFixture } from './ra-fixture';
import { issueCard, person, register, type IssuedCard, type Person } from './lifecycle-helpers';
import { codesOf, confirm, identityBody, identityXml, onboard, agencyCsr, clientFrom, type AgencyClient } from './agency-helpers';
import { taipeiMonth } from '../src/domain/agency-systems';

// Agency application systems end to end: systems onboarded by an officer get real client
// certificates from ca-signer (SoftHSM), call the identity confirmation over mTLS with signed
// batches, and are metered; OCSP usage windows arrive through ra's event bus. The bus is the
// PostgreSQL one of ra's own database, not the shared Kafka broker: on the broker, every ra that
// other test files start joins the same usage consumer group and the OCSP tests publish real
// windows on the same topic, so this file's exact totals would depend on what ran beside it.
// (The Kafka consumer adapter is tested in packages/outbox; the responders' windows on Kafka in
// services/ocsp/test/usage-metering.test.ts.)
const DAY = 86_400_000;
const clock = new FixedClock(new Date(Math.floor(Date.now() / 1000) * 1000));
let f: RaFixture;
let gov: AgencyClient;
let pub: AgencyClient;
let transport: EventTransport;

interface Holder {
  person: Person;
  card?: IssuedCard;
}
const holders: Record<'active' | 'suspended' | 'notActivated' | 'revoked' | 'other' | 'noCard', Holder> = {} as never;

beforeAll(async () => {
  f = await startRaFixture({ transport: 'postgres', clock, shareClockWithSigner: true, dualControl: [] });
  clock.advance(Date.now() - clock.now().getTime() + 1000);
  gov = (await onboard(f, 'MOF-TAX-01', 'GOVERNMENT')).client;
  pub = (await onboard(f, 'BANK-EKYC-01', 'PUBLIC', { algorithm: 'ec' })).client;
  for (const name of ['active', 'suspended', 'notActivated', 'revoked', 'other', 'noCard'] as const) {
    const p = person();
    const subscriberId = await register(f, p);
    const holder: Holder = { person: p };
    if (name !== 'noCard') holder.card = await issueCard(f, subscriberId);
    holders[name] = holder;
  }
  for (const name of ['active', 'suspended', 'revoked', 'other'] as const) {
    expect((await f.call('registrar-a', 'POST', `/v1/cards/${holders[name].card!.cardNumber}/activation`, {})).status).toBe(200);
  }
  expect((await f.call('registrar-a', 'POST', `/v1/cards/${holders.suspended.card!.cardNumber}/suspension`, {})).status).toBe(200);
  expect((await f.call('registrar-a', 'POST', `/v1/cards/${holders.revoked.card!.cardNumber}/revocation`, { reason: 'keyCompromise' })).status).toBe(200);
  transport = await createEventTransport({ type: 'postgres', url: databaseUrl(f.config.database) }, { logger: createLogger({ service: 'test', level: 'silent' }) });
}, 240_000);

afterAll(async () => {
  await transport?.close();
  for (const c of [gov, pub]) await c?.agent.close();
  await f?.stop();
});

interface Bar {
  year: number;
  series: string;
  value: number;
  height: number;
}

const unknownId = () => withCheckDigit(`Q2${String(Math.floor(Math.random() * 9_000_000) + 1_000_000)}`);

function sixCases() {
  const h = holders;
  return [
    { seq: 1, serialNumber: h.active.card!.subjectSerialNumber, nationalId: h.active.person.nationalId },
    { seq: 2, serialNumber: h.other.card!.subjectSerialNumber, nationalId: h.active.person.nationalId },
    { seq: 3, serialNumber: h.active.card!.subjectSerialNumber, nationalId: h.noCard.person.nationalId },
    { seq: 4, serialNumber: h.notActivated.card!.subjectSerialNumber, nationalId: h.notActivated.person.nationalId },
    { seq: 5, serialNumber: h.revoked.card!.subjectSerialNumber, nationalId: h.revoked.person.nationalId },
    { seq: 6, serialNumber: h.suspended.card!.subjectSerialNumber, nationalId: h.suspended.person.nationalId },
    { seq: 7, serialNumber: h.active.card!.subjectSerialNumber, nationalId: h.active.person.nationalId, birthDate: h.active.person.birthDate },
    { seq: 8, serialNumber: h.active.card!.subjectSerialNumber, nationalId: h.active.person.nationalId, birthDate: '1901-01-01' },
    { seq: 9, serialNumber: '9999999999999999', nationalId: unknownId() },
  ];
}
// 0 match and activated; 1 no such pair; 2 no certificate for the ID; 3 not activated; 5 revoked;
// a suspended card is activated (0); a wrong birth date is no such pair (1); an unknown ID is 2.
const EXPECTED = { 1: 0, 2: 1, 3: 2, 4: 3, 5: 5, 6: 0, 7: 0, 8: 1, 9: 2 };
const identityCalls = { gov: 0, pub: 0 };

describe('onboarding', () => {
  it('issues the system a certificate under the agencyClient profile, recorded with its status event and audited', async () => {
    const system = await f.call('supervisor-a', 'GET', `/v1/agency-systems/${gov.id}`);
    expect(system.status).toBe(200);
    expect(system.body).toMatchObject({ id: gov.id, sector: 'GOVERNMENT', status: 'ACTIVE', rateLimitPerMinute: 600 });
    const { rows } = await f.db.query(`SELECT key_slot, system_id, profile, status FROM certificates WHERE serial_hex = $1`, [gov.serialHex]);
    expect(rows).toEqual([{ key_slot: 'AGENCY', system_id: gov.id, profile: 'agency-client', status: 'VALID' }]);
    expect((await f.statusEvents()).some((e) => e.serialHex === gov.serialHex && e.status === eventsV1.CertificateStatus.VALID)).toBe(true);
    const audit = (await f.auditEvents()).find((e) => e.action === 'agency-system.onboard' && e.objects.some((o) => o.id === gov.id));
    expect(audit?.actor?.id).toBe('supervisor-a');
    // A registrar may not onboard; the same id twice is refused; a retry with the key returns the first result.
    const { csr } = agencyCsr(f, 'x');
    const body = { id: 'X-1', agency: 'A', name: 'N', sector: 'PUBLIC', contact: { name: 'n', email: 'a@b.tw' }, csr };
    expect((await f.call('registrar-a', 'POST', '/v1/agency-systems', body)).status).toBe(403);
    expect((await f.call('supervisor-a', 'POST', '/v1/agency-systems', { ...body, id: gov.id })).status).toBe(409);
    const first = await f.call('supervisor-a', 'POST', '/v1/agency-systems', body, 'onboard-x-1-key');
    const again = await f.call('supervisor-a', 'POST', '/v1/agency-systems', body, 'onboard-x-1-key');
    expect([first.status, again.status]).toEqual([201, 201]);
    expect(again.body).toEqual(first.body);
    expect((await f.call('supervisor-a', 'POST', '/v1/agency-systems', { ...body, name: 'other' }, 'onboard-x-1-key')).status).toBe(409);
  }, 60_000);
});

describe('identity confirmation', () => {
  it('answers each of the six cases with its code (JSON, RSA-signed)', async () => {
    const res = await confirm(f, gov, identityBody(clock, sixCases()));
    expect(res.status).toBe(200);
    expect(codesOf(res)).toEqual(EXPECTED);
    identityCalls.gov++;
  });

  it('answers the same in the XML form (EC-signed), and nothing beyond the codes', async () => {
    const res = await confirm(f, pub, identityXml(clock, sixCases()));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/application\/xml/);
    const codes = Object.fromEntries([...res.text.matchAll(/<result><seq>(\d+)<\/seq><code>(\d)<\/code><\/result>/g)].map((m) => [Number(m[1]), Number(m[2])]));
    expect(codes).toEqual(EXPECTED);
    identityCalls.pub++;
    const json = await confirm(f, pub, identityBody(clock, sixCases()));
    expect(Object.keys(json.body).sort()).toEqual(['nonce', 'responseTime', 'results']);
    for (const r of json.body.results as Array<Record<string, unknown>>) expect(Object.keys(r).sort()).toEqual(['code', 'seq']);
    identityCalls.pub++;
  });

  it('audits each query with counts only, and meters it', async () => {
    const audit = (await f.auditEvents()).filter((e) => e.action === 'identity.confirm');
    expect(audit).toHaveLength(identityCalls.gov + identityCalls.pub);
    expect(audit[0]!.attributes).toMatchObject({ records: '9', code0: '3', code1: '2', code2: '2', code3: '1', code4: '0', code5: '1' });
    expect(audit[0]!.actor).toMatchObject({ type: eventsV1.AuditActorType.AGENCY_SYSTEM, id: gov.id });
    const { rows } = await f.db.query(`SELECT system_id, uses FROM usage_counts WHERE channel = 'identity-confirmation' ORDER BY system_id`);
    expect(rows.map((r) => [r.system_id, Number(r.uses)])).toEqual([[pub.id, identityCalls.pub], [gov.id, identityCalls.gov]].sort((a, b) => String(a[0]).localeCompare(String(b[0]))));
  });

  describe('refuses a bad request with its own error code, and changes nothing', () => {
    const one = () => [sixCases()[0]!];
    const expectError = (res: { status: number; body: Record<string, unknown> }, status: number, code: string) => {
      expect({ status: res.status, code: (res.body.details as Record<string, string> | undefined)?.code }).toEqual({ status, code });
      expect(String(res.body.message)).toMatch(/^identity confirmation: /);
    };
    let before: string;
    beforeAll(async () => {
      before = await usageAndNonces();
    });
    afterAll(async () => {
      expect(await usageAndNonces()).toBe(before);
    });

    it('an unknown system (a client certificate no system registered)', async () => {
      const { Agent } = await import('undici');
      const { readFileSync } = await import('node:fs');
      const stranger = new Agent({ connect: { ca: readFileSync(f.signer.identities.ra.caFile), cert: readFileSync(f.identities.unregistered!.certFile), key: readFileSync(f.identities.unregistered!.keyFile), servername: 'localhost' } });
      expectError(await confirm(f, stranger, identityBody(clock, one()), { signer: gov }), 401, 'UNKNOWN_CLIENT');
      const officer = new Agent({ connect: { ca: readFileSync(f.signer.identities.ra.caFile), cert: readFileSync(f.identities['registrar-a']!.certFile), key: readFileSync(f.identities['registrar-a']!.keyFile), servername: 'localhost' } });
      expectError(await confirm(f, officer, identityBody(clock, one()), { signer: gov }), 401, 'UNKNOWN_CLIENT');
      const anonymous = new Agent({ connect: { ca: readFileSync(f.signer.identities.ra.caFile), servername: 'localhost' } });
      expectError(await confirm(f, anonymous, identityBody(clock, one()), { signer: gov }), 401, 'UNKNOWN_CLIENT');
      await Promise.all([stranger.close(), officer.close(), anonymous.close()]);
    });

    it('a tampered body, no signature, a signature by another system', async () => {
      const body = identityBody(clock, one());
      expectError(await confirm(f, gov, body, { send: body.replace('"seq":1', '"seq":2') }), 401, 'BAD_SIGNATURE');
      expectError(await confirm(f, gov, body, { unsigned: true }), 401, 'BAD_SIGNATURE');
      expectError(await confirm(f, gov, body, { signer: pub }), 401, 'BAD_SIGNATURE');
    });

    it('more than 1000 records', async () => {
      const records = Array.from({ length: 1001 }, (_, i) => ({ ...one()[0]!, seq: i + 1 }));
      expectError(await confirm(f, gov, identityBody(clock, records)), 400, 'BATCH_TOO_LARGE');
    });

    it('a replayed nonce', async () => {
      const body = identityBody(clock, one());
      expect((await confirm(f, gov, body)).status).toBe(200);
      identityCalls.gov++;
      before = await usageAndNonces();
      expectError(await confirm(f, gov, body), 409, 'REPLAYED_NONCE');
    });

    it('a stale or future request time', async () => {
      expectError(await confirm(f, gov, identityBody(clock, one(), { requestTime: new Date(clock.now().getTime() - 10 * 60_000).toISOString() })), 400, 'STALE_REQUEST');
      expectError(await confirm(f, gov, identityBody(clock, one(), { requestTime: new Date(clock.now().getTime() + 10 * 60_000).toISOString() })), 400, 'STALE_REQUEST');
    });

    it('a malformed national ID, serialNumber or field', async () => {
      const bad = (change: Record<string, unknown>) => identityBody(clock, [{ ...one()[0]!, ...change } as never]);
      const wrongCheck = holders.active.person.nationalId.slice(0, 9) + String((Number(holders.active.person.nationalId[9]) + 1) % 10);
      const res = await confirm(f, gov, bad({ nationalId: wrongCheck }));
      expectError(res, 400, 'MALFORMED_FIELD');
      expect(res.text).not.toContain(wrongCheck);
      expect(String(res.body.message)).toContain('record seq 1: nationalId');
      expectError(await confirm(f, gov, bad({ serialNumber: '12345' })), 400, 'MALFORMED_FIELD');
      expectError(await confirm(f, gov, bad({ extra: 'x' })), 400, 'MALFORMED_FIELD');
      expectError(await confirm(f, gov, identityBody(clock, one(), { nonce: 'short' })), 400, 'MALFORMED_FIELD');
      expectError(await confirm(f, gov, '{"nonce": '), 400, 'MALFORMED_FIELD');
    });

    it('malformed XML, and XML with a document type (entities)', async () => {
      const xml = identityXml(clock, one());
      const broken = await confirm(f, gov, xml.replace('</records>', '</record>'));
      expect(broken.status).toBe(400);
      expect(broken.text).toContain('<code>MALFORMED_XML</code>');
      const dtd = await confirm(f, gov, xml.replace('<IdentityConfirmationRequest>', '<!DOCTYPE x [<!ENTITY a "aaaa">]><IdentityConfirmationRequest>'));
      expect(dtd.status).toBe(400);
      expect(dtd.text).toContain('<code>MALFORMED_XML</code>');
      const wrongRoot = await confirm(f, gov, xml.replace(/IdentityConfirmationRequest/g, 'Other'));
      expect(wrongRoot.text).toContain('<code>MALFORMED_XML</code>');
    });

    it('an expired client certificate', async () => {
      const { client } = await onboard(f, 'SHORT-LIVED', 'PUBLIC', { notAfter: new Date(clock.now().getTime() + 3_600_000) });
      expect((await confirm(f, client, identityBody(clock, one()))).status).toBe(200);
      before = await usageAndNonces();
      clock.advance(2 * 3_600_000);
      expectError(await confirm(f, client, identityBody(clock, one())), 401, 'CLIENT_CERTIFICATE_NOT_VALID');
      await client.agent.close();
    });

    it('a revoked client certificate (renewed: the previous one is superseded), and a suspended system', async () => {
      const { client } = await onboard(f, 'RENEWED', 'GOVERNMENT');
      const { csr, keyFile } = agencyCsr(f, 'RENEWED-2');
      const renewed = await f.call('supervisor-a', 'POST', '/v1/agency-systems/RENEWED/certificate-renewal', { csr });
      expect(renewed.status).toBe(201);
      const credentials = renewed.body.credentials as Array<{ serialHex: string; issuerKeyId: string; status: string; certificate: string }>;
      expect(Object.fromEntries(credentials.map((c) => [c.serialHex, c.status]))[client.serialHex]).toBe('REVOKED');
      const fresh = credentials.find((c) => c.serialHex !== client.serialHex)!;
      expect(fresh.status).toBe('VALID');
      expect((await f.statusEvents()).find((e) => e.serialHex === client.serialHex && e.status === eventsV1.CertificateStatus.REVOKED)?.reason).toBe(eventsV1.RevocationReason.SUPERSEDED);
      expectError(await confirm(f, client, identityBody(clock, one())), 401, 'CLIENT_CERTIFICATE_NOT_VALID');
      const next = clientFrom(f, 'RENEWED', keyFile, fresh.certificate, fresh);
      // The new key may not sign with the old certificate named as signer.
      expectError(await confirm(f, next, identityBody(clock, one()), { signer: client }), 401, 'CLIENT_CERTIFICATE_NOT_VALID');
      expect((await f.call('supervisor-a', 'POST', '/v1/agency-systems/RENEWED/suspension', { comment: 'contract lapsed' })).status).toBe(200);
      expectError(await confirm(f, next, identityBody(clock, one())), 403, 'SYSTEM_NOT_ACTIVE');
      expect((await f.call('supervisor-a', 'POST', '/v1/agency-systems/RENEWED/resumption', {})).status).toBe(200);
      expect((await confirm(f, next, identityBody(clock, one()))).status).toBe(200);
      before = await usageAndNonces();
      await Promise.all([client.agent.close(), next.agent.close()]);
    }, 60_000);

    it('audits the refusals an auditor looks for (signature, signing certificate, replay, time), with no record in them; not malformed batches', async () => {
      const refusals = (await f.auditEvents()).filter((e) => e.action === 'identity.confirm' && e.outcome === eventsV1.AuditOutcome.FAILURE);
      const byCode: Record<string, number> = {};
      for (const e of refusals) byCode[e.attributes.errorCode!] = (byCode[e.attributes.errorCode!] ?? 0) + 1;
      // The tests above: three bad signatures, a replayed nonce, a stale and a future request time, a
      // batch signed with a revoked certificate. Unknown and expired TLS clients are refused before
      // any system is known (logged); MALFORMED_* and BATCH_TOO_LARGE are not audited.
      expect(byCode).toEqual({ BAD_SIGNATURE: 3, REPLAYED_NONCE: 1, STALE_REQUEST: 2, CLIENT_CERTIFICATE_NOT_VALID: 1 });
      const replay = refusals.find((e) => e.attributes.errorCode === 'REPLAYED_NONCE')!;
      expect(replay.actor).toMatchObject({ type: eventsV1.AuditActorType.AGENCY_SYSTEM, id: gov.id });
      expect(replay.objects).toEqual([expect.objectContaining({ type: 'application-system', id: gov.id })]);
      expect(replay.reason).toMatch(/^identity confirmation: nonce was used before/);
      expect(Object.keys(replay.attributes).sort()).toEqual(['clientCertificate', 'errorCode']);
      // Which person was asked about stays with the agency.
      const text = JSON.stringify(refusals, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v));
      for (const holder of Object.values(holders)) expect(text).not.toContain(holder.person.nationalId);
    });
  });
});

/** Usage counts, nonces and answered queries' audit events: what a refused request must not change. */
async function usageAndNonces(): Promise<string> {
  const { rows } = await f.db.query(`SELECT (SELECT coalesce(sum(uses), 0) FROM usage_counts) AS uses, (SELECT count(*) FROM identity_confirmation_nonces) AS nonces`);
  const answered = (await f.auditEvents()).filter((e) => e.action === 'identity.confirm' && e.outcome === eventsV1.AuditOutcome.SUCCESS).length;
  return JSON.stringify({ ...rows[0], answered });
}

describe('usage metering and statistics', () => {
  let seq = 0;
  const publishWindow = async (instance: string, windowSequence: number, windowStart: Date, entries: Array<[eventsV1.OcspCallerIdentification, string, number]>, anonymous: number, overflow = 0) => {
    const payload = toBinary(eventsV1.OcspUsageCountedSchema, create(eventsV1.OcspUsageCountedSchema, {
      responderInstance: instance, windowSequence: BigInt(windowSequence), windowStart: timestampFromDate(windowStart), windowEnd: timestampFromDate(new Date(windowStart.getTime() + 60_000)),
      entries: entries.map(([identification, callerKey, requests]) => ({ identification, callerKey, requests: BigInt(requests) })), anonymousRequests: BigInt(anonymous), overflowRequests: BigInt(overflow),
    }));
    await transport.publisher.publish([{ producer: `ocsp.usage.${process.pid}`, seq: ++seq, topic: Topics.usage, key: instance, payload, headers: {}, createdAt: new Date() }]);
  };
  const waitForWindows = async (n: number) => {
    const until = Date.now() + 60_000;
    for (;;) {
      const { rows } = await f.db.query(`SELECT count(*)::int AS n FROM usage_windows`);
      if (rows[0].n >= n) return;
      if (Date.now() > until) throw new Error(`only ${rows[0].n} of ${n} usage windows arrived within 60 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const year = () => Number(taipeiMonth(clock.now()).slice(0, 4));
  const month = () => Number(taipeiMonth(clock.now()).slice(5, 7));
  const { MTLS, SIGNED_REQUEST, SYSTEM_URL } = eventsV1.OcspCallerIdentification;

  it('credits OCSP windows to systems, once each, and keeps the rest unattributed', async () => {
    const lastYear = new Date(Date.UTC(year() - 1, 5, 15, 12));
    await publishWindow('ocsp-a', 1, clock.now(), [[MTLS, `${gov.issuerKeyId}:${gov.serialHex}`, 70], [SIGNED_REQUEST, `${pub.issuerKeyId.toUpperCase()}:${pub.serialHex}`, 30], [SYSTEM_URL, pub.id, 5], [MTLS, 'ab:cd', 4], [SYSTEM_URL, 'NOBODY', 3]], 100, 6);
    await publishWindow('ocsp-a', 1, clock.now(), [[MTLS, `${gov.issuerKeyId}:${gov.serialHex}`, 70]], 100); // redelivered window
    await publishWindow('ocsp-b', 1, lastYear, [[MTLS, `${gov.issuerKeyId}:${gov.serialHex}`, 1000], [SYSTEM_URL, pub.id, 200]], 7);
    await waitForWindows(2);
    // The redelivery came between them on the same producer: both real windows arrived, so it was seen.
    const { rows } = await f.db.query(`SELECT system_id, extract(year FROM month)::int AS y, uses::int FROM usage_counts WHERE channel = 'ocsp' ORDER BY y, system_id`);
    expect(rows).toEqual([
      { system_id: pub.id, y: year() - 1, uses: 200 },
      { system_id: gov.id, y: year() - 1, uses: 1000 },
      { system_id: pub.id, y: year(), uses: 35 },
      { system_id: gov.id, y: year(), uses: 70 },
    ].sort((a, b) => a.y - b.y || a.system_id.localeCompare(b.system_id)));
    const unattributed = await f.db.query(`SELECT identification, requests::int FROM usage_unattributed WHERE extract(year FROM month) = $1 ORDER BY identification`, [year()]);
    expect(unattributed.rows).toEqual([{ identification: 'ANONYMOUS', requests: 100 }, { identification: 'MTLS', requests: 4 }, { identification: 'OVERFLOW', requests: 6 }, { identification: 'SYSTEM_URL', requests: 3 }]);
  }, 90_000);

  it('reproduces the exact totals of the seeded usage, per system and month, in the yearly table, and as CSV', async () => {
    // The validation API's metering (the lead's route calls this).
    for (let i = 0; i < 4; i++) await f.ra.ra.agencies.meter(gov.id, 'certificate-validation');
    const usage = await f.call('auditor', 'GET', `/v1/statistics/usage?year=${year()}`);
    expect(usage.status).toBe(200);
    const systems = Object.fromEntries((usage.body.systems as Array<Record<string, unknown>>).map((s) => [s.systemId, s]));
    const govTotal = identityCalls.gov + 70 + 4;
    const pubTotal = identityCalls.pub + 35;
    expect(systems[gov.id]).toMatchObject({ sector: 'GOVERNMENT', total: govTotal, byChannel: { 'identity-confirmation': identityCalls.gov, 'certificate-validation': 4, ocsp: 70 } });
    expect((systems[gov.id]!.months as number[])[month() - 1]).toBe(govTotal);
    expect(systems[pub.id]).toMatchObject({ sector: 'PUBLIC', total: pubTotal, byChannel: { 'identity-confirmation': identityCalls.pub, 'certificate-validation': 0, ocsp: 35 } });
    // SHORT-LIVED (public) and RENEWED (government) confirmed one batch each.
    expect(systems['SHORT-LIVED']).toMatchObject({ total: 1 });
    expect(systems.RENEWED).toMatchObject({ total: 1 });
    expect(usage.body.totals).toEqual({ systems: { government: 2, public: 2 }, uses: { government: govTotal + 1, public: pubTotal + 1 } });
    expect((usage.body.months as Array<Record<string, number>>)[month() - 1]).toEqual({ month: month(), government: govTotal + 1, public: pubTotal + 1 });
    expect((await f.call('registrar-a', 'GET', `/v1/statistics/usage?year=${year()}`)).status).toBe(403);
    expect((await f.call('anonymous', 'GET', `/v1/statistics/usage?year=${year()}`)).status).toBe(401);

    const table = await f.call('anonymous', 'GET', '/v1/public/open-data/usage-by-year.json');
    expect(table.body.rows).toEqual([
      { year: year() - 1, systemsGovernment: 1, systemsPublic: 1, usesGovernment: 1000, usesPublic: 200, unattributedOcsp: 7 },
      { year: year(), systemsGovernment: 2, systemsPublic: 2, usesGovernment: govTotal + 1, usesPublic: pubTotal + 1, unattributedOcsp: 113 },
    ]);
    const csv = await f.call('anonymous', 'GET', '/v1/public/open-data/usage-by-year.csv');
    expect(csv.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(csv.text).toBe(`year,systems_government,systems_public,uses_government,uses_public,unattributed_ocsp\r\n${year() - 1},1,1,1000,200,7\r\n${year()},2,2,${govTotal + 1},${pubTotal + 1},113\r\n`);
    const perSystem = await f.call('supervisor-a', 'GET', `/v1/statistics/usage.csv?year=${year()}`);
    expect(perSystem.text.split('\r\n').filter((l) => l.startsWith(`${year()},${month()},${gov.id},`))).toHaveLength(1);
  });

  it('publishes issuance by gender as open data (JSON and CSV), with no personal data', async () => {
    const { rows } = await f.db.query(`SELECT s.gender, count(*)::int AS n FROM cards c JOIN subscribers s ON s.id = c.subscriber_id GROUP BY 1`);
    const expected = { male: rows.find((r) => r.gender === 'MALE')?.n ?? 0, female: rows.find((r) => r.gender === 'FEMALE')?.n ?? 0 };
    // person() alternates the gender digit: both appear among the five cards.
    expect(expected.male + expected.female).toBe(5);
    expect(Math.min(expected.male, expected.female)).toBeGreaterThan(0);
    const json = await f.call('anonymous', 'GET', '/v1/public/open-data/issuance-by-gender.json');
    expect(json.body.rows).toEqual([{ year: year(), ...expected, total: 5 }]);
    const csv = await f.call('anonymous', 'GET', '/v1/public/open-data/issuance-by-gender.csv');
    expect(csv.text).toBe(`year,male,female,total\r\n${year()},${expected.male},${expected.female},5\r\n`);
  });

  it('draws the chart page in a real headless browser with the numbers of the API', async () => {
    const probe = join(__dirname, 'chart-probe.mjs');
    const { stdout } = await promisify(execFile)(process.execPath, [probe, `${f.httpUrl}/v1/public/statistics/charts.html`, process.env.PKI_CHROMIUM ?? '/usr/bin/chromium'], { timeout: 110_000 });
    const shown = JSON.parse(stdout) as { ready: string; errors: string[]; usageTable: Array<Record<string, number>>; genderTable: Array<Record<string, number>>; usesBars: Bar[]; systemsBars: Bar[]; genderBars: Bar[] };
    expect(shown.errors).toEqual([]);
    expect(shown.ready).toBe('true');
    const api = (await f.call('anonymous', 'GET', '/v1/public/open-data/usage-by-year.json')).body.rows as Array<Record<string, number>>;
    expect(api.length).toBe(2);
    expect(shown.usageTable).toEqual(api.map(({ unattributedOcsp: _, ...r }) => r));
    const series = (bars: Bar[], name: string) => bars.filter((b) => b.series === name).map((b) => [b.year, b.value]);
    expect(series(shown.usesBars, 'government')).toEqual(api.map((r) => [r.year, r.usesGovernment]));
    expect(series(shown.usesBars, 'public')).toEqual(api.map((r) => [r.year, r.usesPublic]));
    expect(series(shown.systemsBars, 'government')).toEqual(api.map((r) => [r.year, r.systemsGovernment]));
    // The drawing follows the numbers: the tallest bar is the largest value, heights in proportion.
    const tallest = shown.usesBars.reduce((a, b) => (b.height > a.height ? b : a));
    expect(tallest.value).toBe(Math.max(...shown.usesBars.map((b) => b.value)));
    const gender = (await f.call('anonymous', 'GET', '/v1/public/open-data/issuance-by-gender.json')).body.rows as Array<Record<string, number>>;
    expect(shown.genderTable).toEqual(gender);
    expect(series(shown.genderBars, 'male')).toEqual(gender.map((r) => [r.year, r.male]));
    expect(series(shown.genderBars, 'female')).toEqual(gender.map((r) => [r.year, r.female]));
  }, 120_000);

  it("holds each system to its own rate limit (429 with a retry hint), other systems unaffected", async () => {
    const { client } = await onboard(f, 'RATE-LIMITED', 'PUBLIC', { rateLimitPerMinute: 2 });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await confirm(f, client, identityBody(clock, [sixCases()[0]!]))).status);
    // The window may turn between calls on a loaded machine: at least one 429 among the three, never a 2xx after it.
    const limited = await confirm(f, client, identityBody(clock, [sixCases()[0]!]));
    expect(statuses.filter((s) => s === 200).length).toBeLessThanOrEqual(2);
    expect([...statuses, limited.status]).toContain(429);
    if (limited.status === 429) expect(limited.headers.get('retry-after')).toMatch(/^\d+$/);
    expect((await confirm(f, gov, identityBody(clock, [sixCases()[0]!]))).status).toBe(200);
    await client.agent.close();
  });

  it('answers code 4 once the certificates have expired', async () => {
    const notAfter = new Date(holders.active.card!.certificates[0]!.notAfter).getTime();
    clock.advance(notAfter - clock.now().getTime() + DAY);
    // The systems' own certificates expired long before: onboard one now.
    const { client } = await onboard(f, 'LATER-01', 'GOVERNMENT');
    const res = await confirm(f, client, identityBody(clock, sixCases()));
    expect(res.status).toBe(200);
    expect(codesOf(res)).toEqual({ ...EXPECTED, 1: 4, 4: 4, 6: 4, 7: 4 });
    expectNoOld(await confirm(f, gov, identityBody(clock, sixCases())));
    await client.agent.close();
  }, 60_000);
});

function expectNoOld(res: { status: number; body: Record<string, unknown> }): void {
  expect(res.status).toBe(401);
  expect((res.body.details as Record<string, string>).code).toBe('CLIENT_CERTIFICATE_NOT_VALID');
}
