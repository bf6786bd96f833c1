import { startCardMgmtFixture, OFFICE, OTHER_OFFICE, type CardMgmtFixture } from './card-mgmt-fixture';

/**
 * The daily reconciliation for a seeded day: every movement of the day (and of the days around
 * it, which must not count) made through the API at known times, the report compared with the
 * counts worked out by hand, and its certificates with those ra issued.
 */
describe('daily reconciliation', () => {
  let f: CardMgmtFixture;

  beforeAll(async () => {
    f = await startCardMgmtFixture();
  }, 300_000);

  afterAll(async () => {
    await f?.stop();
  });

  // Taiwan's day (UTC+8): 2026-03-10 runs from 2026-03-09T16:00Z to 2026-03-10T16:00Z.
  const at = (iso: string) => f.clock.set(new Date(iso));
  const ok = async (who: string, path: string, body?: unknown) => {
    const res = await f.call(who, 'POST', path, body);
    expect({ path, status: res.status, message: res.body.message }).toEqual({ path, status: res.status < 300 ? res.status : 200, message: undefined });
    return res;
  };

  it('counts received, transferred, personalised, issued, spoiled, destroyed and on hand exactly, and lists the certificates issued', async () => {
    const citizen = await f.registerCitizen();
    const cards = Array.from({ length: 10 }, (_, i) => `RCN${String(i + 1).padStart(7, '0')}`);
    const chip = await f.supplyCard('RCNCHIP0001');
    // The day before: 10 delivered, 3 supplied to the office.
    at('2026-03-09T03:00:00Z');
    await ok('card-centre', '/v1/batches', { batchId: 'B-RCN', supplier: 'Chip Co', cards: [...cards.map((c, i) => f.paperCard(c, `RCNC${i}`)), chip.manifest] });
    await ok('card-centre', '/v1/assignments', { office: OFFICE, cardNumbers: cards.slice(0, 3) });

    // The day: 4 more (one of them the real chip) supplied, 1 transferred away, 1 returned,
    // 1 spoiled and cut, 1 personalised and handed over; 1 delivered to the centre and destroyed there.
    at('2026-03-09T16:00:00Z'); // 00:00 in Taipei: the first instant of the day
    await ok('card-centre', '/v1/assignments', { office: OFFICE, cardNumbers: [...cards.slice(3, 6), 'RCNCHIP0001'] });
    at('2026-03-10T01:00:00Z');
    await ok('supervisor-a', '/v1/transfers', { toOffice: OTHER_OFFICE, cardNumbers: [cards[0]] });
    await ok('registrar-a', '/v1/returns', { cardNumbers: [cards[1]] });
    await ok('registrar-a', `/v1/cards/${cards[2]}/damage`, { reason: 'printing fault' });
    await ok('card-centre', `/v1/cards/${cards[2]}/destruction`, { reason: 'card cut' });
    await ok('card-centre', `/v1/cards/${cards[9]}/destruction`, { reason: 'withdrawn from stock' });
    const personalised = await f.workstation('registrar-a', chip, ['personalise', '--card', 'RCNCHIP0001', '--subscriber', citizen.subscriberId, '--birth-date', citizen.birthDate]);
    expect(personalised.code).toBe(0);
    await ok('registrar-a', '/v1/cards/RCNCHIP0001/hand-over');
    // The next day (from 00:00 Taipei): must not count.
    at('2026-03-10T16:00:00Z');
    await ok('registrar-a', `/v1/cards/${cards[3]}/damage`, { reason: 'next day' });

    const report = await f.call('auditor', 'GET', '/v1/reports/daily?date=2026-03-10');
    expect(report.status).toBe(200);
    expect(report.body).toMatchObject({ date: '2026-03-10', from: '2026-03-09T16:00:00.000Z', to: '2026-03-10T16:00:00.000Z' });
    const byOffice = Object.fromEntries((report.body.offices as Array<{ office: string }>).map((o) => [o.office, o]));
    const serials = (personalised.json.certificates as Array<{ serialHex: string }>).map((c) => c.serialHex).sort();
    expect(byOffice[OFFICE]).toEqual({
      office: OFFICE,
      openingOnHand: 3,
      received: 4,
      transferredOut: 2, // one to another office, one back to the centre
      personalised: 1,
      issued: 1,
      spoiled: 1,
      damagedInUse: 0,
      destroyed: 1,
      closingOnHand: 3, // 3 + 4 - 2 - 1 spoiled - 1 personalised
      balanced: true,
      certificatesIssued: serials,
    });
    expect(byOffice[OTHER_OFFICE]).toMatchObject({ openingOnHand: 0, received: 1, closingOnHand: 1, balanced: true });
    expect(byOffice['CARD-CENTRE']).toMatchObject({ openingOnHand: 8, received: 1, transferredOut: 4, destroyed: 1, closingOnHand: 4, balanced: true });
    // The auditor ties the count to ra: the two certificates of the one card personalised.
    const raCard = (await f.ra.call('auditor', 'GET', '/v1/cards/RCNCHIP0001')).body as { certificates: Array<{ serialHex: string }> };
    expect(raCard.certificates.map((c) => c.serialHex).sort()).toEqual(serials);
    // An office sees only its own day.
    const own = await f.call('registrar-x', 'GET', '/v1/reports/daily?date=2026-03-10');
    expect((own.body.offices as Array<{ office: string }>).map((o) => o.office)).toEqual([OTHER_OFFICE]);
  });
});
