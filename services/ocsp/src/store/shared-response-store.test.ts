import { randomBytes } from 'node:crypto';
import { ResponseStoreReader, ResponseStoreWriter, type ResponseRecord } from './shared-response-store';

function record(serial: Buffer, overrides: Partial<ResponseRecord> = {}): ResponseRecord {
  return {
    serial,
    hash: 0,
    issuerIndex: 1,
    responderIndex: 2,
    status: 0,
    producedAt: 1_800_000_000,
    nextUpdate: 1_800_086_400,
    statusSeq: 1,
    responseData: randomBytes(120),
    signature: randomBytes(256),
    ...overrides,
  };
}

const serial = () => {
  const s = randomBytes(16);
  s[0]! &= 0x7f;
  return s;
};

describe('shared response store', () => {
  it('files and finds responses per serial and CertID hash; a serial never filed is unknown', () => {
    const writer = ResponseStoreWriter.create({ maxCertificates: 1_000, arenaBytes: 1 << 20 });
    const reader = new ResponseStoreReader(writer.buffers); // what a serving thread builds
    const s = serial();
    const r = record(s);
    expect(writer.put(r)).toBe(true);
    const found = reader.lookup(s, 0);
    expect(found.kind).toBe('resident');
    if (found.kind !== 'resident') return;
    expect(Buffer.from(found.record.responseData).equals(Buffer.from(r.responseData))).toBe(true);
    expect(Buffer.from(found.record.signature).equals(Buffer.from(r.signature))).toBe(true);
    expect(found.record).toMatchObject({ issuerIndex: 1, responderIndex: 2, status: 0, producedAt: 1_800_000_000, nextUpdate: 1_800_086_400 });
    expect(found.record.stillValid()).toBe(true);
    expect(reader.lookup(s, 1).kind).toBe('not-resident'); // known, but no SHA-256 response in memory
    expect(reader.lookup(serial(), 0).kind).toBe('unknown');
  });

  it('says a record changed under a reader, and never reuses its space before the grace period', () => {
    const now = 0; // the clock does not move: nothing freed is reusable
    const writer = ResponseStoreWriter.create({ maxCertificates: 1_000, arenaBytes: 1 << 20 }, { graceMs: 1_000, now: () => now });
    const s = serial();
    writer.put(record(s, { status: 0 }));
    const first = writer.lookup(s, 0);
    writer.put(record(s, { status: 1, statusSeq: 2 }));
    if (first.kind !== 'resident') throw new Error('expected resident');
    expect(first.record.stillValid()).toBe(false);
    const second = writer.lookup(s, 0);
    expect(second.kind === 'resident' && second.record.status).toBe(1);
    // Many more puts within the grace period never land on the first record's bytes.
    const before = Buffer.from(first.record.responseData);
    for (let i = 0; i < 50; i++) writer.put(record(serial()));
    expect(Buffer.from(first.record.responseData).equals(before)).toBe(true);
  });

  it('answers tryLater (stale) for a certificate whose new status is being signed', () => {
    const writer = ResponseStoreWriter.create({ maxCertificates: 1_000, arenaBytes: 1 << 20 });
    const s = serial();
    writer.put(record(s));
    writer.setStale(s, true);
    expect(writer.lookup(s, 0).kind).toBe('stale');
    writer.setStale(s, false);
    expect(writer.lookup(s, 0).kind).toBe('resident');
  });

  it('evicts unreferenced responses when memory runs short, keeping the certificates known', () => {
    let now = 0;
    const writer = ResponseStoreWriter.create({ maxCertificates: 10_000, arenaBytes: 200 * 448 }, { graceMs: 10, now: () => now });
    const serials = Array.from({ length: 400 }, serial);
    let filed = 0;
    for (const s of serials) {
      if (writer.put(record(s))) filed++;
      else {
        writer.maintain(0.5, 0.6);
        now += 20;
        writer.setKnown(s, true);
      }
    }
    expect(filed).toBeLessThan(serials.length);
    // Every serial is known whether or not its response is resident: none is "never issued".
    for (const s of serials) expect(['resident', 'not-resident']).toContain(writer.lookup(s, 0).kind);
    expect(writer.stats().knownCertificates).toBe(serials.length);
  });

  it('holds as many certificates as it was sized for, at the index load it is sized to (0.7)', () => {
    // 183,500 certificates fit 262,144 slots at 0.7 (slotsFor); random serials make long probe runs.
    const count = 183_500;
    const writer = ResponseStoreWriter.create({ maxCertificates: count, arenaBytes: 1 << 20 });
    const serials = Array.from({ length: count }, () => serial());
    for (const s of serials) writer.setKnown(s, true);
    expect(writer.stats()).toMatchObject({ indexSlots: 262_144, knownCertificates: count, overflowed: false });
    expect(serials.every((s) => writer.lookup(s, 0).kind === 'not-resident')).toBe(true);
  });

  it('stops claiming "never issued" once its index overflows', () => {
    const writer = ResponseStoreWriter.create({ maxCertificates: 10, arenaBytes: 1 << 20 });
    for (let i = 0; i < 2_000; i++) writer.setKnown(serial(), true);
    expect(writer.stats().overflowed).toBe(true);
    expect(writer.lookup(serial(), 0).kind).toBe('unsure');
  });
});
