import { randomSerial, assertValidSerial } from './serial';

describe('randomSerial', () => {
  it('gives 16 positive octets with a non-zero first octet, so the DER INTEGER is always 16 octets', () => {
    for (let i = 0; i < 2000; i++) {
      const serial = randomSerial();
      expect(serial).toHaveLength(16);
      expect(serial[0]! & 0x80).toBe(0);
      expect(serial[0]).not.toBe(0);
      expect(() => assertValidSerial(serial, 'test')).not.toThrow();
    }
    expect(randomSerial(20)).toHaveLength(20);
  });

  it('does not repeat', () => {
    const seen = new Set(Array.from({ length: 10000 }, () => randomSerial().toString('hex')));
    expect(seen.size).toBe(10000);
  });

  it('refuses lengths RFC 5280 §4.1.2.2 does not allow', () => {
    expect(() => randomSerial(21)).toThrow('length must be 8 to 20 octets');
    expect(() => randomSerial(4)).toThrow('length must be 8 to 20 octets');
  });
});

describe('assertValidSerial', () => {
  it.each([
    ['80', 'must be positive'],
    ['00', 'must be non-zero and minimally encoded'],
    ['0001', 'must be non-zero and minimally encoded'],
    ['', 'must be 1 to 20 octets'],
    ['01'.repeat(21), 'must be 1 to 20 octets'],
  ])('refuses %s', (hex, message) => {
    expect(() => assertValidSerial(Buffer.from(hex, 'hex'), 'build TBS certificate')).toThrow(`build TBS certificate: serial number ${message}`);
  });

  it('accepts a 0x00 pad before a high bit', () => {
    expect(() => assertValidSerial(Buffer.from('0080', 'hex'), 'test')).not.toThrow();
  });
});
