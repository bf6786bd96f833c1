import { startCardMgmtFixture, OFFICE, OTHER_OFFICE, type CardMgmtFixture } from './card-mgmt-fixture';

/**
 * Card stock against real PostgreSQL, ra (the officer directory) and the Kafka broker: batches,
 * assignment, transfer, return, spoilage, the card cut, inventory, idempotency and audit; every
 * refusal says what was wrong and changes nothing.
 */
describe('card stock', () => {
  let f: CardMgmtFixture;
  let batches = 0;

  beforeAll(async () => {
    f = await startCardMgmtFixture();
  }, 180_000);

  afterAll(async () => {
    await f?.stop();
  });

  const numbers = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${String(i + 1).padStart(6, '0')}`);

  async function receive(prefix: string, n: number): Promise<string[]> {
    const cards = numbers(prefix, n);
    const res = await f.call('card-centre', 'POST', '/v1/batches', { batchId: `B-${prefix}-${++batches}`, supplier: 'Chip Co', cards: cards.map((c, i) => f.paperCard(c, `${prefix}CHIP${i}`)) });
    expect(res.status).toBe(201);
    return cards;
  }

  const snapshot = async () => {
    const cards = await f.db.query(`SELECT card_number, state, office FROM cards ORDER BY card_number`);
    const transitions = await f.db.query(`SELECT count(*)::int AS n FROM card_transitions`);
    const audit = await f.db.query(`SELECT count(*)::int AS n FROM outbox`);
    return { cards: cards.rows, transitions: transitions.rows[0].n, audit: audit.rows[0].n };
  };

  it('receives a batch, supplies an office, transfers, returns, spoils and cuts cards, each move recorded with its actor and audited', async () => {
    const [a, b, c, d] = await receive('STKA', 4);
    const assigned = await f.call('card-centre', 'POST', '/v1/assignments', { office: OFFICE, cardNumbers: [a, b, c, d] });
    expect(assigned.status).toBe(200);
    expect((assigned.body.cards as Array<{ state: string; office: string }>).every((x) => x.state === 'ASSIGNED' && x.office === OFFICE)).toBe(true);

    // A supervisor of the office sends one card to another office; a registrar returns one to the centre.
    expect((await f.call('supervisor-a', 'POST', '/v1/transfers', { toOffice: OTHER_OFFICE, cardNumbers: [b] })).status).toBe(200);
    expect((await f.call('registrar-a', 'POST', '/v1/returns', { cardNumbers: [c], reason: 'surplus' })).status).toBe(200);
    const spoiled = await f.call('registrar-a', 'POST', `/v1/cards/${d}/damage`, { reason: 'chip fails to answer' });
    expect(spoiled.body).toMatchObject({ state: 'DAMAGED', office: OFFICE });
    const cut = await f.call('card-centre', 'POST', `/v1/cards/${d}/destruction`, { reason: 'card cut after spoilage' });
    expect(cut.body).toMatchObject({ state: 'DESTROYED' });

    const history = await f.call('card-centre', 'GET', `/v1/cards/${d}`);
    expect((history.body.history as Array<{ action: string; toState: string; actor: string }>).map((h) => [h.action, h.toState, h.actor])).toEqual([
      ['receive', 'IN_STOCK', 'card-centre'],
      ['assign', 'ASSIGNED', 'card-centre'],
      ['report-damaged', 'DAMAGED', 'registrar-a'],
      ['destroy', 'DESTROYED', 'card-centre'],
    ]);
    expect((await f.call('registrar-x', 'GET', `/v1/cards/${b}`)).body).toMatchObject({ state: 'ASSIGNED', office: OTHER_OFFICE });
    expect((await f.call('card-centre', 'GET', `/v1/cards/${c}`)).body).toMatchObject({ state: 'IN_STOCK', office: 'CARD-CENTRE' });

    const audit = await f.auditEvents();
    const forD = audit.filter((e) => e.objects.some((o) => o.type === 'card' && o.id === d)).map((e) => [e.action, e.actor?.id, e.actor?.role]);
    expect(forD).toEqual([
      ['card-batch.receive', 'card-centre', 'card-centre'],
      ['card.assign', 'card-centre', 'card-centre'],
      ['card.report-damaged', 'registrar-a', 'registrar'],
      ['card.destroy', 'card-centre', 'card-centre'],
    ]);
  });

  it("delivers its audit events to the Kafka broker (the outbox relay marks each one published)", async () => {
    await receive('STKK', 2);
    const deadline = Date.now() + 60_000;
    let unpublished = -1;
    while (Date.now() < deadline) {
      const { rows } = await f.db.query(`SELECT count(*) FILTER (WHERE published_at IS NULL)::int AS n, count(*)::int AS total FROM outbox WHERE producer = 'card-mgmt.audit'`);
      unpublished = rows[0].n;
      expect(rows[0].total).toBeGreaterThan(0);
      if (unpublished === 0) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(unpublished).toBe(0);
  });

  it('shows each office its own inventory, and the card centre every office', async () => {
    const cards = await receive('STKB', 3);
    await f.call('card-centre', 'POST', '/v1/assignments', { office: OTHER_OFFICE, cardNumbers: cards });
    const mine = await f.call('registrar-x', 'GET', '/v1/inventory');
    expect((mine.body.offices as Array<{ office: string }>).map((o) => o.office)).toEqual([OTHER_OFFICE]);
    const all = await f.call('card-centre', 'GET', '/v1/inventory');
    const offices = (all.body.offices as Array<{ office: string; onHand: number }>).map((o) => o.office);
    expect(offices).toEqual(expect.arrayContaining(['CARD-CENTRE', OFFICE, OTHER_OFFICE]));
    const { rows } = await f.db.query(`SELECT count(*)::int AS n FROM cards WHERE office = $1 AND state IN ('IN_STOCK', 'ASSIGNED', 'PERSONALISING')`, [OTHER_OFFICE]);
    expect((mine.body.offices as Array<{ onHand: number }>)[0]!.onHand).toBe(rows[0].n);
    expect((await f.call('registrar-x', 'GET', `/v1/inventory?office=${OFFICE}`)).status).toBe(403);
  });

  it('replays a request under its idempotency key, and refuses the key with another body', async () => {
    const [a, b] = await receive('STKC', 2);
    const first = await f.call('card-centre', 'POST', '/v1/assignments', { office: OFFICE, cardNumbers: [a] }, 'assign-key-0001');
    const again = await f.call('card-centre', 'POST', '/v1/assignments', { office: OFFICE, cardNumbers: [a] }, 'assign-key-0001');
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
    const before = await snapshot();
    const other = await f.call('card-centre', 'POST', '/v1/assignments', { office: OFFICE, cardNumbers: [b] }, 'assign-key-0001');
    expect(other.status).toBe(409);
    expect(other.body.message).toMatch(/idempotency key 'assign-key-0001' was already used for a different request/);
    expect(await snapshot()).toEqual(before);
    const missing = await f.call('card-centre', 'POST', '/v1/assignments', { office: OFFICE, cardNumbers: [b] }, null);
    expect(missing.status).toBe(400);
    expect(missing.body.message).toMatch(/idempotency-key/);
  });

  it('answers 503 with a retry hint, and nothing internal, while ra is unavailable', async () => {
    await f.ra.ra.runtime.stop();
    try {
      // An officer not seen yet: card-mgmt must ask ra who holds the certificate.
      const res = await f.call('registrar-b', 'GET', '/v1/inventory');
      expect({ status: res.status, retryAfter: res.headers.get('retry-after'), body: res.body }).toEqual({
        status: 503,
        retryAfter: '5',
        body: { error: 'UNAVAILABLE', message: 'inventory: a service card-mgmt depends on is unavailable; retry in 5 s' },
      });
      expect(res.text).not.toMatch(/127\.0\.0\.1|ECONNREFUSED|grpc/i);
    } finally {
      await f.ra.restart();
    }
    // Once ra is back (the gRPC channel reconnects with backoff), the same request succeeds.
    const deadline = Date.now() + 60_000;
    let status = 0;
    while (Date.now() < deadline && status !== 200) {
      status = (await f.call('registrar-b', 'GET', '/v1/inventory')).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 250));
    }
    expect(status).toBe(200);
  });

  it("limits citizens' requests per address (429 with a retry hint), before any work", async () => {
    let res;
    let n = 0;
    do {
      res = await f.call('anonymous', 'POST', '/v1/mobile/challenges', { cardNumber: 'NOSUCH0002' });
      n++;
    } while (res.status !== 429 && n < 100);
    // 30 a minute: the 31st at the earliest (later only if a minute's window turned meanwhile).
    expect({ status: res.status, atLeast31: n >= 31, error: res.body.error }).toEqual({ status: 429, atLeast31: true, error: 'RESOURCE_EXHAUSTED' });
    expect(res.body.message).toMatch(/^rate limit: at most 30 requests a minute; retry after \d+ s$/);
  });

  describe('bad input: a clear error, nothing changed', () => {
    it.each<[string, string, () => Promise<[string, 'GET' | 'POST', string, unknown]>, number, RegExp]>([
      ['an illegal transition (cutting a card twice)', 'card-centre', async () => {
        const [a] = await receive('BADA', 1);
        await f.call('card-centre', 'POST', `/v1/cards/${a}/destruction`, { reason: 'withdrawn' });
        return ['card-centre', 'POST', `/v1/cards/${a}/destruction`, { reason: 'again' }];
      }, 412, /destroy card: card BADA000001 is DESTROYED; destroy needs a card that is IN_STOCK or ASSIGNED or DAMAGED or REVOKED or REPLACED/],
      ['handing over a blank card', 'registrar-a', async () => {
        const [a] = await receive('BADB', 1);
        await f.call('card-centre', 'POST', '/v1/assignments', { office: OFFICE, cardNumbers: [a] });
        return ['registrar-a', 'POST', `/v1/cards/${a}/hand-over`, undefined];
      }, 412, /hand-over card: card BADB000001 is ASSIGNED; hand-over needs a card that is PERSONALISED/],
      ["a card from another office's stock", 'registrar-x', async () => {
        const [a] = await receive('BADC', 1);
        await f.call('card-centre', 'POST', '/v1/assignments', { office: OFFICE, cardNumbers: [a] });
        return ['registrar-x', 'POST', '/v1/returns', { cardNumbers: [a] }];
      }, 403, /return cards: card BADC000001 is in the stock of office 63000000, not of office 64000000/],
      ['a card number used twice in a batch', 'card-centre', async () => ['card-centre', 'POST', '/v1/batches', { batchId: 'B-DUP-1', supplier: 'Chip Co', cards: [f.paperCard('BADD000001', 'BADDCHIP1'), f.paperCard('BADD000001', 'BADDCHIP2')] }],
        400, /receive batch: card number BADD000001 appears twice in the batch/],
      ['a card number already in the register', 'card-centre', async () => {
        const [a] = await receive('BADE', 1);
        return ['card-centre', 'POST', '/v1/batches', { batchId: 'B-DUP-2', supplier: 'Chip Co', cards: [f.paperCard('BADE999999', 'BADENEW1'), f.paperCard(a!, 'BADENEW2')] }];
      }, 409, /receive batch: card number BADE000001 is already in the card register; no card of the batch was received/],
      ['a chip serial already in the register', 'card-centre', async () => {
        await receive('BADF', 1);
        return ['card-centre', 'POST', '/v1/batches', { batchId: 'B-DUP-3', supplier: 'Chip Co', cards: [f.paperCard('BADF999999', 'BADFCHIP0')] }];
      }, 409, /chip serial BADFCHIP0 is already in the card register/],
      ['a malformed card number', 'card-centre', async () => ['card-centre', 'POST', '/v1/assignments', { office: OFFICE, cardNumbers: ['bad number'] }], 400, /assign cards: .*cardNumbers\/0 must match pattern/],
      ['an attestation key that is not a key', 'card-centre', async () => ['card-centre', 'POST', '/v1/batches', { batchId: 'B-ATT', supplier: 'Chip Co', cards: [{ cardNumber: 'BADJ000001', chipSerial: 'BADJCHIP', attestationKey: Buffer.alloc(80, 1).toString('base64') }] }],
        400, /receive batch: cards\[0\].attestationKey is not a public key/],
      ['an unknown field', 'card-centre', async () => ['card-centre', 'POST', '/v1/assignments', { office: OFFICE, cardNumbers: ['BADG000001'], nationalId: 'A123456789' }], 400, /must NOT have additional properties/],
      ['an unknown card', 'card-centre', async () => ['card-centre', 'POST', '/v1/assignments', { office: OFFICE, cardNumbers: ['NOSUCH0001'] }], 404, /assign cards: no card NOSUCH0001/],
      ['a role that may not receive batches', 'registrar-a', async () => ['registrar-a', 'POST', '/v1/batches', { batchId: 'B-ROLE', supplier: 'x', cards: [f.paperCard('BADH000001', 'BADHCHIP')] }], 403, /receive batch: role registrar may not stock.receive/],
      ['no client certificate', 'anonymous', async () => ['anonymous', 'GET', '/v1/inventory', undefined], 401, /inventory: this operation needs a client certificate/],
      ['a certificate nobody registered', 'unregistered', async () => ['unregistered', 'GET', '/v1/inventory', undefined], 401, /not registered to an active principal/],
      ['a certificate from a CA nobody trusts', 'stranger', async () => ['stranger', 'GET', '/v1/inventory', undefined], 401, /not issued by a certificate authority this service trusts/],
      ['a day that does not exist', 'auditor', async () => ['auditor', 'GET', '/v1/reports/daily?date=2026-02-30', undefined], 400, /daily reconciliation: date must be a calendar date YYYY-MM-DD/],
    ])('%s', async (_name, _who, prepare, status, message) => {
      const [who, method, path, body] = await prepare();
      const before = await snapshot();
      const res = await f.call(who, method, path, body);
      expect({ status: res.status, message: res.body.message }).toEqual({ status, message: expect.stringMatching(message) });
      expect(await snapshot()).toEqual(before);
    });

    it('a batch refused for one card receives none of them', async () => {
      const [taken] = await receive('BADI', 1);
      const res = await f.call('card-centre', 'POST', '/v1/batches', { batchId: 'B-PARTIAL', supplier: 'Chip Co', cards: [f.paperCard('BADI777777', 'BADI7'), f.paperCard(taken!, 'BADI8')] });
      expect(res.status).toBe(409);
      expect((await f.call('card-centre', 'GET', '/v1/cards/BADI777777')).status).toBe(404);
      const { rows } = await f.db.query(`SELECT count(*)::int AS n FROM card_batches WHERE id = 'B-PARTIAL'`);
      expect(rows[0].n).toBe(0);
    });
  });
});
