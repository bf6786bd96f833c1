import { PkiError } from '@pki/kit';
import { crlPartitionOf, crlPartitionUrl } from './crl-partition';
import { randomSerial } from './serial';

describe('CRL partitions', () => {
  it('is the serial number modulo the partition count', () => {
    expect(crlPartitionOf(Buffer.from('0102', 'hex'), 16)).toBe(0x0102 % 16);
    expect(crlPartitionOf('7fffffffffffffffffffffffffffffff', 10)).toBe(Number(0x7fffffffffffffffffffffffffffffffn % 10n));
    expect(crlPartitionOf('00ff', 7)).toBe(255 % 7);
    // Consecutive serials fill consecutive partitions: the answer depends on the value.
    expect(['07', '08', '09', '0a', '0b', '0c', '0d'].map((hex) => crlPartitionOf(hex, 7))).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(crlPartitionOf(Buffer.from('3a', 'hex'), 1)).toBe(0);
  });

  it('depends on the integer value, not its encoding: pad octets, hex case and bytes or hex agree', () => {
    const encodings: Array<string | Uint8Array> = ['7f', '007f', '00007f', '7F', '007F', Buffer.from([0x7f]), Buffer.from([0x00, 0x7f])];
    expect(encodings.map((serial) => crlPartitionOf(serial, 7))).toEqual(Array(encodings.length).fill(0x7f % 7));
    // A serial whose top bit needs the pad octet to stay positive, as hex and as DER content octets.
    const serial = '00c2b4f1e0d3a59687';
    expect(crlPartitionOf(serial, 4096)).toBe(Number(0xc2b4f1e0d3a59687n % 4096n));
    expect(crlPartitionOf(Buffer.from(serial, 'hex'), 4096)).toBe(crlPartitionOf(serial, 4096));
  });

  it('spreads random serials evenly', () => {
    const counts = new Array<number>(16).fill(0);
    for (let i = 0; i < 16_000; i++) counts[crlPartitionOf(randomSerial(), 16)]!++;
    for (const count of counts) expect(Math.abs(count - 1000)).toBeLessThan(200);
  });

  it('names the partition under the generation key identifier', () => {
    expect(crlPartitionUrl('http://crl.example.tw/crl/', 'a1b2', 15)).toBe('http://crl.example.tw/crl/a1b2/p15.crl');
  });

  it.each<[string, () => unknown]>([
    ['a partition count of 0', () => crlPartitionOf('01', 0)],
    ['a partition count above 4096', () => crlPartitionOf('01', 4097)],
    ['a negative serial', () => crlPartitionOf('80', 4)],
    ['odd-length hex', () => crlPartitionOf('123', 4)],
    ['an upper-case key identifier', () => crlPartitionUrl('http://crl.example.tw', 'A1', 0)],
    ['a partition out of range', () => crlPartitionUrl('http://crl.example.tw', 'a1', 4096)],
    ['an ftp base URL', () => crlPartitionUrl('ftp://crl.example.tw', 'a1', 0)],
    ['a base URL with a query', () => crlPartitionUrl('http://crl.example.tw/?x=1', 'a1', 0)],
  ])('refuses %s', (_, call) => {
    expect(call).toThrow(PkiError);
  });
});
