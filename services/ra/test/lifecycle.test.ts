import { randomBytes } from 'node:crypto';
import { fromBinary } from '@bufbuild/protobuf';
import { timestampDate } from '@bufbuild/protobuf/wkt';
import { createLogger } from '@pki/kit';
import { createGrpcClient } from '@pki/grpc';
import { createEventTransport, type EventTransport, type OutboxEvent } from '@pki/outbox';
import { eventsV1, raV1, Topics } from '@pki/proto';
import { startRaFixture, type RaFixture } from './ra-fixture';
import { cardPublicKey, issueCard, openssl, person, register, type IssuedCard } from './lifecycle-helpers';

// The whole lifecycle through the REST API, against real PostgreSQL, a real ca-signer signing in
// SoftHSM, and a real Kafka broker carrying ra's outbox. OpenSSL is the judge of every certificate.
let f: RaFixture;
let kafka: EventTransport;
const delivered: OutboxEvent[] = [];

beforeAll(async () => {
  f = await startRaFixture({ transport: 'kafka', extraGenerations: 1 });
  kafka = await createEventTransport({ type: 'kafka', brokers: process.env.PKI_TEST_KAFKA_BROKERS!.split(','), clientId: `ra-lifecycle-${process.pid}` }, { logger: createLogger({ service: 'test', level: 'silent' }) });
  await kafka.ensureTopics([Topics.certificateStatus, Topics.audit]);
  for (const topic of [Topics.certificateStatus, Topics.audit]) {
    await kafka.subscriber.subscribe({ topic, group: `ra-lifecycle-${process.pid}-${topic}`, handler: async (e) => void delivered.push(e) });
  }
}, 120_000);
afterAll(async () => {
  await kafka?.close();
  await f?.stop();
});

type StatusEvent = eventsV1.CertificateStatusChanged;
const R = eventsV1.RevocationReason;
const S = eventsV1.CertificateStatus;

async function statusEventsOf(serial: string): Promise<StatusEvent[]> {
  return (await f.statusEvents()).filter((e) => e.serialHex === serial);
}

/** Waits until the broker delivered the status events of these serials (the outbox relay runs on its own). */
async function deliveredStatus(serials: string[], count: number): Promise<StatusEvent[]> {
  const until = Date.now() + 30_000;
  for (;;) {
    const events = delivered.filter((e) => e.topic === Topics.certificateStatus && serials.includes(e.key)).map((e) => fromBinary(eventsV1.CertificateStatusChangedSchema, e.payload));
    if (events.length >= count || Date.now() > until) return events;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function auditOf(action: string, objectId: string): Promise<eventsV1.AuditEvent[]> {
  return (await f.auditEvents()).filter((e) => e.action === action && e.objects.some((o) => o.id === objectId));
}

async function cardOf(number: string, who = 'registrar-a') {
  const res = await f.call(who, 'GET', `/v1/cards/${number}`);
  expect(res.status).toBe(200);
  return res.body as { status: string; certificates: Array<{ serialHex: string; status: string; reason?: string; keySlot: string; revocationTime?: string; invalidityDate?: string }> };
}

describe('application and issuance', () => {
  let card: IssuedCard;
  const citizen = person({ name: '王𠀋明', email: 'wang@example.tw', publicationConsent: true });

  it('issues a card\'s two certificates, built from ra\'s record, that OpenSSL verifies with their generation\'s chain', async () => {
    const subscriberId = await register(f, citizen);
    card = await issueCard(f, subscriberId);
    expect(card.body.application).toMatchObject({ state: 'ISSUED', kind: 'NEW', cardNumber: card.cardNumber, office: '63000000', createdBy: 'registrar-a' });
    expect(card.subjectSerialNumber).toMatch(/^[1-9][0-9]{15}$/);
    expect(card.certificates.map((c) => c.keySlot).sort()).toEqual(['KEYX', 'SIGN']);

    const active = f.signer.signer.domain.registry.all().find((i) => i.role === 'ISSUING' && i.active)!;
    for (const c of card.certificates) {
      expect(c.issuerKeyId).toBe(active.keyId);
      const judged = openssl(f, c.certificate, c.chain);
      expect(judged.verify).toBe('OK');
      // The subject is ra's: the CSR said CN=Anyone At All.
      expect(judged.subject).toBe(`subject=C=TW, CN=王𠀋明, serialNumber=${card.subjectSerialNumber}`);
      expect(judged.sdaLastFour).toBe(citizen.nationalId.slice(-4));
      expect(judged.text).toContain('email:wang@example.tw');
      expect(judged.text).not.toContain(citizen.nationalId);
      // The certificate certifies the card's own key.
      expect(judged.publicKeyPem).toBe(cardPublicKey(f, `${card.cardNumber}-${c.keySlot === 'SIGN' ? 'sign' : 'keyx'}`));
      expect(judged.text).toMatch(c.keySlot === 'SIGN' ? /Digital Signature, Non Repudiation/ : /Key Encipherment, Data Encipherment/);
    }
  });

  it('records VALID with a status event per certificate (what ocsp and crl need), delivered through Kafka, and audits the issuance', async () => {
    const serials = card.certificates.map((c) => c.serialHex);
    for (const c of card.certificates) {
      const events = await statusEventsOf(c.serialHex);
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ status: S.VALID, issuerKeyId: c.issuerKeyId, profile: c.keySlot === 'SIGN' ? 'citizen-signature' : 'citizen-encryption', reason: R.UNSPECIFIED });
      expect(timestampDate(events[0]!.notAfter!).toISOString()).toBe(c.notAfter);
    }
    expect(await deliveredStatus(serials, 2)).toHaveLength(2);
    const [issued] = await auditOf('application.issue', card.applicationId);
    expect(issued).toMatchObject({ outcome: eventsV1.AuditOutcome.SUCCESS, actor: { type: eventsV1.AuditActorType.SERVICE } });
    expect(issued!.objects.map((o) => o.type).sort()).toEqual(['application', 'card', 'certificate', 'certificate', 'subscriber']);
    const [approved] = await auditOf('application.approve', card.applicationId);
    expect(approved!.actor).toMatchObject({ type: eventsV1.AuditActorType.OFFICER, id: 'registrar-a', office: '63000000', role: 'registrar' });
    // Audit events reach the broker too, under their own producer (a gapless sequence of their own).
    const arrived = () => delivered.find((e) => e.topic === Topics.audit && fromBinary(eventsV1.AuditEventSchema, e.payload).eventId === issued!.eventId);
    const until = Date.now() + 30_000;
    while (!arrived() && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    expect(arrived()).toMatchObject({ producer: 'ra.audit', key: 'ra.audit' });
  });

  it('activates the card when the citizen confirms receipt', async () => {
    const res = await f.call('registrar-a', 'POST', `/v1/cards/${card.cardNumber}/activation`, {});
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'ACTIVE', activatedAt: expect.any(String) });
    expect(await auditOf('card.activate', card.cardNumber)).toHaveLength(1);
  });

  it('suspends both certificates (certificateHold) and resumes them (removeFromCRL), each with its events', async () => {
    const suspended = await f.call('registrar-a', 'POST', `/v1/cards/${card.cardNumber}/suspension`, { comment: 'card reported lost' });
    expect(suspended.status).toBe(200);
    expect((suspended.body as { status: string }).status).toBe('SUSPENDED');
    for (const c of card.certificates) {
      const events = await statusEventsOf(c.serialHex);
      expect(events[1]).toMatchObject({ status: S.SUSPENDED, previousStatus: S.VALID, reason: R.CERTIFICATE_HOLD });
      expect(events[1]!.revocationTime).toBeDefined();
    }
    const resumed = await f.call('registrar-b', 'POST', `/v1/cards/${card.cardNumber}/resumption`, {});
    expect(resumed.status).toBe(200);
    expect((resumed.body as { status: string }).status).toBe('ACTIVE');
    for (const c of card.certificates) {
      const events = await statusEventsOf(c.serialHex);
      expect(events[2]).toMatchObject({ status: S.VALID, previousStatus: S.SUSPENDED, reason: R.REMOVE_FROM_CRL });
      expect(events[2]!.revocationTime).toBeUndefined();
    }
    expect(await deliveredStatus(card.certificates.map((c) => c.serialHex), 6)).toHaveLength(6);
    const [audit] = await auditOf('card.suspend', card.cardNumber);
    expect(audit).toMatchObject({ reason: 'certificateHold', attributes: { cardStatus: 'SUSPENDED', comment: 'card reported lost' } });
  });

  it('lets the citizen suspend and resume with the card number and subscriber code', async () => {
    const suspended = await f.call('anonymous', 'POST', '/v1/self-service/suspension', { cardNumber: card.cardNumber, subscriberCode: citizen.subscriberCode });
    expect(suspended.status).toBe(200);
    expect(suspended.body).toMatchObject({ cardNumber: card.cardNumber, status: 'SUSPENDED' });
    expect(suspended.body).not.toHaveProperty('subscriberId');
    const [audit] = await auditOf('card.suspend', card.cardNumber).then((a) => a.filter((e) => e.actor?.type === eventsV1.AuditActorType.CITIZEN));
    expect(audit!.actor!.id).toMatch(/^p-[0-9a-f]{32}$/);
    const resumed = await f.call('anonymous', 'POST', '/v1/self-service/resumption', { cardNumber: card.cardNumber, subscriberCode: citizen.subscriberCode });
    expect(resumed.status).toBe(200);
    expect(resumed.body).toMatchObject({ status: 'ACTIVE' });
  });

  it('publishes the certificates of a consenting subscriber: name, last four ID digits, serial and status only', async () => {
    const serial = card.certificates[0]!.serialHex;
    const res = await f.call('anonymous', 'GET', `/v1/public/certificates/${serial}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ serialHex: serial, status: 'VALID', name: '王𠀋明', nationalIdLastFour: citizen.nationalId.slice(-4), profile: expect.any(String), notBefore: expect.any(String), notAfter: expect.any(String) });
    const byCard = await f.call('anonymous', 'GET', `/v1/public/cards/${card.cardNumber}/certificates`);
    expect(byCard.status).toBe(200);
    expect((byCard.body as unknown as unknown[]).length).toBe(2);
  });

  it('publishes nothing of a subscriber who did not consent (the same answer as for a serial that does not exist)', async () => {
    const other = await issueCard(f, await register(f, person({ publicationConsent: false })));
    const res = await f.call('anonymous', 'GET', `/v1/public/certificates/${other.certificates[0]!.serialHex}`);
    expect(res.status).toBe(404);
    const missing = await f.call('anonymous', 'GET', `/v1/public/certificates/${'ab'.repeat(16)}`);
    expect(missing.status).toBe(404);
    expect(res.body.message!.replace(other.certificates[0]!.serialHex, 'X')).toBe(missing.body.message!.replace('ab'.repeat(16), 'X'));
  });
});

describe('revocation under dual control', () => {
  it('files the request, refuses the requester and another office, and revokes when a second officer approves', async () => {
    const card = await issueCard(f, await register(f, person()));
    const request = await f.call('registrar-a', 'POST', `/v1/cards/${card.cardNumber}/revocation`, { reason: 'keyCompromise', invalidityDate: new Date(Date.now() - 86_400_000).toISOString(), comment: 'card stolen' });
    expect(request.status).toBe(202);
    const id = request.body.approvalRequestId as string;
    expect((await cardOf(card.cardNumber)).status).toBe('ISSUED');

    const own = await f.call('registrar-a', 'POST', `/v1/approvals/${id}/decision`, { decision: 'approve' });
    expect(own.status).toBe(403);
    expect(own.body.message).toContain('filed approval request');
    // The refused attempt is itself audited.
    expect((await auditOf('approval.decide', id))[0]).toMatchObject({ outcome: eventsV1.AuditOutcome.FAILURE, actor: { id: 'registrar-a' } });
    const elsewhere = await f.call('registrar-x', 'POST', `/v1/approvals/${id}/decision`, { decision: 'approve' });
    expect(elsewhere.status).toBe(403);
    expect(elsewhere.body.message).toContain('belongs to office 63000000, not to office 64000000');

    const approved = await f.call('registrar-b', 'POST', `/v1/approvals/${id}/decision`, { decision: 'approve', comment: 'confirmed with the citizen' });
    expect(approved.status).toBe(200);
    expect(approved.body.approval).toMatchObject({ state: 'EXECUTED', requestedBy: 'registrar-a', decidedBy: 'registrar-b' });
    const after = await cardOf(card.cardNumber);
    expect(after.status).toBe('REVOKED');
    for (const c of after.certificates) {
      expect(c).toMatchObject({ status: 'REVOKED', reason: 'keyCompromise', revocationTime: expect.any(String), invalidityDate: expect.any(String) });
      const events = await statusEventsOf(c.serialHex);
      expect(events[events.length - 1]).toMatchObject({ status: S.REVOKED, reason: R.KEY_COMPROMISE, previousStatus: S.VALID });
      expect(events[events.length - 1]!.invalidityDate).toBeDefined();
    }
    expect((await auditOf('approval.request', id))[0]!.actor).toMatchObject({ id: 'registrar-a' });
    expect((await auditOf('approval.approve', id))[0]!.actor).toMatchObject({ id: 'registrar-b' });
    expect((await auditOf('card.revoke', card.cardNumber))[0]).toMatchObject({ reason: 'keyCompromise' });
    // A rejected request changes nothing.
    const second = await issueCard(f, await register(f, person()));
    const r2 = await f.call('registrar-a', 'POST', `/v1/cards/${second.cardNumber}/revocation`, { reason: 'card-cut' });
    const rejected = await f.call('supervisor-a', 'POST', `/v1/approvals/${r2.body.approvalRequestId}/decision`, { decision: 'reject' });
    expect(rejected.status).toBe(200);
    expect(rejected.body.approval).toMatchObject({ state: 'REJECTED' });
    expect((await cardOf(second.cardNumber)).status).toBe('ISSUED');
  });

  it('revokes many cards at once only on a second officer\'s approval', async () => {
    const cards = [await issueCard(f, await register(f, person())), await issueCard(f, await register(f, person()))];
    const refused = await f.call('registrar-a', 'POST', '/v1/bulk-revocations', { cardNumbers: cards.map((c) => c.cardNumber), reason: 'card-cut' });
    expect(refused.status).toBe(403); // a registrar may not file bulk operations
    const request = await f.call('supervisor-a', 'POST', '/v1/bulk-revocations', { cardNumbers: cards.map((c) => c.cardNumber), reason: 'card-cut', comment: 'defective batch' });
    expect(request.status).toBe(202);
    expect(request.body).toMatchObject({ cards: 2 });
    const approved = await f.call('card-centre', 'POST', `/v1/approvals/${request.body.approvalRequestId}/decision`, { decision: 'approve' });
    expect(approved.status).toBe(200);
    expect(approved.body).toMatchObject({ revokedCards: 2, alreadyRevoked: [] });
    for (const c of cards) {
      const after = await cardOf(c.cardNumber);
      expect(after.status).toBe('REVOKED');
      expect(after.certificates.every((x) => x.reason === 'cessationOfOperation')).toBe(true);
    }
  });
});

describe('replacement and re-issuance', () => {
  it('a replacement card supersedes the old one', async () => {
    const subscriberId = await register(f, person());
    const old = await issueCard(f, subscriberId);
    const duplicate = await f.call('registrar-a', 'POST', '/v1/applications', { subscriberId, cardNumber: 'TPDUPLICATE00001', kind: 'NEW', signingCsr: f.csr('dup-s'), encryptionCsr: f.csr('dup-k') });
    expect(duplicate.status).toBe(409);
    expect(duplicate.body.message).toContain(`already holds card ${old.cardNumber}`);
    const replacement = await issueCard(f, subscriberId, { kind: 'REPLACEMENT', replacesCard: old.cardNumber });
    for (const c of replacement.certificates) {
      const judged = openssl(f, c.certificate, c.chain);
      expect(judged.verify).toBe('OK');
      expect(judged.subject).toContain(`serialNumber=${replacement.subjectSerialNumber}`);
      expect(judged.sdaLastFour).toMatch(/^\d{4}$/);
    }
    const before = await cardOf(old.cardNumber);
    expect(before.status).toBe('REVOKED');
    expect(before.certificates.every((c) => c.reason === 'superseded')).toBe(true);
    expect(replacement.certificates).toHaveLength(2);
    expect(replacement.subjectSerialNumber).not.toBe(old.subjectSerialNumber);
  });

  it('an approval\'s idempotency record names the application (no certificate in clear); a replay answers from the registry, another request is refused', async () => {
    const subscriberId = await register(f, person());
    const number = `TPREPLAY${randomBytes(4).toString('hex').toUpperCase()}`;
    const application = await f.call('registrar-a', 'POST', '/v1/applications', { subscriberId, cardNumber: number, kind: 'NEW', signingCsr: f.csr(`${number}-s`), encryptionCsr: f.csr(`${number}-k`) });
    expect(application.status).toBe(201);
    const key = `approval-${randomBytes(6).toString('hex')}`;
    const approved = await f.call('registrar-a', 'POST', `/v1/applications/${application.body.id}/approval`, undefined, key);
    expect(approved.status).toBe(201);
    const { rows } = await f.db.query(`SELECT result, completed_at FROM idempotency_keys WHERE key = $1`, [key]);
    expect(rows).toEqual([{ result: { issuedApplication: application.body.id }, completed_at: expect.any(Date) }]);
    const replayed = await f.call('registrar-a', 'POST', `/v1/applications/${application.body.id}/approval`, undefined, key);
    expect(replayed.status).toBe(201);
    expect(replayed.body).toEqual(approved.body);
    const other = await issueCard(f, await register(f, person())).then((c) => c.applicationId);
    // Before the first answer, a retry of the same approval: both get the one card (whichever run
    // records it, the other finds it recorded and changes nothing).
    const next = await f.call('registrar-a', 'POST', '/v1/applications', { subscriberId: await register(f, person()), cardNumber: `${number}2`, kind: 'NEW', signingCsr: f.csr(`${number}-s2`), encryptionCsr: f.csr(`${number}-k2`) });
    const twice = await Promise.all([1, 2].map(() => f.call('registrar-a', 'POST', `/v1/applications/${next.body.id}/approval`, undefined, `${key}-2`)));
    expect(twice.map((r) => r.status)).toEqual([201, 201]);
    expect(twice[1]!.body).toEqual(twice[0]!.body);
    const { rows: recorded } = await f.db.query(`SELECT serial_hex FROM certificates WHERE application_id = $1`, [next.body.id]);
    expect(recorded).toHaveLength(2);
    for (const { serial_hex: serial } of recorded) expect(await statusEventsOf(serial)).toHaveLength(1);
    expect(await auditOf('application.issue', next.body.id as string)).toHaveLength(1);
    const refused = await f.call('registrar-a', 'POST', `/v1/applications/${other}/approval`, undefined, key);
    expect(refused.status).toBe(409);
    expect(refused.body.message).toBe(`approve application: idempotency key '${key}' was already used for a different request`);
    // The same key on an application still SUBMITTED: the one-statement approval (decision 0040)
    // meets the held key and writes nothing; the application stays SUBMITTED, unaudited, and a
    // fresh key approves it.
    const third = await f.call('registrar-a', 'POST', '/v1/applications', { subscriberId: await register(f, person()), cardNumber: `${number}3`, kind: 'NEW', signingCsr: f.csr(`${number}-s3`), encryptionCsr: f.csr(`${number}-k3`) });
    const held = await f.call('registrar-a', 'POST', `/v1/applications/${third.body.id}/approval`, undefined, key);
    expect(held.status).toBe(409);
    expect(held.body.message).toBe(`approve application: idempotency key '${key}' was already used for a different request`);
    expect((await f.db.query(`SELECT state FROM applications WHERE id = $1`, [third.body.id])).rows).toEqual([{ state: 'SUBMITTED' }]);
    expect(await auditOf('application.approve', third.body.id as string)).toHaveLength(0);
    const fresh = await f.call('registrar-a', 'POST', `/v1/applications/${third.body.id}/approval`, undefined, `${key}-3`);
    expect(fresh.status).toBe(201);
    expect(await auditOf('application.approve', third.body.id as string)).toHaveLength(1);
  });

  it('re-issuance after key compromise waits for a second officer, then revokes the old card for keyCompromise', async () => {
    const subscriberId = await register(f, person());
    const old = await issueCard(f, subscriberId);
    const application = await f.call('registrar-a', 'POST', '/v1/applications', { subscriberId, cardNumber: 'TPREISSUE0000001', kind: 'REISSUE', replacesCard: old.cardNumber, signingCsr: f.csr('re-s'), encryptionCsr: f.csr('re-k') });
    expect(application.status).toBe(201);
    expect(application.body).toMatchObject({ state: 'PENDING_APPROVAL', approvalRequestId: expect.any(String) });
    const direct = await f.call('registrar-a', 'POST', `/v1/applications/${application.body.id}/approval`);
    expect(direct.status).toBe(412);
    expect(direct.body.message).toContain("waits for a second officer's approval");
    const key = `reissue-${randomBytes(6).toString('hex')}`;
    const approved = await f.call('registrar-b', 'POST', `/v1/approvals/${application.body.approvalRequestId}/decision`, { decision: 'approve' }, key);
    expect(approved.status).toBe(200);
    expect(approved.body.approval).toMatchObject({ state: 'EXECUTED' });
    // As for an ordinary approval, the key's record names the application: the certificates carry
    // the citizen's name, which the registry keeps sealed. A replay renders the same answer from it.
    const { rows } = await f.db.query(`SELECT result FROM idempotency_keys WHERE key = $1`, [key]);
    expect(rows).toEqual([{ result: { approval: approved.body.approval, issuedApplication: application.body.id } }]);
    const replayed = await f.call('registrar-b', 'POST', `/v1/approvals/${application.body.approvalRequestId}/decision`, { decision: 'approve' }, key);
    expect(replayed.status).toBe(200);
    expect(replayed.body).toEqual(approved.body);
    const refused = await f.call('registrar-b', 'POST', `/v1/approvals/${application.body.approvalRequestId}/decision`, { decision: 'reject' }, key);
    expect(refused.status).toBe(409);
    const issuance = approved.body.issuance as { application: { state: string }; card: { certificates: Array<{ certificate: string; chain: string[]; status: string }> } };
    expect(issuance.application.state).toBe('ISSUED');
    for (const c of issuance.card.certificates) expect(openssl(f, c.certificate, c.chain).verify).toBe('OK');
    // The new card certifies the new keys, not the compromised ones.
    expect(openssl(f, issuance.card.certificates.find((c) => c.status === 'VALID')!.certificate, issuance.card.certificates[0]!.chain).publicKeyPem).not.toBe(cardPublicKey(f, `${old.cardNumber}-sign`));
    const oldCard = await cardOf(old.cardNumber);
    expect(oldCard.status).toBe('REVOKED');
    expect(oldCard.certificates.every((c) => c.reason === 'keyCompromise')).toBe(true);
  });
});

describe('household-registration events', () => {
  it('revokes a deceased person\'s certificates from the time of death, once per event whatever the sender retries', async () => {
    const citizen = person();
    const card = await issueCard(f, await register(f, citizen));
    const occurredAt = new Date(Date.now() - 3 * 86_400_000).toISOString();
    const event = { eventId: `HR-${Date.now()}`, kind: 'DEATH', nationalId: citizen.nationalId, occurredAt };
    const first = await f.call('household', 'POST', '/v1/household-events', event);
    expect(first.status).toBe(200);
    expect(first.body).toEqual({ eventId: event.eventId, outcome: 'CERTIFICATES_REVOKED', revokedCertificates: 2 });
    const after = await cardOf(card.cardNumber);
    expect(after.status).toBe('REVOKED');
    for (const c of after.certificates) {
      expect(c).toMatchObject({ status: 'REVOKED', reason: 'cessationOfOperation', invalidityDate: occurredAt });
    }
    const eventsBefore = (await f.statusEvents()).length;
    const retried = await f.call('household', 'POST', '/v1/household-events', event); // a new idempotency key: the sender's retry
    expect(retried.status).toBe(200);
    expect(retried.body).toEqual(first.body);
    expect((await f.statusEvents()).length).toBe(eventsBefore);
    const changed = await f.call('household', 'POST', '/v1/household-events', { ...event, kind: 'NAME_CHANGE' });
    expect(changed.status).toBe(409);
    expect(changed.body.message).toContain('already received with different content');
    // The person can no longer apply.
    const subscriberId = (await f.call('registrar-a', 'POST', '/v1/subscriber-searches', { nationalId: citizen.nationalId })).body.subscriberId;
    const refused = await f.call('registrar-a', 'POST', '/v1/applications', { subscriberId, cardNumber: 'TPDECEASED000001', kind: 'NEW', signingCsr: f.csr('dec-s'), encryptionCsr: f.csr('dec-k') });
    expect(refused.status).toBe(412);
    expect(refused.body.message).toContain('is DECEASED');
    expect((await auditOf('household-event.apply', event.eventId))[0]!.actor).toMatchObject({ type: eventsV1.AuditActorType.HOUSEHOLD_SYSTEM, id: 'household' });
  });

  it('records and answers an event about a person ra does not know', async () => {
    const stranger = person();
    const res = await f.call('household', 'POST', '/v1/household-events', { eventId: `HR-unknown-${Date.now()}`, kind: 'ID_CHANGE', nationalId: stranger.nationalId, occurredAt: new Date().toISOString() });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ outcome: 'UNKNOWN_PERSON', revokedCertificates: 0 });
    expect(Number((await f.db.query(`SELECT count(*) FROM household_events WHERE event_id = $1`, [res.body.eventId])).rows[0].count)).toBe(1);
    expect(await auditOf('household-event.receive', res.body.eventId as string)).toHaveLength(1);
  });
});

describe('CA generations and the repository', () => {
  it('returns each certificate with the chain of the generation that signed it, after a new generation became active', async () => {
    const before = await issueCard(f, await register(f, person()));
    const g2 = f.signer.extraGenerations[0]!;
    await f.signer.activateGeneration(g2);
    const after = await issueCard(f, await register(f, person()));
    expect(after.certificates.every((c) => c.issuerKeyId === g2)).toBe(true);
    expect(before.certificates.every((c) => c.issuerKeyId !== g2)).toBe(true);
    for (const c of [...before.certificates, ...after.certificates]) expect(openssl(f, c.certificate, c.chain).verify).toBe('OK');
    // The chains differ only in the issuing CA: same DN, other key.
    expect(after.certificates[0]!.chain[0]).not.toBe(before.certificates[0]!.chain[0]);
    expect(after.certificates[0]!.chain[1]).toBe(before.certificates[0]!.chain[1]);
    const old = await f.call('registrar-a', 'GET', `/v1/certificates/${before.certificates[0]!.serialHex}`);
    expect((old.body.chain as string[])[0]).toBe(before.certificates[0]!.chain[0]);
    const issuers = await f.call('anonymous', 'GET', '/v1/public/issuers');
    expect((issuers.body as unknown as Array<{ keyId: string; active: boolean }>).map((i) => [i.keyId === g2, i.active])).toEqual(expect.arrayContaining([[true, true], [false, false]]));
    const chain = await f.call('anonymous', 'GET', `/v1/public/issuers/${g2}/chain.pem`);
    expect(chain.status).toBe(200);
    expect(chain.headers.get('content-type')).toContain('application/pem-certificate-chain');
    expect(chain.text.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
  });
});

describe('officers\' queries are scoped to their office', () => {
  it('lists an office\'s applications to its registrar, none to another office\'s, all to the auditor, who changes nothing', async () => {
    const mine = await f.call('registrar-a', 'GET', '/v1/applications?limit=500');
    expect((mine.body.items as unknown[]).length).toBeGreaterThan(3);
    const other = await f.call('registrar-x', 'GET', '/v1/applications?limit=500');
    expect(other.body.items).toEqual([]);
    const auditor = await f.call('auditor', 'GET', '/v1/applications?limit=500');
    expect((auditor.body.items as unknown[]).length).toBe((mine.body.items as unknown[]).length);
    // paging: two at a time reaches the same set
    const seen: string[] = [];
    let token: string | undefined;
    do {
      const page = await f.call('registrar-a', 'GET', `/v1/applications?limit=2${token ? `&pageToken=${token}` : ''}`);
      seen.push(...(page.body.items as Array<{ id: string }>).map((a) => a.id));
      token = page.body.nextPageToken as string | undefined;
    } while (token);
    expect(seen).toEqual((mine.body.items as Array<{ id: string }>).map((a) => a.id));
    const card = (mine.body.items as Array<{ cardNumber: string; state: string }>).find((a) => a.state === 'ISSUED')!.cardNumber;
    const denied = await f.call('auditor', 'POST', `/v1/cards/${card}/suspension`, {});
    expect(denied.status).toBe(403);
    expect(denied.body.message).toBe('suspend card: role auditor may not card.suspend');
  });
});

describe('gRPC for other services (mTLS, allow-listed)', () => {
  it('answers a certificate, a card and the status population to allowed services only', async () => {
    const card = await issueCard(f, await register(f, person()));
    const client = (who: 'ocsp' | 'audit') => createGrpcClient(raV1.RaService, { address: f.ra.grpcAddress, serverIdentity: f.signer.identities.ra.identity, tls: f.signer.identities[who], deadlineMs: 10_000 });
    const ocsp = client('ocsp');
    const audit = client('audit');
    try {
      const got = await ocsp.getCertificate({ serialHex: card.certificates[0]!.serialHex });
      expect(got.certificate!.status).toMatchObject({ status: S.VALID, serialHex: card.certificates[0]!.serialHex });
      expect(got.certificate!.cardNumber).toBe(card.cardNumber);
      const byCard = await ocsp.getCard({ cardNumber: card.cardNumber });
      expect(byCard).toMatchObject({ cardNumber: card.cardNumber, status: raV1.CardStatus.ISSUED, subjectSerialNumber: card.subjectSerialNumber });
      const all: string[] = [];
      let token = '';
      do {
        const page = await ocsp.listCertificateStatuses({ pageToken: token, pageSize: 3 });
        all.push(...page.statuses.map((s) => s.serialHex));
        token = page.nextPageToken;
      } while (token);
      const { rows } = await f.db.query('SELECT serial_hex FROM certificates ORDER BY serial_hex');
      expect(all).toEqual(rows.map((r) => r.serial_hex));
      await expect(audit.getCertificate({ serialHex: card.certificates[0]!.serialHex })).rejects.toMatchObject({ code: 'PERMISSION_DENIED' });
      await expect(ocsp.getCertificate({ serialHex: 'not-hex' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      await expect(ocsp.getCertificate({ serialHex: 'ab'.repeat(16) })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    } finally {
      ocsp.close();
      audit.close();
    }
  });
});
