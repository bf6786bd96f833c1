import { parseNationalId, withCheckDigit } from './national-id';

describe('national ID and resident numbers', () => {
  it.each([
    // The Ministry of the Interior's own published example, and others computed by hand.
    ['A123456789', 'CITIZEN', 'MALE', '6789'],
    ['B223456782', 'CITIZEN', 'FEMALE', '6782'],
    ['a123456789', 'CITIZEN', 'MALE', '6789'],
    [' A123456789 ', 'CITIZEN', 'MALE', '6789'],
    ['A800000014', 'RESIDENT', 'MALE', '0014'],
    ['A900000016', 'RESIDENT', 'FEMALE', '0016'],
    ['AA00000009', 'RESIDENT_LEGACY', 'MALE', '0009'],
    ['AB00000001', 'RESIDENT_LEGACY', 'FEMALE', '0001'],
  ])('accepts %s (%s, %s)', (input, kind, gender, lastFour) => {
    const id = parseNationalId(input, 'register subscriber');
    expect(id).toEqual({ value: input.trim().toUpperCase(), kind, gender, lastFour });
  });

  it('computes the check digit the way the registry does (the letter I is 34, O is 35, W is 32)', () => {
    // I -> 34: 3*1 + 4*9 + 1*8 + 0*7 + ... ; the helper finds the only digit that balances it.
    for (const letter of ['I', 'O', 'W', 'Z', 'A']) {
      const id = withCheckDigit(`${letter}10000000`);
      expect(parseNationalId(id, 't').value).toBe(id);
      const wrong = id.slice(0, 9) + String((Number(id[9]) + 1) % 10);
      expect(() => parseNationalId(wrong, 't')).toThrow(/check digit/);
    }
  });

  it.each([
    ['A123456788', /fails its check digit/],
    ['A323456789', /letter and nine digits/],
    ['A12345678', /letter and nine digits/],
    ['1234567890', /letter and nine digits/],
    ['AE12345678', /letter and nine digits/],
    ['', /letter and nine digits/],
    [12345, /must be a string/],
    [null, /must be a string/],
  ])('refuses %p without repeating it', (input, message) => {
    let error: Error | undefined;
    try {
      parseNationalId(input, 'register subscriber');
    } catch (err) {
      error = err as Error;
    }
    expect(error?.message).toMatch(message);
    expect(error?.message).toMatch(/^register subscriber: nationalId /);
    if (typeof input === 'string' && input !== '') expect(error?.message).not.toContain(input);
  });
});
