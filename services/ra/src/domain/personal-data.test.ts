import { parsePersonalData } from './personal-data';

const today = new Date('2026-12-04T00:00:00Z');
const valid = { nationalId: 'A123456789', name: '王小明', birthDate: '1980-02-29' };

describe('personal data at registration', () => {
  it('accepts names in any script, rare ideographs outside the BMP included, and normalises them', () => {
    expect(parsePersonalData({ ...valid, name: '𠀋𡈽 陳' }, 'r', today).name).toBe('𠀋𡈽 陳');
    expect(parsePersonalData({ ...valid, name: '  Nguyễn   Thị  ' }, 'r', today).name).toBe('Nguyễn Thị');
    // NFD input (e + combining acute) becomes NFC, so the same name always encrypts and compares alike.
    expect(parsePersonalData({ ...valid, name: 'Jose\u0301' }, 'r', today).name).toBe('Jos\u00e9');
    expect(parsePersonalData({ ...valid, name: 'Mary-Ann O\'Neil' }, 'r', today).name).toBe("Mary-Ann O'Neil");
    expect(parsePersonalData({ ...valid, name: '瓦歷斯·諾幹' }, 'r', today).name).toBe('瓦歷斯·諾幹');
  });

  it.each([
    [{ name: '' }, /name is empty/],
    [{ name: 'a'.repeat(65) }, /longer than 64/],
    [{ name: 'Robert\u0007' }, /only letters/],
    [{ name: 'R2D2' }, /only letters/],
    [{ name: '\ud800abc' }, /only letters|well-formed/],
    [{ name: 42 }, /name must be a string/],
    [{ birthDate: '1980-02-30' }, /not a calendar date/],
    [{ birthDate: '1981-02-29' }, /not a calendar date/],
    [{ birthDate: '80-02-29' }, /YYYY-MM-DD/],
    [{ birthDate: '2027-01-01' }, /in the future/],
    [{ birthDate: '1850-01-01' }, /before 1890/],
    [{ email: 'not an address' }, /email must be/],
    [{ email: `${'a'.repeat(65)}@example.tw` }, /email must be/],
    [{ nationalId: 'A123456788' }, /check digit/],
  ])('refuses %p with a message that names the rule, not the value', (change, message) => {
    const input = { ...valid, ...change };
    let error: Error | undefined;
    try {
      parsePersonalData(input, 'register subscriber', today);
    } catch (err) {
      error = err as Error;
    }
    expect(error?.message).toMatch(message);
    for (const value of Object.values(change)) if (typeof value === 'string' && value.length > 2) expect(error?.message).not.toContain(value);
  });
});
