import { parseLegacyTime } from './format';

describe('parseLegacyTime (the legacy status table: Taiwan time, YYYY/MM/DD HH:MM:SS)', () => {
  it('reads a time as UTC+8', () => {
    expect(parseLegacyTime('2023/02/28 23:59:59')?.toISOString()).toBe('2023-02-28T15:59:59.000Z');
    expect(parseLegacyTime('2024/02/29 12:00:00')?.toISOString()).toBe('2024-02-29T04:00:00.000Z');
    expect(parseLegacyTime('2000/01/01 07:59:59')?.toISOString()).toBe('1999-12-31T23:59:59.000Z');
  });

  it('refuses a day or time out of range instead of rolling it over', () => {
    for (const text of ['2023/02/30 00:00:00', '2023/02/29 00:00:00', '2023/13/01 00:00:00', '2023/00/10 00:00:00', '2023/01/01 24:00:00', '2023/01/01 00:60:00', '2023/01/01 00:00:60']) {
      expect({ text, parsed: parseLegacyTime(text) }).toEqual({ text, parsed: undefined });
    }
  });

  it('refuses other shapes', () => {
    for (const text of ['2023-01-01 00:00:00', '2023/1/1 00:00:00', '2023/01/01T00:00:00', '', '2023/01/01 00:00:00Z']) expect(parseLegacyTime(text)).toBeUndefined();
  });
});
