import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bindingMessage } from '../src/domain/mobile';
import { startCardMgmtFixture, OFFICE, type CardMgmtFixture } from './card-mgmt-fixture';

/**
 * Mobile credentials end to end: phones (P-256 keys) bound through SoftHSM cards by the
 * workstation client, certified by the real ca-signer's citizen-mobile profile through ra,
 * checked by OpenSSL; at most 3 per person; suspended and revoked one by one.
 */
describe('mobile credentials', () => {
  let f: CardMgmtFixture;
  let alice: { subscriberId: string; subscriberCode: string; birthDate: string };
  let bob: { subscriberId: string; subscriberCode: string; birthDate: string };
  let aliceCard: { env: Record<string, string>; dir: string };
  let bobCard: { env: Record<string, string>; dir: string };
  const aliceNumber = 'MOBI00000001';
  const bobNumber = 'MOBI00000002';
  const enrolled: Array<{ deviceId: string; serialHex: string }> = [];

  beforeAll(async () => {
    f = await startCardMgmtFixture();
    alice = await f.registerCitizen();
    bob = await f.registerCitizen();
    aliceCard = await f.supplyCard(aliceNumber);
    bobCard = await f.supplyCard(bobNumber);
    const manifests = [aliceCard, bobCard].map((c) => (c as Awaited<ReturnType<CardMgmtFixture['supplyCard']>>).manifest);
    expect((await f.call('card-centre', 'POST', '/v1/batches', { batchId: 'B-MOBILE', supplier: 'Chip Co', cards: manifests })).status).toBe(201);
    expect((await f.call('card-centre', 'POST', '/v1/assignments', { office: OFFICE, cardNumbers: [aliceNumber, bobNumber] })).status).toBe(200);
    for (const [who, number, card] of [[alice, aliceNumber, aliceCard], [bob, bobNumber, bobCard]] as const) {
      expect((await f.workstation('registrar-a', card, ['personalise', '--card', number, '--subscriber', who.subscriberId, '--birth-date', who.birthDate])).code).toBe(0);
      expect((await f.workstation('registrar-a', card, ['hand-over', '--card', number])).code).toBe(0);
    }
  }, 300_000);

  afterAll(async () => {
    await f?.stop();
  });

  const pin = (who: { birthDate: string }) => who.birthDate.replaceAll('-', '');
  const phone = (name: string) => {
    const file = join(aliceCard.dir, `${name}.key.pem`);
    writeFileSync(file, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }));
    return file;
  };
  const enrol = (name: string, code = alice.subscriberCode) =>
    f.workstation('anonymous', aliceCard, ['mobile-enrol', '--card', aliceNumber, '--device-key', phone(name), '--device-name', name, '--out', join(aliceCard.dir, 'mobile')], { PKI_CARD_PIN: pin(alice), PKI_SUBSCRIBER_CODE: code });
  const raStatus = async (serial: string) => ((await f.ra.call('registrar-a', 'GET', `/v1/certificates/${serial}`)).body as { status: string; reason?: string; profile: string; keySlot: string });
  const state = async () => ({
    devices: (await f.db.query(`SELECT id, state, serial_hex FROM devices ORDER BY created_at, id`)).rows,
    raCertificates: (await f.ra.db.query(`SELECT serial_hex, status FROM certificates ORDER BY serial_hex`)).rows,
  });

  it('enrols up to 3 phones, each with its own certificate from the mobile profile, verified by OpenSSL', async () => {
    for (const name of ['phone-1', 'phone-2', 'phone-3']) {
      const res = await enrol(name);
      expect(res.code === 0 ? res.json : res).toMatchObject({ cardNumber: aliceNumber, name, state: 'ACTIVE', serialHex: expect.stringMatching(/^[0-9a-f]+$/) });
      enrolled.push({ deviceId: res.json.deviceId as string, serialHex: res.json.serialHex as string });
      const dir = join(aliceCard.dir, 'mobile');
      const chain = readFileSync(join(dir, `${res.json.deviceId as string}-chain.pem`), 'utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g)!;
      writeFileSync(join(dir, 'root.pem'), chain[chain.length - 1]!);
      writeFileSync(join(dir, 'intermediates.pem'), chain.slice(0, -1).join(''));
      const certFile = join(dir, `${res.json.deviceId as string}.pem`);
      expect(execFileSync('openssl', ['verify', '-x509_strict', '-CAfile', join(dir, 'root.pem'), '-untrusted', join(dir, 'intermediates.pem'), certFile], { encoding: 'utf8' })).toMatch(/: OK/);
      const text = execFileSync('openssl', ['x509', '-in', certFile, '-noout', '-text'], { encoding: 'utf8' });
      expect(text).toMatch(/ASN1 OID: prime256v1/);
      expect(text).toMatch(/Digital Signature/);
      expect(await raStatus(res.json.serialHex as string)).toMatchObject({ status: 'VALID', profile: 'citizen-mobile', keySlot: 'MOBILE' });
    }
    const listed = await f.call('registrar-a', 'GET', `/v1/cards/${aliceNumber}/devices`);
    expect((listed.body.devices as Array<{ name: string; state: string }>).map((d) => [d.name, d.state])).toEqual([['phone-1', 'ACTIVE'], ['phone-2', 'ACTIVE'], ['phone-3', 'ACTIVE']]);
  });

  it('refuses a 4th device, changing nothing', async () => {
    const before = await state();
    const res = await enrol('phone-4');
    expect(res).toMatchObject({ code: 1, json: { error: 'FAILED_PRECONDITION', message: 'enrol device: the card holder already has 3 mobile devices, the most allowed; revoke one first' } });
    expect(await state()).toEqual(before);
  });

  it('refuses a binding signed by another card, and a wrong subscriber code (which counts towards ra\'s lock), changing nothing', async () => {
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const spki = key.publicKey.export({ format: 'der', type: 'spki' });
    const challenge = await f.call('anonymous', 'POST', '/v1/mobile/challenges', { cardNumber: aliceNumber });
    expect(challenge.status).toBe(201);
    const message = bindingMessage(Buffer.from(challenge.body.challenge as string, 'base64'), aliceNumber, spki);
    const file = join(bobCard.dir, 'binding.bin');
    writeFileSync(file, message);
    const bySign = await f.workstation('anonymous', bobCard, ['sign', '--card', bobNumber, '--in', file], { PKI_CARD_PIN: pin(bob) });
    expect(bySign.code).toBe(0);
    const before = await state();
    const body = { challengeId: challenge.body.challengeId, cardNumber: aliceNumber, deviceName: 'borrowed', devicePublicKey: spki.toString('base64'), deviceSignature: sign('sha256', message, key.privateKey).toString('base64'), cardSignature: bySign.json.signature, subscriberCode: alice.subscriberCode };
    const res = await f.call('anonymous', 'POST', '/v1/mobile/devices', body);
    expect({ status: res.status, message: res.body.message }).toEqual({ status: 400, message: `enrol device: cardSignature is not by the SIGN key of card ${aliceNumber}: the binding must be signed with this card` });
    expect(await state()).toEqual(before);

    // Revoke one device first so that the limit is not what refuses the next one.
    expect((await f.call('registrar-a', 'POST', `/v1/devices/${enrolled[2]!.deviceId}/revocation`)).body).toMatchObject({ state: 'REVOKED' });
    const failures = async () => (await f.ra.db.query(`SELECT code_failures FROM subscribers WHERE id = $1`, [alice.subscriberId])).rows[0].code_failures as number;
    const failuresBefore = await failures();
    const beforeWrong = await state();
    const wrong = await enrol('phone-5', 'not-the-code-1');
    expect(wrong).toMatchObject({ code: 1, json: { error: 'UNAUTHENTICATED', message: 'enrol device: the subscriber code is wrong' } });
    expect(await failures()).toBe(failuresBefore + 1);
    expect(await state()).toEqual(beforeWrong);
  });

  it('suspends and revokes devices one by one: the card and the other devices are untouched, and a revoked device frees its place', async () => {
    // phone-3 was revoked above: its certificate is revoked in ra, the others are valid.
    expect(await raStatus(enrolled[2]!.serialHex)).toMatchObject({ status: 'REVOKED', reason: 'cessationOfOperation' });
    const suspended = await f.call('registrar-a', 'POST', `/v1/devices/${enrolled[0]!.deviceId}/suspension`);
    expect(suspended.body).toMatchObject({ state: 'SUSPENDED' });
    expect(await raStatus(enrolled[0]!.serialHex)).toMatchObject({ status: 'SUSPENDED', reason: 'certificateHold' });
    expect(await raStatus(enrolled[1]!.serialHex)).toMatchObject({ status: 'VALID' });
    const card = (await f.ra.call('registrar-a', 'GET', `/v1/cards/${aliceNumber}`)).body as { status: string; certificates: Array<{ keySlot: string; status: string }> };
    expect(card.certificates.filter((c) => c.keySlot !== 'MOBILE').map((c) => c.status)).toEqual(['VALID', 'VALID']);
    const again = await f.call('registrar-a', 'POST', `/v1/devices/${enrolled[2]!.deviceId}/revocation`);
    expect({ status: again.status, message: again.body.message }).toEqual({ status: 412, message: `revoke device: device ${enrolled[2]!.deviceId} is REVOKED; revoke needs a device that is ACTIVE or SUSPENDED` });
    // The revoked phone's place is free again.
    const fourth = await enrol('phone-6');
    expect(fourth.code === 0 ? fourth.json : fourth).toMatchObject({ state: 'ACTIVE' });
    const statuses = (await f.ra.statusEvents()).filter((e) => e.serialHex === enrolled[0]!.serialHex).map((e) => e.status);
    expect(statuses.length).toBe(2); // VALID at issuance, SUSPENDED
  });

  it("lets the citizen report their card lost themselves: a wrong code changes nothing and counts towards ra's lock; the right one suspends at once", async () => {
    const failures = async () => (await f.ra.db.query(`SELECT code_failures FROM subscribers WHERE id = $1`, [bob.subscriberId])).rows[0].code_failures as number;
    const before = { card: (await f.call('registrar-a', 'GET', `/v1/cards/${bobNumber}`)).body.state, ra: ((await f.ra.call('registrar-a', 'GET', `/v1/cards/${bobNumber}`)).body as { status: string }).status, failures: await failures() };
    expect(before).toMatchObject({ card: 'ISSUED', ra: 'ISSUED' });
    const wrong = await f.call('anonymous', 'POST', '/v1/self-service/loss', { cardNumber: bobNumber, subscriberCode: 'not-the-code-9' });
    expect({ status: wrong.status, body: wrong.body }).toEqual({ status: 401, body: { error: 'UNAUTHENTICATED', message: 'self-service loss: the card number or the subscriber code is wrong' } });
    expect({ card: (await f.call('registrar-a', 'GET', `/v1/cards/${bobNumber}`)).body.state, ra: ((await f.ra.call('registrar-a', 'GET', `/v1/cards/${bobNumber}`)).body as { status: string }).status, failures: await failures() }).toEqual({ ...before, failures: before.failures + 1 });
    const lost = await f.call('anonymous', 'POST', '/v1/self-service/loss', { cardNumber: bobNumber, subscriberCode: bob.subscriberCode });
    expect({ status: lost.status, body: lost.body }).toEqual({ status: 200, body: { cardNumber: bobNumber, state: 'LOST' } });
    const ra = (await f.ra.call('registrar-a', 'GET', `/v1/cards/${bobNumber}`)).body as { status: string; certificates: Array<{ status: string }> };
    expect({ status: ra.status, certificates: ra.certificates.map((c) => c.status) }).toEqual({ status: 'SUSPENDED', certificates: ['SUSPENDED', 'SUSPENDED'] });
    const history = (await f.call('registrar-a', 'GET', `/v1/cards/${bobNumber}`)).body.history as Array<{ action: string; actor: string }>;
    expect(history.at(-1)).toMatchObject({ action: 'report-lost', actor: `card:${bobNumber}` });
  });
});
