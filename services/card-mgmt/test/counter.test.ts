import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startCardMgmtFixture, OFFICE, type CardMgmtFixture } from './card-mgmt-fixture';

/**
 * The counter end to end: SoftHSM tokens as cards (each its own token folder, never the CA's),
 * the workstation client as a separate process talking PKCS#11 to the card and HTTPS to
 * card-mgmt, card-mgmt asking ra over gRPC, ra asking the real ca-signer; status events through
 * the Kafka broker's outbox; OpenSSL checks every certificate against the CA chain.
 */
describe('the counter: personalisation, activation, PIN unlock, loss and replacement', () => {
  let f: CardMgmtFixture;
  let citizen: { subscriberId: string; subscriberCode: string; birthDate: string };
  const first = 'CNTR00000001';
  const second = 'CNTR00000002';
  let firstCard: { env: Record<string, string>; dir: string };
  let secondCard: { env: Record<string, string>; dir: string };
  const newPin = '246813';
  const unlockedPin = '975310';

  beforeAll(async () => {
    f = await startCardMgmtFixture();
    citizen = await f.registerCitizen();
    firstCard = await f.supplyCard(first);
    secondCard = await f.supplyCard(second);
    const supplied = [firstCard, secondCard] as Array<Awaited<ReturnType<CardMgmtFixture['supplyCard']>>>;
    expect((await f.call('card-centre', 'POST', '/v1/batches', { batchId: 'B-COUNTER', supplier: 'Chip Co', cards: supplied.map((s) => s.manifest) })).status).toBe(201);
    expect((await f.call('card-centre', 'POST', '/v1/assignments', { office: OFFICE, cardNumbers: [first, second] })).status).toBe(200);
  }, 300_000);

  afterAll(async () => {
    await f?.stop();
  });

  const initialPin = () => citizen.birthDate.replaceAll('-', '');

  function opensslVerify(dir: string, cardNumber: string, slot: 'SIGN' | 'KEYX'): string {
    const chain = readFileSync(join(dir, `${cardNumber}-${slot}-chain.pem`), 'utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g)!;
    const root = join(dir, 'root.pem');
    const untrusted = join(dir, 'intermediates.pem');
    writeFileSync(root, chain[chain.length - 1]!);
    writeFileSync(untrusted, chain.slice(0, -1).join(''));
    return execFileSync('openssl', ['verify', '-x509_strict', '-CAfile', root, '-untrusted', untrusted, join(dir, `${cardNumber}-${slot}.pem`)], { encoding: 'utf8' });
  }

  async function raCard(cardNumber: string) {
    const res = await f.ra.call('registrar-a', 'GET', `/v1/cards/${cardNumber}`);
    return res.body as { status: string; certificates: Array<{ serialHex: string; keySlot: string; status: string; reason?: string }> };
  }

  it('personalises a card: both certificates written to the card, verified by OpenSSL against the chain, keys generated on the card and never extractable', async () => {
    const out = join(firstCard.dir, 'out');
    const res = await f.workstation('registrar-a', firstCard, ['personalise', '--card', first, '--subscriber', citizen.subscriberId, '--birth-date', citizen.birthDate, '--out', out]);
    expect({ code: res.code, error: res.json.error, message: res.json.message, stderr: res.code === 0 ? '' : res.stderr }).toEqual({ code: 0, error: undefined, message: undefined, stderr: '' });
    expect(res.json.card).toMatchObject({ cardNumber: first, state: 'PERSONALISED', office: OFFICE, subscriberId: citizen.subscriberId });

    for (const slot of ['SIGN', 'KEYX'] as const) {
      expect(opensslVerify(out, first, slot)).toMatch(/: OK/);
      const text = execFileSync('openssl', ['x509', '-in', join(out, `${first}-${slot}.pem`), '-noout', '-text'], { encoding: 'utf8' });
      expect(text).toMatch(/Public-Key: \(2048 bit\)/);
      expect(text).toMatch(slot === 'SIGN' ? /Digital Signature/ : /Key Encipherment/);
    }
    // What the card holds, read back over PKCS#11 by a fresh workstation process.
    const shown = await f.workstation('registrar-a', firstCard, ['show', '--card', first], { PKI_CARD_PIN: initialPin() });
    for (const slot of ['SIGN', 'KEYX'] as const) {
      expect(shown.json[slot]).toMatchObject({
        certificateMatchesKey: true,
        privateKey: { sensitive: true, extractable: false, alwaysSensitive: true, neverExtractable: true, local: true },
      });
    }
    const ra = await raCard(first);
    expect(ra.status).toBe('ISSUED');
    expect(ra.certificates.map((c) => [c.keySlot, c.status]).sort()).toEqual([['KEYX', 'VALID'], ['SIGN', 'VALID']]);
    expect(ra.certificates.map((c) => c.serialHex).sort()).toEqual((res.json.certificates as Array<{ serialHex: string }>).map((c) => c.serialHex).sort());
    const statuses = (await f.ra.statusEvents()).filter((e) => ra.certificates.some((c) => c.serialHex === e.serialHex));
    expect(statuses).toHaveLength(2);
  });

  it('hands the card over and activates it once the citizen has replaced the initial PIN', async () => {
    expect((await f.workstation('registrar-a', firstCard, ['hand-over', '--card', first])).json).toMatchObject({ state: 'ISSUED' });
    const activated = await f.workstation('registrar-a', firstCard, ['activate', '--card', first], { PKI_CARD_PIN: initialPin(), PKI_CARD_NEW_PIN: newPin });
    expect(activated).toMatchObject({ code: 0, json: { state: 'ACTIVATED' } });
    expect((await raCard(first)).status).toBe('ACTIVE');
    expect((await f.workstation('registrar-a', firstCard, ['show', '--card', first], { PKI_CARD_PIN: initialPin() })).json.pinWorks).toBe(false);
    expect((await f.workstation('registrar-a', firstCard, ['show', '--card', first], { PKI_CARD_PIN: newPin })).json.pinWorks).toBe(true);
  });

  it('unlocks the PIN with the subscriber code: a wrong code changes nothing and counts towards ra\'s lock; then the old PIN fails and the new one works', async () => {
    const failuresBefore = await f.ra.db.query(`SELECT code_failures FROM subscribers WHERE id = $1`, [citizen.subscriberId]);
    const wrong = await f.workstation('registrar-a', firstCard, ['unlock', '--card', first], { PKI_SUBSCRIBER_CODE: 'not-the-code-1', PKI_CARD_NEW_PIN: unlockedPin });
    expect(wrong).toMatchObject({ code: 1, json: { error: 'UNAUTHENTICATED', message: 'pin unlock: the subscriber code is wrong' } });
    const failuresAfter = await f.ra.db.query(`SELECT code_failures FROM subscribers WHERE id = $1`, [citizen.subscriberId]);
    expect(failuresAfter.rows[0].code_failures).toBe(failuresBefore.rows[0].code_failures + 1);
    expect((await f.workstation('registrar-a', firstCard, ['show', '--card', first], { PKI_CARD_PIN: newPin })).json.pinWorks).toBe(true);

    const unlocked = await f.workstation('registrar-a', firstCard, ['unlock', '--card', first], { PKI_SUBSCRIBER_CODE: citizen.subscriberCode, PKI_CARD_NEW_PIN: unlockedPin });
    expect(unlocked).toMatchObject({ code: 0, json: { unlocked: true } });
    expect((await f.workstation('registrar-a', firstCard, ['show', '--card', first], { PKI_CARD_PIN: newPin })).json.pinWorks).toBe(false);
    expect((await f.workstation('registrar-a', firstCard, ['show', '--card', first], { PKI_CARD_PIN: unlockedPin })).json.pinWorks).toBe(true);
    // A right code clears ra's count of wrong ones.
    expect((await f.ra.db.query(`SELECT code_failures FROM subscribers WHERE id = $1`, [citizen.subscriberId])).rows[0].code_failures).toBe(0);
    const audit = (await f.auditEvents()).filter((e) => e.objects.some((o) => o.id === first)).map((e) => `${e.action}:${e.outcome}`);
    expect(audit).toEqual(expect.arrayContaining(['card.pin-unlock:3', 'card.pin-unlock:2', 'card.admin-secret.release:2']));
  });

  it('reports the card lost: ra suspends both certificates at once', async () => {
    const lost = await f.workstation('registrar-a', firstCard, ['report-lost', '--card', first]);
    expect(lost).toMatchObject({ code: 0, json: { state: 'LOST' } });
    const ra = await raCard(first);
    expect(ra.status).toBe('SUSPENDED');
    expect(ra.certificates.map((c) => [c.status, c.reason])).toEqual([['SUSPENDED', 'certificateHold'], ['SUSPENDED', 'certificateHold']]);
  });

  it('refuses a CSR whose key is not the card\'s, changing nothing', async () => {
    const transportKey = generateKeyPairSync('x25519').publicKey.export({ format: 'der', type: 'spki' }).toString('base64');
    const started = await f.call('registrar-a', 'POST', '/v1/personalisations', { cardNumber: second, subscriberId: citizen.subscriberId, kind: 'REPLACEMENT', replacesCard: first, transportKey });
    expect(started.status).toBe(201);
    // Keys made in software with their own "attestations": the chip never saw them.
    const csr = (name: string) => f.ra.csr(`not-on-card-${name}`);
    const forged = (name: string) => {
      // The software key "attests" itself over the challenge: not the chip's attestation key.
      const key = readFileSync(join(f.ra.dir, `not-on-card-${name}.card.key`));
      return sign('sha256', Buffer.from(started.body.challenge as string, 'base64'), key).toString('base64');
    };
    const signingCsr = csr('sign');
    const encryptionCsr = csr('keyx');
    const tokenSerial = (await f.workstation('registrar-a', secondCard, ['show', '--card', second])).json.tokenSerial as string;
    const before = { ra: await raCard(first), cards: (await f.db.query(`SELECT card_number, state FROM cards ORDER BY card_number`)).rows };
    const res = await f.call('registrar-a', 'POST', `/v1/personalisations/${started.body.personalisationId}/certificates`, { signingCsr, encryptionCsr, signingAttestation: forged('sign'), encryptionAttestation: forged('keyx'), tokenSerial });
    expect(res.status).toBe(400);
    expect(res.body.message).toBe(`complete personalisation: signingCsr's key is not a key of card ${second}: the card's chip did not attest it for this personalisation`);
    expect({ ra: await raCard(first), cards: (await f.db.query(`SELECT card_number, state FROM cards ORDER BY card_number`)).rows }).toEqual(before);
    // The officer abandons it: the card is back in the office's stock.
    expect((await f.call('registrar-a', 'POST', `/v1/personalisations/${started.body.personalisationId}/cancellation`)).body).toMatchObject({ cardNumber: second, state: 'ASSIGNED' });
  });

  it('never logs or audits the subscriber code, the PINs or the birth date', async () => {
    const secrets = [citizen.subscriberCode, initialPin(), newPin, unlockedPin, citizen.birthDate];
    const audit = JSON.stringify((await f.auditEvents()).map((e) => ({ objects: e.objects, reason: e.reason, attributes: e.attributes })));
    for (const secret of secrets) {
      expect({ secret, inCardMgmtLogs: f.logs.some((l) => l.includes(secret)), inAudit: audit.includes(secret) }).toEqual({ secret, inCardMgmtLogs: false, inAudit: false });
    }
  });

  it('replaces the lost card: the new card is personalised and the old certificates are revoked as superseded in the same operation', async () => {
    const out = join(secondCard.dir, 'out');
    const res = await f.workstation('registrar-a', secondCard, ['personalise', '--card', second, '--subscriber', citizen.subscriberId, '--birth-date', citizen.birthDate, '--replaces', first, '--out', out]);
    expect(res).toMatchObject({ code: 0, json: { card: { state: 'PERSONALISED', replacesCard: first }, replacedCard: { cardNumber: first, state: 'REPLACED', replacedBy: second } } });
    for (const slot of ['SIGN', 'KEYX'] as const) expect(opensslVerify(out, second, slot)).toMatch(/: OK/);
    const old = await raCard(first);
    expect(old.status).toBe('REVOKED');
    expect(old.certificates.map((c) => [c.status, c.reason])).toEqual([['REVOKED', 'superseded'], ['REVOKED', 'superseded']]);
    const fresh = await raCard(second);
    expect(fresh.certificates.map((c) => c.status)).toEqual(['VALID', 'VALID']);
  });
});
