import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startRaFixture, type ApiResponse, type RaFixture } from './ra-fixture';
import { cardNumber, issueCard, person, register, registrySnapshot, type IssuedCard, type Person } from './lifecycle-helpers';

// Every bad request gets a clear error, with the right status, and changes nothing: the registry,
// the outbox and the self-service counters are compared before and after each one.
let f: RaFixture;
let citizen: Person;
let subscriberId: string;
let active: IssuedCard;
let revoked: IssuedCard;
let pendingApproval: string;
/** An application waiting for approval at office 63000000. */
let submitted: string;
/** People with no card, for the application cases (registered beforehand, so the snapshot compares exactly). */
const spare: string[] = [];

beforeAll(async () => {
  f = await startRaFixture({ configure: (c) => Object.assign((c.http as Record<string, unknown>), { rateLimits: { publicPerMinute: 20 } }) });
  citizen = person();
  subscriberId = await register(f, citizen);
  active = await issueCard(f, subscriberId);
  await f.call('registrar-a', 'POST', `/v1/cards/${active.cardNumber}/activation`, {});
  revoked = await issueCard(f, await register(f, person()));
  const request = await f.call('registrar-a', 'POST', `/v1/cards/${revoked.cardNumber}/revocation`, { reason: 'card-cut' });
  await f.call('registrar-b', 'POST', `/v1/approvals/${request.body.approvalRequestId}/decision`, { decision: 'approve' });
  pendingApproval = (await f.call('registrar-a', 'POST', `/v1/cards/${active.cardNumber}/revocation`, { reason: 'keyCompromise' })).body.approvalRequestId as string;
  for (let i = 0; i < 4; i++) spare.push(await register(f, person()));
  const waiting = cardNumber();
  submitted = (await f.call('registrar-a', 'POST', '/v1/applications', { subscriberId: await register(f, person()), cardNumber: waiting, kind: 'NEW', signingCsr: f.csr(`${waiting}-s`), encryptionCsr: f.csr(`${waiting}-k`) })).body.id as string;
}, 120_000);
afterAll(async () => {
  await f?.stop();
});

interface Case {
  name: string;
  request: () => Promise<ApiResponse>;
  status: number;
  error: string;
  /** Lazily, since some name objects made in beforeAll. */
  message: string | RegExp | (() => string);
}

const validSubscriber = () => ({ ...person(), nationalId: person().nationalId });

const cases: Case[] = [
  {
    name: 'a national ID with a wrong check digit',
    request: () => f.call('registrar-a', 'POST', '/v1/subscribers', { ...validSubscriber(), nationalId: 'A123456788' }),
    status: 400, error: 'INVALID_ARGUMENT', message: 'register subscriber: nationalId fails its check digit',
  },
  {
    name: 'a person registered twice',
    request: () => f.call('registrar-a', 'POST', '/v1/subscribers', { ...citizen }),
    status: 409, error: 'ALREADY_EXISTS', message: /^register subscriber: a subscriber with this national ID is already registered as /,
  },
  {
    name: 'a duplicate application (the subscriber holds a live card)',
    request: () => f.call('registrar-a', 'POST', '/v1/applications', { subscriberId, cardNumber: cardNumber(), kind: 'NEW', signingCsr: f.csr('dup-1-s'), encryptionCsr: f.csr('dup-1-k') }),
    status: 409, error: 'CONFLICT', message: /^create application: duplicate application: subscriber .* already holds card /,
  },
  {
    name: 'no credentials at all',
    request: () => f.call('anonymous', 'POST', '/v1/cards/TP00000000000001/suspension', {}),
    status: 401, error: 'UNAUTHENTICATED', message: 'suspend card: this operation needs a client certificate (mutual TLS)',
  },
  {
    name: 'a certificate from a CA ra does not trust (with a registered officer\'s name in it)',
    request: () => f.call('stranger', 'POST', `/v1/cards/${active.cardNumber}/suspension`, {}),
    status: 401, error: 'UNAUTHENTICATED', message: 'suspend card: the client certificate is not issued by a certificate authority this service trusts',
  },
  {
    name: 'a trusted certificate registered to nobody',
    request: () => f.call('unregistered', 'GET', '/v1/me'),
    status: 401, error: 'UNAUTHENTICATED', message: 'who am I: the client certificate is not registered to an active officer or system',
  },
  {
    name: 'another office\'s officer reading an application',
    request: () => f.call('registrar-x', 'GET', `/v1/applications/${active.applicationId}`),
    status: 403, error: 'PERMISSION_DENIED', message: () => `get application: application ${active.applicationId} belongs to office 63000000, not to office 64000000`,
  },
  {
    name: 'another office\'s officer approving an application',
    request: () => f.call('registrar-x', 'POST', `/v1/applications/${submitted}/approval`),
    status: 403, error: 'PERMISSION_DENIED', message: () => `approve application: application ${submitted} belongs to office 63000000, not to office 64000000`,
  },
  {
    name: 'another office\'s officer deciding an approval request',
    request: () => f.call('registrar-x', 'POST', `/v1/approvals/${pendingApproval}/decision`, { decision: 'approve' }),
    status: 403, error: 'PERMISSION_DENIED', message: /belongs to office 63000000, not to office 64000000$/,
  },
  {
    name: 'a role that may not do the operation (an auditor revoking)',
    request: () => f.call('auditor', 'POST', `/v1/cards/${active.cardNumber}/revocation`, { reason: 'keyCompromise' }),
    status: 403, error: 'PERMISSION_DENIED', message: 'revoke card: role auditor may not card.revoke',
  },
  {
    name: 'an officer calling the household-registration API',
    request: () => f.call('registrar-a', 'POST', '/v1/household-events', { eventId: 'x1', kind: 'DEATH', nationalId: citizen.nationalId, occurredAt: new Date().toISOString() }),
    status: 403, error: 'PERMISSION_DENIED', message: 'household event: an officer may not call this operation',
  },
  {
    name: 'a wrong subscriber code',
    request: () => f.call('anonymous', 'POST', '/v1/self-service/suspension', { cardNumber: active.cardNumber, subscriberCode: 'not-the-code-1' }),
    status: 401, error: 'UNAUTHENTICATED', message: 'self-service suspend: the card number or the subscriber code is wrong',
  },
  {
    name: 'suspending a revoked card',
    request: () => f.call('registrar-a', 'POST', `/v1/cards/${revoked.cardNumber}/suspension`, {}),
    status: 412, error: 'FAILED_PRECONDITION', message: () => `suspend card: card ${revoked.cardNumber} is REVOKED; only a card that is ISSUED or ACTIVE can be suspended`,
  },
  {
    name: 'resuming a card that is not suspended',
    request: () => f.call('registrar-a', 'POST', `/v1/cards/${active.cardNumber}/resumption`, {}),
    status: 412, error: 'FAILED_PRECONDITION', message: () => `resume card: card ${active.cardNumber} is ACTIVE; only a card that is SUSPENDED can be resumed`,
  },
  {
    name: 'approval by the officer who requested it',
    request: () => f.call('registrar-a', 'POST', `/v1/approvals/${pendingApproval}/decision`, { decision: 'approve' }),
    status: 403, error: 'PERMISSION_DENIED', message: () => `approve request: officer registrar-a filed approval request ${pendingApproval} and cannot decide it; a second officer must (dual control)`,
  },
  {
    name: 'a request without an idempotency key',
    request: () => f.call('registrar-a', 'POST', `/v1/cards/${active.cardNumber}/suspension`, {}, null),
    status: 400, error: 'INVALID_ARGUMENT', message: "suspend card: headers must have required property 'idempotency-key'",
  },
  {
    name: 'an idempotency key too short to be unique',
    request: () => f.call('registrar-a', 'POST', `/v1/cards/${active.cardNumber}/suspension`, {}, 'k1'),
    status: 400, error: 'INVALID_ARGUMENT', message: /^suspend card: headers\/idempotency-key must NOT have fewer than 8 characters$/,
  },
  {
    name: 'a body that is not JSON',
    request: () => f.call('registrar-a', 'POST', '/v1/subscribers', '{"nationalId": '),
    status: 400, error: 'INVALID_ARGUMENT', message: /^register subscriber: /,
  },
  {
    name: 'a field the API does not know (say, a national ID where none belongs)',
    request: () => f.call('registrar-a', 'POST', `/v1/cards/${active.cardNumber}/suspension`, { nationalId: citizen.nationalId }),
    status: 400, error: 'INVALID_ARGUMENT', message: 'suspend card: body must NOT have additional properties',
  },
  {
    name: 'a CSR whose signature does not verify (no proof of possession)',
    request: async () => f.call('registrar-a', 'POST', '/v1/applications', { subscriberId: spare[0], cardNumber: cardNumber(), kind: 'NEW', signingCsr: tamperedCsr(), encryptionCsr: f.csr('tamper-k') }),
    status: 400, error: 'INVALID_ARGUMENT', message: "create application: signingCsr's signature does not verify with its own key (no proof of possession)",
  },
  {
    name: 'a card key that is not RSA-2048',
    request: async () => f.call('registrar-a', 'POST', '/v1/applications', { subscriberId: spare[1], cardNumber: cardNumber(), kind: 'NEW', signingCsr: f.csr('small-s', 1024), encryptionCsr: f.csr('small-k') }),
    status: 400, error: 'INVALID_ARGUMENT', message: "create application: signingCsr holds a RSA-1024 key; a card's keys are RSA-2048",
  },
  {
    name: 'one key for both of the card\'s key pairs',
    request: async () => {
      const csr = f.csr('same');
      return f.call('registrar-a', 'POST', '/v1/applications', { subscriberId: spare[2], cardNumber: cardNumber(), kind: 'NEW', signingCsr: csr, encryptionCsr: csr });
    },
    status: 400, error: 'INVALID_ARGUMENT', message: 'create application: the signing and encryption keys are the same key; a card has two key pairs',
  },
  {
    name: 'a key already certified on another card',
    request: async () => f.call('registrar-a', 'POST', '/v1/applications', { subscriberId: spare[3], cardNumber: cardNumber(), kind: 'NEW', signingCsr: readFileSync(join(f.dir, `${active.cardNumber}-sign.card.csr`), 'utf8'), encryptionCsr: f.csr('reuse-k') }),
    status: 409, error: 'CONFLICT', message: 'create application: a public key of these requests is already certified or applied for',
  },
  {
    name: 'a card number in the wrong format',
    request: () => f.call('registrar-a', 'POST', '/v1/cards/tp-1/suspension', {}),
    status: 400, error: 'INVALID_ARGUMENT', message: /^suspend card: params\/cardNumber must match pattern/,
  },
  {
    name: 'a card that does not exist',
    request: () => f.call('registrar-a', 'POST', '/v1/cards/TPNOSUCHCARD0000/suspension', {}),
    status: 404, error: 'NOT_FOUND', message: 'suspend card: no card TPNOSUCHCARD0000',
  },
  {
    name: 'an unknown revocation reason',
    request: () => f.call('registrar-a', 'POST', `/v1/cards/${active.cardNumber}/revocation`, { reason: 'certificateHold' }),
    status: 400, error: 'INVALID_ARGUMENT', message: /^revoke card: body\/reason must be equal to one of the allowed values$/,
  },
  {
    name: 'a household event about the future',
    request: () => f.call('household', 'POST', '/v1/household-events', { eventId: 'future-1', kind: 'DEATH', nationalId: citizen.nationalId, occurredAt: new Date(Date.now() + 86_400_000).toISOString() }),
    status: 400, error: 'INVALID_ARGUMENT', message: 'household event: occurredAt is in the future',
  },
  {
    name: 'a page token ra never gave out',
    request: () => f.call('registrar-a', 'GET', '/v1/applications?pageToken=bm9wZQ'),
    status: 400, error: 'INVALID_ARGUMENT', message: 'list: pageToken is not one this service returned',
  },
  {
    name: 'a body over the size limit',
    request: () => f.call('registrar-a', 'POST', '/v1/subscribers', { ...validSubscriber(), name: 'x'.repeat(600 * 1024) }),
    status: 413, error: 'RESOURCE_EXHAUSTED', message: /^register subscriber: Request body is too large$/,
  },
];

function tamperedCsr(): string {
  f.csr('tamper-s');
  const der = execFileSync('openssl', ['req', '-in', join(f.dir, 'tamper-s.card.csr'), '-outform', 'DER']);
  der[der.length - 5]! ^= 0xff; // inside the signature
  writeFileSync(join(f.dir, 'tampered.der'), der);
  return `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE REQUEST-----\n`;
}

describe('bad requests: a clear error, and nothing changed', () => {
  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const before = await registrySnapshot(f);
    const res = await c.request();
    expect({ status: res.status, error: res.body.error }).toEqual({ status: c.status, error: c.error });
    const message = typeof c.message === 'function' ? c.message() : c.message;
    if (message instanceof RegExp) expect(res.body.message).toMatch(message);
    else expect(res.body.message).toBe(message);
    const after = await registrySnapshot(f);
    if (c.name !== 'a wrong subscriber code') expect(after).toBe(before);
    else {
      // The failure is counted (that is what locks guessing), and nothing else changes.
      const { attempts: wasAttempts, ...was } = JSON.parse(before);
      const { attempts: nowAttempts, ...now } = JSON.parse(after);
      expect(now).toEqual(was);
      expect(nowAttempts).not.toBe(wasAttempts);
    }
    // No internal detail leaks into an answer.
    expect(res.text).not.toMatch(/ECONNREFUSED|stack|at [A-Za-z]+ \(|node_modules|SELECT|INSERT/);
    expect(res.text).not.toContain(citizen.nationalId);
  });

  it('a replayed idempotency key with another body is refused; with the same body it returns the first answer', async () => {
    const key = `replay-${Date.now()}`;
    const first = await f.call('registrar-a', 'POST', `/v1/cards/${active.cardNumber}/suspension`, { comment: 'lost' }, key);
    expect(first.status).toBe(200);
    const before = await registrySnapshot(f);
    const same = await f.call('registrar-a', 'POST', `/v1/cards/${active.cardNumber}/suspension`, { comment: 'lost' }, key);
    expect(same.status).toBe(200);
    expect(same.body).toEqual(first.body);
    const other = await f.call('registrar-a', 'POST', `/v1/cards/${active.cardNumber}/suspension`, { comment: 'stolen' }, key);
    expect(other.status).toBe(409);
    expect(other.body).toEqual({ error: 'CONFLICT', message: `suspend card: idempotency key '${key}' was already used for a different request` });
    const elsewhere = await f.call('registrar-a', 'POST', `/v1/cards/${active.cardNumber}/resumption`, {}, key);
    expect(elsewhere.status).toBe(409);
    expect(elsewhere.body.message).toBe(`resume card: idempotency key '${key}' was already used for a different request (suspend card)`);
    expect(await registrySnapshot(f)).toBe(before);
    // Another officer may use the same key for their own request: keys are per caller.
    const theirs = await f.call('registrar-b', 'POST', `/v1/cards/${active.cardNumber}/resumption`, {}, key);
    expect(theirs.status).toBe(200);
  });

  it('limits each caller\'s rate (the public here: 20 a minute) with 429 and Retry-After, and officers are counted apart', async () => {
    const answers: number[] = [];
    for (let i = 0; i < 21; i++) answers.push((await f.call('anonymous', 'GET', '/v1/public/issuers')).status);
    expect(answers.slice(0, 20).every((s) => s === 200)).toBe(true);
    const limited = await f.call('anonymous', 'GET', '/v1/public/issuers');
    expect(limited.status).toBe(429);
    expect(limited.body).toMatchObject({ error: 'RESOURCE_EXHAUSTED', message: expect.stringMatching(/^rate limit: at most 20 requests a minute; retry after \d+ s$/) });
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await f.call('registrar-a', 'GET', '/v1/me')).status).toBe(200);
  });

  it('names the state when an application cannot be approved or rejected', async () => {
    const res = await f.call('registrar-a', 'POST', `/v1/applications/${active.applicationId}/rejection`, { reason: 'changed my mind' });
    expect(res.status).toBe(412);
    expect(res.body.message).toBe(`reject application: application ${active.applicationId} is ISSUED; only a SUBMITTED or PENDING_APPROVAL application can be rejected`);
  });
});
