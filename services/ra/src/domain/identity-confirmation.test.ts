import { PkiError } from '@pki/kit';
import { identityConfirmationCode, parseIdentityConfirmationRequest } from './identity-confirmation';
import { taipeiMonth } from './agency-systems';
import { withCheckDigit } from './national-id';

const now = new Date('2026-12-04T10:00:00Z');
const sealed = { keyId: 'k', ciphertext: Buffer.alloc(0) };
const pair = (cardStatus: 'ISSUED' | 'ACTIVE' | 'SUSPENDED' | 'REVOKED', notAfter = new Date('2030-01-01T00:00:00Z')) => ({ subscriberId: 's', cardStatus, notAfter, birthDateSealed: sealed });
const policy = { maxRecords: 3, clockSkewSeconds: 300 };
const id = withCheckDigit('A12345678');

describe('identityConfirmationCode', () => {
  it.each([
    ['unknown ID', { seq: 1, personFound: false, personHasCard: false }, undefined, 2],
    ['a subscriber without a card', { seq: 1, personFound: true, personHasCard: false }, undefined, 2],
    ["someone else's card", { seq: 1, personFound: true, personHasCard: true }, undefined, 1],
    ['a wrong birth date', { seq: 1, personFound: true, personHasCard: true, pair: pair('ACTIVE') }, false, 1],
    ['an active card', { seq: 1, personFound: true, personHasCard: true, pair: pair('ACTIVE') }, true, 0],
    ['a suspended card', { seq: 1, personFound: true, personHasCard: true, pair: pair('SUSPENDED') }, undefined, 0],
    ['a card not activated', { seq: 1, personFound: true, personHasCard: true, pair: pair('ISSUED') }, undefined, 3],
    ['expired, not activated', { seq: 1, personFound: true, personHasCard: true, pair: pair('ISSUED', new Date('2026-01-01T00:00:00Z')) }, undefined, 4],
    ['expired at this very second', { seq: 1, personFound: true, personHasCard: true, pair: pair('ACTIVE', now) }, undefined, 4],
    ['revoked and expired', { seq: 1, personFound: true, personHasCard: true, pair: pair('REVOKED', new Date('2026-01-01T00:00:00Z')) }, undefined, 5],
  ] as const)('%s', (_, found, birthDateMatches, code) => {
    expect(identityConfirmationCode(found as never, now, birthDateMatches)).toBe(code);
  });
});

describe('parseIdentityConfirmationRequest', () => {
  const base = { nonce: 'a'.repeat(32), requestTime: '2026-12-04T10:00:00+08:00', records: [{ seq: 1, serialNumber: '1234567890123456', nationalId: id.toLowerCase() }] };
  const refusal = (input: unknown): { code: string | undefined; message: string } => {
    try {
      parseIdentityConfirmationRequest(input, policy, 'identity confirmation');
    } catch (err) {
      return { code: (err as PkiError).details.code, message: (err as PkiError).message };
    }
    throw new Error('accepted');
  };

  it('accepts the fields, normalises the ID, keeps seq strings from XML as numbers', () => {
    const parsed = parseIdentityConfirmationRequest({ ...base, records: [{ seq: '7', serialNumber: '1234567890123456', nationalId: id, birthDate: '1980-02-29' }] }, policy, 'op');
    expect(parsed.records).toEqual([{ seq: 7, serialNumber: '1234567890123456', nationalId: id, birthDate: '1980-02-29' }]);
    expect(parsed.requestTime.toISOString()).toBe('2026-12-04T02:00:00.000Z');
    expect(parseIdentityConfirmationRequest(base, policy, 'op').records[0]!.nationalId).toBe(id);
  });

  it.each([
    ['too many records', { ...base, records: Array.from({ length: 4 }, (_, i) => ({ ...base.records[0], seq: i + 1 })) }, 'BATCH_TOO_LARGE'],
    ['no records', { ...base, records: [] }, 'MALFORMED_FIELD'],
    ['a time without offset', { ...base, requestTime: '2026-12-04T10:00:00' }, 'MALFORMED_FIELD'],
    ['a short nonce', { ...base, nonce: 'abc' }, 'MALFORMED_FIELD'],
    ['a repeated seq', { ...base, records: [base.records[0], base.records[0]] }, 'MALFORMED_FIELD'],
    ['a 15-digit serialNumber', { ...base, records: [{ ...base.records[0], serialNumber: '123456789012345' }] }, 'MALFORMED_FIELD'],
    ['February 30th', { ...base, records: [{ ...base.records[0], birthDate: '1980-02-30' }] }, 'MALFORMED_FIELD'],
    ['an unknown field', { ...base, records: [{ ...base.records[0], name: 'x' }] }, 'MALFORMED_FIELD'],
  ])('refuses %s', (_, input, code) => {
    expect(refusal(input).code).toBe(code);
  });

  it('never repeats a national ID in its message', () => {
    const wrong = id.slice(0, 9) + String((Number(id[9]) + 1) % 10);
    const { code, message } = refusal({ ...base, records: [{ ...base.records[0], nationalId: wrong }] });
    expect(code).toBe('MALFORMED_FIELD');
    expect(message).toBe('identity confirmation: record seq 1: nationalId fails its check digit');
  });
});

it('counts months in Taiwan time', () => {
  expect(taipeiMonth(new Date('2026-12-31T15:59:59Z'))).toBe('2026-12-01');
  expect(taipeiMonth(new Date('2026-12-31T16:00:00Z'))).toBe('2027-01-01');
});
