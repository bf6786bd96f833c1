import { PkiError } from '@pki/kit';
import { createGrpcClient } from '@pki/grpc';
import { caSignerV1 } from '@pki/proto';
import { join } from 'node:path';
import { GrpcCertificateSigner } from '../../ra/src/adapters/grpc/ca-signer-client';
import type { CertificateSigner, SignedCertificate } from '../../ra/src/ports/certificate-signer';
import { startCardMgmtFixture, OFFICE, type CardMgmtFixture } from './card-mgmt-fixture';

/**
 * A replacement that fails half-way: ca-signer signs the new card's SIGN certificate and refuses
 * its KEYX certificate. Nothing of the replacement may remain: the old card's certificates stay
 * valid (no status event), the new card goes back to the office's stock, the old card is not
 * replaced. The same replacement then succeeds once ca-signer signs again.
 */
describe('a replacement that fails half-way', () => {
  let f: CardMgmtFixture;

  beforeAll(async () => {
    f = await startCardMgmtFixture();
  }, 300_000);

  afterAll(async () => {
    await f?.stop();
  });

  it('revokes no certificate and consumes no card, and the retry completes it', async () => {
    const citizen = await f.registerCitizen();
    const oldNumber = 'HALF00000001';
    const newNumber = 'HALF00000002';
    const oldCard = await f.supplyCard(oldNumber);
    const newCard = await f.supplyCard(newNumber);
    expect((await f.call('card-centre', 'POST', '/v1/batches', { batchId: 'B-HALF', supplier: 'Chip Co', cards: [oldCard.manifest, newCard.manifest] })).status).toBe(201);
    expect((await f.call('card-centre', 'POST', '/v1/assignments', { office: OFFICE, cardNumbers: [oldNumber, newNumber] })).status).toBe(200);
    expect((await f.workstation('registrar-a', oldCard, ['personalise', '--card', oldNumber, '--subscriber', citizen.subscriberId, '--birth-date', citizen.birthDate])).code).toBe(0);
    expect((await f.workstation('registrar-a', oldCard, ['hand-over', '--card', oldNumber])).code).toBe(0);

    // ra with a ca-signer client that lets SIGN through to the real ca-signer and refuses KEYX.
    const { config } = f.ra;
    const client = createGrpcClient(caSignerV1.CaSignerService, { ...config.caSigner, tls: config.tls });
    const real = new GrpcCertificateSigner(client);
    let signed = 0;
    const halfway: CertificateSigner = {
      issue: async (request, deadline) => {
        if (request.profile === 'citizen-encryption') throw new PkiError('FAILED_PRECONDITION', 'issue certificate: refused by the profile (injected)');
        const certificate = await real.issue(request, deadline);
        signed++;
        return certificate;
      },
      // ra issues a card's pair in one call: SIGN is signed, KEYX refused, and the call fails.
      issueMany: async (requests, deadline) => {
        const settled = await Promise.allSettled(requests.map((request) => halfway.issue(request, deadline)));
        const refused = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
        if (refused) throw refused.reason;
        return settled.map((s) => (s as PromiseFulfilledResult<SignedCertificate>).value);
      },
      listIssuances: (token, size) => real.listIssuances(token, size),
      issuers: () => real.issuers(),
      signValidationReceipt: (receipt) => real.signValidationReceipt(receipt),
    };
    await f.ra.restart({ signer: halfway });

    const before = {
      ra: (await f.ra.call('registrar-a', 'GET', `/v1/cards/${oldNumber}`)).body,
      statusEvents: (await f.ra.statusEvents()).length,
      cards: (await f.db.query(`SELECT card_number, state, office, replaced_by, signing_serial FROM cards WHERE card_number = ANY($1) ORDER BY card_number`, [[oldNumber, newNumber]])).rows,
    };
    const failed = await f.workstation('registrar-a', newCard, ['personalise', '--card', newNumber, '--subscriber', citizen.subscriberId, '--birth-date', citizen.birthDate, '--replaces', oldNumber]);
    expect(failed).toMatchObject({ code: 1, json: { error: 'FAILED_PRECONDITION', message: expect.stringMatching(/refused by the profile/) } });
    expect(signed).toBe(1); // half-way: one certificate was signed before the refusal
    expect({
      ra: (await f.ra.call('registrar-a', 'GET', `/v1/cards/${oldNumber}`)).body,
      statusEvents: (await f.ra.statusEvents()).length,
      cards: (await f.db.query(`SELECT card_number, state, office, replaced_by, signing_serial FROM cards WHERE card_number = ANY($1) ORDER BY card_number`, [[oldNumber, newNumber]])).rows,
    }).toEqual(before);
    expect(before.cards.map((c: { state: string }) => c.state)).toEqual(['ISSUED', 'ASSIGNED']);
    expect((before.ra as { certificates: Array<{ status: string }> }).certificates.map((c) => c.status)).toEqual(['VALID', 'VALID']);
    const personalisation = await f.db.query(`SELECT state, failure FROM personalisations WHERE card_number = $1`, [newNumber]);
    expect(personalisation.rows).toEqual([{ state: 'FAILED', failure: expect.stringMatching(/refused by the profile/) }]);
    client.close();

    // ca-signer signs again: the same chip, taken over by the failed attempt, replaces the old card
    // with fresh keys.
    await f.ra.restart();
    const retried = await f.workstation('registrar-a', newCard, ['personalise', '--card', newNumber, '--subscriber', citizen.subscriberId, '--birth-date', citizen.birthDate, '--replaces', oldNumber]);
    expect(retried.code === 0 ? retried.json : retried).toMatchObject({ card: { state: 'PERSONALISED' }, replacedCard: { state: 'REPLACED' } });
    const old = (await f.ra.call('registrar-a', 'GET', `/v1/cards/${oldNumber}`)).body as { certificates: Array<{ status: string; reason?: string }> };
    expect(old.certificates.map((c) => [c.status, c.reason])).toEqual([['REVOKED', 'superseded'], ['REVOKED', 'superseded']]);
  });

  it('the workstation waits out an unavailable ra (503, Retry-After) and finishes the same personalisation once ra is back', async () => {
    const citizen = await f.registerCitizen();
    const number = 'HALF00000003';
    const card = await f.supplyCard(number);
    expect((await f.call('card-centre', 'POST', '/v1/batches', { batchId: 'B-HALF-3', supplier: 'Chip Co', cards: [card.manifest] })).status).toBe(201);
    expect((await f.call('card-centre', 'POST', '/v1/assignments', { office: OFFICE, cardNumbers: [number] })).status).toBe(200);
    await f.ra.ra.runtime.stop();
    // registrar-b has not called card-mgmt yet: even resolving them needs ra.
    const seen = f.logs.length;
    const running = f.workstation('registrar-b', card, ['personalise', '--card', number, '--subscriber', citizen.subscriberId, '--birth-date', citizen.birthDate]);
    // ra comes back only once card-mgmt has answered the client's request with a 503 (its log says
    // so), however long the client takes to start on a loaded machine.
    const deadline = Date.now() + 90_000;
    while (!f.logs.slice(seen).some((l) => l.includes('dependency unavailable')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await f.ra.restart();
    const res = await running;
    expect(res.code === 0 ? res.json : res).toMatchObject({ card: { state: 'PERSONALISED' } });
    expect(res.stderr).toMatch(/card-mgmt answered 503 \(start personalisation: a service card-mgmt depends on is unavailable; retry in 5 s\); retrying in 5 s/);
  });

  it("follows ra: a card revoked in ra (an officer's revocation there) becomes REVOKED here, and can then be cut", async () => {
    const citizen = await f.registerCitizen();
    const number = 'HALF00000004';
    const card = await f.supplyCard(number);
    expect((await f.call('card-centre', 'POST', '/v1/batches', { batchId: 'B-HALF-4', supplier: 'Chip Co', cards: [card.manifest] })).status).toBe(201);
    expect((await f.call('card-centre', 'POST', '/v1/assignments', { office: OFFICE, cardNumbers: [number] })).status).toBe(200);
    expect((await f.workstation('registrar-a', card, ['personalise', '--card', number, '--subscriber', citizen.subscriberId, '--birth-date', citizen.birthDate])).code).toBe(0);
    expect((await f.workstation('registrar-a', card, ['hand-over', '--card', number])).code).toBe(0);
    // Revoked through ra's own REST API (no dual control in this fixture), not through card-mgmt.
    const revoked = await f.ra.call('registrar-a', 'POST', `/v1/cards/${number}/revocation`, { reason: 'keyCompromise', comment: 'card stolen' });
    expect(revoked.body).toMatchObject({ state: 'REVOKED' });
    const deadline = Date.now() + 60_000;
    let state = '';
    while (Date.now() < deadline && state !== 'REVOKED') {
      state = (await f.call('card-centre', 'GET', `/v1/cards/${number}`)).body.state as string;
      if (state !== 'REVOKED') await new Promise((r) => setTimeout(r, 250));
    }
    expect(state).toBe('REVOKED');
    const history = (await f.call('card-centre', 'GET', `/v1/cards/${number}`)).body.history as Array<{ action: string; actor: string; reason?: string }>;
    expect(history.at(-1)).toEqual({ action: 'revoke', fromState: 'ISSUED', toState: 'REVOKED', fromOffice: OFFICE, toOffice: OFFICE, actor: 'ra', reason: 'keyCompromise', at: expect.any(String) });
    expect((await f.call('card-centre', 'POST', `/v1/cards/${number}/destruction`, { reason: 'card cut after revocation' })).body).toMatchObject({ state: 'DESTROYED' });
  });

  it('resumes a personalisation whose answer from ra never came back: the same issuance, written to the card', async () => {
    const citizen = await f.registerCitizen();
    const number = 'HALF00000005';
    const card = await f.supplyCard(number);
    expect((await f.call('card-centre', 'POST', '/v1/batches', { batchId: 'B-HALF-5', supplier: 'Chip Co', cards: [card.manifest] })).status).toBe(201);
    expect((await f.call('card-centre', 'POST', '/v1/assignments', { office: OFFICE, cardNumbers: [number] })).status).toBe(200);
    // ra "unavailable" for issuance only, and a client that does not wait.
    await f.restart({ wrapRa: (ra) => ({ ...bind(ra), issueCardCertificates: async () => { throw new PkiError('UNAVAILABLE', 'ra is unavailable', { details: { dependency: 'ra' } }); } }) });
    const interrupted = await f.workstation('registrar-a', card, ['personalise', '--card', number, '--subscriber', citizen.subscriberId, '--birth-date', citizen.birthDate], { PKI_WORKSTATION_RETRY_SECONDS: '0' });
    expect(interrupted).toMatchObject({ code: 1, json: { error: 'UNAVAILABLE' } });
    const { rows } = await f.db.query(`SELECT id, state FROM personalisations WHERE card_number = $1`, [number]);
    expect(rows).toEqual([{ id: expect.any(String), state: 'ISSUING' }]);
    expect((await f.call('registrar-a', 'GET', `/v1/cards/${number}`)).body.state).toBe('PERSONALISING');

    await f.restart();
    const out = join(card.dir, 'out');
    // Another officer of the office resumes it; ra issues once, for the officer who started it.
    const resumed = await f.workstation('registrar-b', card, ['personalise', '--card', number, '--resume', rows[0].id, '--birth-date', citizen.birthDate, '--out', out]);
    expect(resumed.code === 0 ? resumed.json : resumed).toMatchObject({ card: { state: 'PERSONALISED' } });
    const shown = await f.workstation('registrar-a', card, ['show', '--card', number], { PKI_CARD_PIN: citizen.birthDate.replaceAll('-', '') });
    expect(shown.json).toMatchObject({ SIGN: { certificateMatchesKey: true }, KEYX: { certificateMatchesKey: true } });
    const ra = (await f.ra.call('registrar-a', 'GET', `/v1/cards/${number}`)).body as { certificates: Array<{ status: string }> };
    expect(ra.certificates.map((c) => c.status)).toEqual(['VALID', 'VALID']);
    const applications = await f.ra.db.query(`SELECT state FROM applications WHERE card_number = $1`, [number]);
    expect(applications.rows).toEqual([{ state: 'ISSUED' }]);
  });
});

/** The methods of a port object, bound, so that one of them can be replaced in a spread. */
function bind<T extends object>(target: T): T {
  const out = {} as T;
  for (const key of Object.getOwnPropertyNames(Object.getPrototypeOf(target)) as Array<keyof T>) {
    const value = target[key];
    if (typeof value === 'function' && key !== 'constructor') out[key] = (value as (...args: unknown[]) => unknown).bind(target) as T[keyof T];
  }
  return out;
}
