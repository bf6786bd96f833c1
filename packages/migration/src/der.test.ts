import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { buildCrl } from './generate';
import * as der from './der';

describe('DER for a million certificates', () => {
  it('writes and reads a CRL of 300,000 entries (more than a call can take as arguments)', () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const ca = { name: der.sequence(der.set(der.sequence(der.oid('2.5.4.6'), der.printableString('TW')))), keyId: randomBytes(20), key: privateKey };
    const entries = Array.from({ length: 300_000 }, (_, i) => ({ serial: Buffer.concat([Buffer.of(0x40), randomBytes(15)]), time: new Date(Date.UTC(2020, 0, 1) + i * 1000), reason: i % 2 ? 1 : 6 }));
    const crl = buildCrl(ca, entries, new Date(Date.UTC(2026, 11, 3)), 2026120301);
    const read = der.readCrl(crl);
    expect(read.entries.length).toBe(300_000);
    expect(read.entries[7]).toEqual({ serialHex: entries[7]!.serial.toString('hex'), revocationDate: entries[7]!.time, reasonCode: 1 });
    expect(read.authorityKeyId).toBe(ca.keyId.toString('hex'));
    // OpenSSL reads it too.
    expect(execFileSync('openssl', ['crl', '-inform', 'DER', '-noout', '-crlnumber'], { input: crl, encoding: 'utf8' }).trim()).toBe(`crlNumber=0x${(2026120301).toString(16).toUpperCase()}`);
  });

  it('refuses what is not DER with a reason', () => {
    expect(() => der.readCertificate(Buffer.from('3003020101ff', 'hex'))).toThrow(/single DER SEQUENCE/);
    expect(() => der.readCrl(Buffer.from('3081', 'hex'))).toThrow(der.DerError);
  });
});
