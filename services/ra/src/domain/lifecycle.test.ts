import { DEFAULT_EXTENSION_POLICY, assertCardTransition, cardStatusAfter, extendedNotAfter, revocationReasonOf, type CardStatus } from './lifecycle';

describe('card transitions', () => {
  it.each<[CardStatus, 'activate' | 'suspend' | 'resume' | 'revoke' | 'extend', boolean]>([
    ['ISSUED', 'activate', true],
    ['ACTIVE', 'activate', false],
    ['ISSUED', 'suspend', true],
    ['ACTIVE', 'suspend', true],
    ['SUSPENDED', 'suspend', false],
    ['REVOKED', 'suspend', false],
    ['SUSPENDED', 'resume', true],
    ['ACTIVE', 'resume', false],
    ['REVOKED', 'resume', false],
    ['SUSPENDED', 'revoke', true],
    ['REVOKED', 'revoke', false],
    ['SUSPENDED', 'extend', false],
    ['ACTIVE', 'extend', true],
  ])('%s -> %s allowed: %s', (from, operation, allowed) => {
    const attempt = () => assertCardTransition('TP0000000000001', from, operation);
    if (allowed) expect(attempt).not.toThrow();
    else expect(attempt).toThrow(new RegExp(`card TP0000000000001 is ${from}; only a card that is`));
  });

  it('resumes a card to ACTIVE, or to ISSUED when it was suspended before the citizen received it', () => {
    expect(cardStatusAfter('resume', 'SUSPENDED', true)).toBe('ACTIVE');
    expect(cardStatusAfter('resume', 'SUSPENDED', false)).toBe('ISSUED');
  });
});

describe('revocation reasons', () => {
  it('takes RFC 5280 names and the programme status values', () => {
    expect(revocationReasonOf('keyCompromise', 'r')).toBe('keyCompromise');
    expect(revocationReasonOf('card-cut', 'r')).toBe('cessationOfOperation');
    expect(revocationReasonOf('identity-data-changed', 'r')).toBe('affiliationChanged');
    expect(() => revocationReasonOf('certificateHold', 'revoke card')).toThrow(/revoke card: reason 'certificateHold' is not one of unspecified, keyCompromise/);
  });
});

describe('extension window (domain.md: once, by 3 years, from 60 days before expiry to 3 years after)', () => {
  const originalNotAfter = new Date('2030-06-01T00:00:00Z');
  const card = { cardNumber: 'C1', extended: false, originalNotAfter, keysCreatedAt: new Date('2025-06-01T00:00:00Z') };
  const at = (iso: string) => new Date(iso);

  it('adds three years to the original expiry inside the window', () => {
    expect(extendedNotAfter(card, at('2030-04-02T12:00:00Z'), DEFAULT_EXTENSION_POLICY).toISOString()).toBe('2033-06-01T00:00:00.000Z');
    expect(extendedNotAfter(card, at('2032-01-01T00:00:00Z'), DEFAULT_EXTENSION_POLICY).toISOString()).toBe('2033-06-01T00:00:00.000Z');
  });
  it('refuses before the window opens and after it closes, naming the dates', () => {
    expect(() => extendedNotAfter(card, at('2030-04-01T00:00:00Z'), DEFAULT_EXTENSION_POLICY)).toThrow(/can be extended from 2030-04-02T00:00:00.000Z/);
    expect(() => extendedNotAfter(card, at('2033-06-01T00:00:01Z'), DEFAULT_EXTENSION_POLICY)).toThrow(/closed at 2033-06-01T00:00:00.000Z/);
  });
  it('refuses a second extension', () => {
    expect(() => extendedNotAfter({ ...card, extended: true }, at('2030-05-01T00:00:00Z'), DEFAULT_EXTENSION_POLICY)).toThrow(/already extended once/);
  });
  it('never extends past the keys\' ten-year lifetime', () => {
    const old = { ...card, keysCreatedAt: new Date('2022-01-01T00:00:00Z') };
    expect(extendedNotAfter(old, at('2030-05-01T00:00:00Z'), DEFAULT_EXTENSION_POLICY).toISOString()).toBe('2032-01-01T00:00:00.000Z');
  });
});
