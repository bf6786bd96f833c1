import { FixedClock } from '@pki/kit';
import { eventsV1 } from '@pki/proto';
import { startRaFixture, type RaFixture } from './ra-fixture';
import { cardPublicKey, issueCard, openssl, person, register, registrySnapshot } from './lifecycle-helpers';

// What happens over years and hours: the extension window, approval requests that expire, and
// self-service locks that run out. ra and ca-signer share one clock that the test moves.
const DAY = 86_400_000;
let f: RaFixture;
const clock = new FixedClock(new Date(Math.floor(Date.now() / 1000) * 1000));

beforeAll(async () => {
  f = await startRaFixture({ clock, shareClockWithSigner: true });
  // The CA hierarchy was made during the start: catch up with it.
  clock.advance(Date.now() - clock.now().getTime() + 1000);
}, 120_000);
afterAll(async () => {
  await f?.stop();
});

describe('extension (domain.md: once per card, by three years, from 60 days before expiry to 3 years after)', () => {
  it('refuses before the window, extends inside it with the card\'s own keys, and refuses a second time', async () => {
    const card = await issueCard(f, await register(f, person()));
    const originalNotAfter = new Date(card.certificates[0]!.notAfter);
    const early = await f.call('registrar-a', 'POST', `/v1/cards/${card.cardNumber}/extension`);
    expect(early.status).toBe(412);
    expect(early.body.message).toBe(`extend card: card ${card.cardNumber} can be extended from ${new Date(originalNotAfter.getTime() - 60 * DAY).toISOString()} (60 days before its certificates expire), not before`);

    clock.advance(originalNotAfter.getTime() - clock.now().getTime() - 30 * DAY);
    const extended = await f.call('registrar-a', 'POST', `/v1/cards/${card.cardNumber}/extension`);
    expect(extended.status).toBe(201);
    expect(extended.body.application).toMatchObject({ kind: 'EXTENSION', state: 'ISSUED' });
    const view = extended.body.card as { extended: boolean; subjectSerialNumber: string; certificates: Array<{ status: string; reason?: string; keySlot: string; notAfter: string; certificate: string; chain: string[] }> };
    expect(view.extended).toBe(true);
    expect(view.subjectSerialNumber).toBe(card.subjectSerialNumber);
    const fresh = view.certificates.filter((c) => c.status === 'VALID');
    const old = view.certificates.filter((c) => c.status === 'REVOKED');
    expect(fresh).toHaveLength(2);
    expect(old.map((c) => c.reason)).toEqual(['superseded', 'superseded']);
    const expected = new Date(originalNotAfter);
    expected.setUTCFullYear(expected.getUTCFullYear() + 3);
    for (const c of fresh) {
      expect(c.notAfter).toBe(expected.toISOString());
      const judged = openssl(f, c.certificate, c.chain, { attime: clock.now() });
      expect(judged.verify).toBe('OK');
      // the same keys, on the same card
      expect(judged.publicKeyPem).toBe(cardPublicKey(f, `${card.cardNumber}-${c.keySlot === 'SIGN' ? 'sign' : 'keyx'}`));
      expect(judged.subject).toContain(`serialNumber=${card.subjectSerialNumber}`);
    }

    const before = await registrySnapshot(f);
    const again = await f.call('registrar-a', 'POST', `/v1/cards/${card.cardNumber}/extension`);
    expect(again.status).toBe(412);
    expect(again.body.message).toBe(`extend card: card ${card.cardNumber} was already extended once; a card is extended only once`);
    expect(await registrySnapshot(f)).toBe(before);
  });

  it('refuses after the window closed (three years after expiry), and changes nothing', async () => {
    const card = await issueCard(f, await register(f, person()));
    const notAfter = new Date(card.certificates[0]!.notAfter);
    const closes = new Date(notAfter);
    closes.setUTCFullYear(closes.getUTCFullYear() + 3);
    const saved = clock.now().getTime();
    clock.advance(closes.getTime() - saved + DAY);
    try {
      const before = await registrySnapshot(f);
      const late = await f.call('registrar-a', 'POST', `/v1/cards/${card.cardNumber}/extension`);
      expect(late.status).toBe(412);
      expect(late.body.message).toBe(`extend card: the extension window of card ${card.cardNumber} closed at ${closes.toISOString()} (3 years after expiry); a new card is needed`);
      expect(await registrySnapshot(f)).toBe(before);
    } finally {
      clock.advance(saved - clock.now().getTime());
    }
  });
});

describe('approval requests expire', () => {
  it('refuses to approve an expired request, changes nothing, and the sweeper marks and audits the expiry', async () => {
    const card = await issueCard(f, await register(f, person()));
    const request = await f.call('registrar-a', 'POST', `/v1/cards/${card.cardNumber}/revocation`, { reason: 'affiliationChanged' });
    expect(request.status).toBe(202);
    const id = request.body.approvalRequestId as string;
    clock.advance(61 * 60_000); // the fixture's requests live 60 minutes
    const listed = await f.call('registrar-b', 'GET', `/v1/approvals/${id}`);
    expect(listed.body).toMatchObject({ state: 'EXPIRED' });
    const before = await registrySnapshot(f);
    const late = await f.call('registrar-b', 'POST', `/v1/approvals/${id}/decision`, { decision: 'approve' });
    expect(late.status).toBe(412);
    expect(late.body.message).toMatch(new RegExp(`^approve request: approval request ${id} expired at .*; file a new request$`));
    expect(await registrySnapshot(f)).toBe(before);
    expect(await f.ra.ra.approvals.expireOverdue()).toBeGreaterThanOrEqual(1);
    expect((await f.call('registrar-b', 'GET', `/v1/approvals/${id}`)).body).toMatchObject({ state: 'EXPIRED' });
    const audit = (await f.auditEvents()).filter((e) => e.action === 'approval.expire' && e.objects.some((o) => o.id === id));
    expect(audit).toHaveLength(1);
    expect(audit[0]!.actor).toMatchObject({ type: eventsV1.AuditActorType.SERVICE });
  });
});

describe('self-service lock', () => {
  it('locks after five wrong codes (audited), refuses even the right code while locked, and lets it through when the lock runs out', async () => {
    const citizen = person();
    const card = await issueCard(f, await register(f, citizen));
    const before = await f.call('registrar-a', 'GET', `/v1/cards/${card.cardNumber}`);
    for (let i = 1; i <= 4; i++) {
      const wrong = await f.call('anonymous', 'POST', '/v1/self-service/suspension', { cardNumber: card.cardNumber, subscriberCode: `wrong${i}code` });
      expect(wrong.status).toBe(401);
      expect(wrong.body.message).toBe('self-service suspend: the card number or the subscriber code is wrong');
    }
    const fifth = await f.call('anonymous', 'POST', '/v1/self-service/suspension', { cardNumber: card.cardNumber, subscriberCode: 'wrong5code' });
    expect(fifth.status).toBe(429);
    expect(Number(fifth.headers.get('retry-after'))).toBe(15 * 60);
    const right = await f.call('anonymous', 'POST', '/v1/self-service/suspension', { cardNumber: card.cardNumber, subscriberCode: citizen.subscriberCode });
    expect(right.status).toBe(429);
    expect(right.body.message).toMatch(/locked after repeated wrong subscriber codes until/);
    expect((await f.call('registrar-a', 'GET', `/v1/cards/${card.cardNumber}`)).body.status).toBe(before.body.status);
    const locks = (await f.auditEvents()).filter((e) => e.action === 'self-service.lock' && e.objects.some((o) => o.id === card.cardNumber));
    expect(locks).toHaveLength(1);
    expect(locks[0]!.attributes).toMatchObject({ lockNumber: '1' });
    expect((await f.auditEvents()).filter((e) => e.action === 'self-service.authenticate' && e.objects.some((o) => o.id === card.cardNumber))).toHaveLength(5);

    clock.advance(15 * 60_000 + 1000);
    const after = await f.call('anonymous', 'POST', '/v1/self-service/suspension', { cardNumber: card.cardNumber, subscriberCode: citizen.subscriberCode });
    expect(after.status).toBe(200);
    expect(after.body).toMatchObject({ status: 'SUSPENDED' });
  });

  it('answers an unknown card number exactly like a wrong code', async () => {
    const res = await f.call('anonymous', 'POST', '/v1/self-service/resumption', { cardNumber: 'TPNOSUCHCARD0001', subscriberCode: 'whatever123' });
    expect(res.status).toBe(401);
    expect(res.body.message).toBe('self-service resume: the card number or the subscriber code is wrong');
  });
});
