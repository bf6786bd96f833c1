import { Writable } from 'node:stream';
import { createLogger, isRedactedField, redactPersonalData, redactText } from './logging';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb(); } });
  return { lines, destination, text: () => lines.join(''), last: () => JSON.parse(lines.at(-1)!) as Record<string, unknown> };
}

// Personal data of a made-up citizen: none of it may appear in any log line.
const NATIONAL_ID = 'A123456789';
const RESIDENT_ID = 'AC01234567';
const NEW_RESIDENT_ID = 'F800000017';
const NAME = '王小明';
const BIRTH_DATE = '1990-01-01';
const PIN = '482913';
const PERSONAL = [NATIONAL_ID, RESIDENT_ID, NEW_RESIDENT_ID, NAME, BIRTH_DATE, PIN];

function expectNoPersonalData(text: string): void {
  for (const value of PERSONAL) expect(text).not.toContain(value);
}

/** `value` nested `depth` levels down, alternating objects and arrays. */
function nest(value: unknown, depth: number): unknown {
  let out = value;
  for (let i = 0; i < depth; i++) out = i % 2 === 0 ? { level: i, inner: out } : [out];
  return out;
}

describe('logger', () => {
  it('redacts personal data fields at any depth, in objects and arrays', () => {
    const { destination, text, last } = capture();
    const log = createLogger({ service: 'ra', destination });
    for (const depth of [0, 1, 2, 3, 4, 5, 8, 13, 21]) {
      log.info({ serial: '7f01', applicant: nest({ nationalId: NATIONAL_ID, name: NAME, birthDate: BIRTH_DATE, card: { pin: PIN } }, depth) }, 'enrolment');
      expect(last()).toMatchObject({ service: 'ra', serial: '7f01', msg: 'enrolment' });
    }
    expectNoPersonalData(text());
    expect(text().split('\n').filter(Boolean).every((l) => l.includes('"nationalId":"[redacted]"'))).toBe(true);
  });

  it('recognises a field by its name in any spelling, and leaves other fields alone', () => {
    for (const name of ['nationalId', 'national_id', 'NATIONAL-ID', 'applicantNationalId', 'idNumber', 'dateOfBirth', 'birth_date', 'fullName', 'subscriberCode', 'newPin', 'privateKeyPem', 'dbPassword', 'Authorization', 'cookie']) {
      expect([name, isRedactedField(name)]).toEqual([name, true]);
    }
    for (const name of ['serial', 'serialHex', 'issuerKeyId', 'profile', 'caller', 'mapping', 'pinned', 'hostname', 'topic', 'opsUrl']) {
      expect([name, isRedactedField(name)]).toEqual([name, false]);
    }
  });

  it('redacts national IDs and a DN common name in the message text and in any string value', () => {
    const { destination, text, last } = capture();
    const log = createLogger({ service: 'ra', destination });
    log.warn(`no certificate for ${NATIONAL_ID}`);
    expect(last().msg).toBe('no certificate for [redacted]');
    log.warn({ note: `resident ${RESIDENT_ID} and ${NEW_RESIDENT_ID}` }, 'checked');
    expect(last().note).toBe('resident [redacted] and [redacted]');
    // printf-style arguments, strings and objects alike
    log.info('lookup of %s for %o', NATIONAL_ID, { person: { birthDate: BIRTH_DATE } });
    log.info({ deep: nest(`subject C=TW, CN=${NAME}, serialNumber=1234567890123456`, 9) }, `issued to /C=TW/CN=${NAME}/serialNumber=1234567890123456`);
    expect(last().msg).toBe('issued to /C=TW/CN=[redacted]/serialNumber=1234567890123456');
    log.info({ url: `/v1/persons?nationalId=${NATIONAL_ID}&x=1` }, 'request');
    expectNoPersonalData(text());
  });

  it('redacts errors: message, stack, extra properties and causes, and keeps them errors', () => {
    const { destination, text, last } = capture();
    const log = createLogger({ service: 'ra', destination });
    // What a driver error looks like: personal data in the message and in a property.
    const driver = Object.assign(new Error(`duplicate key value violates unique constraint: Key (national_id)=(${NATIONAL_ID}) already exists`), { detail: `Key (national_id)=(${NATIONAL_ID})`, code: '23505' });
    const wrapped = new Error(`enrol C=TW, CN=${NAME}, serialNumber=1234567890123456 refused`, { cause: driver });
    Object.assign(wrapped, { applicant: { birthDate: BIRTH_DATE } });
    log.error({ err: wrapped }, 'enrolment failed');
    const line = last() as { err: { type: string; message: string; stack: string; applicant: unknown } };
    // pino's error serializer appends the causes' messages (and stacks): all redacted.
    expect(line.err).toMatchObject({
      type: 'Error',
      message: 'enrol C=TW, CN=[redacted], serialNumber=1234567890123456 refused: duplicate key value violates unique constraint: Key (national_id)=([redacted]) already exists',
      applicant: { birthDate: '[redacted]' },
    });
    expect(line.err.stack).toContain('CN=[redacted]');
    expect(line.err.stack).toContain('caused by: Error: duplicate key value violates unique constraint: Key (national_id)=([redacted])');
    log.error(driver);
    expect(last()).toMatchObject({ err: { code: '23505', detail: 'Key (national_id)=([redacted])' }, msg: 'duplicate key value violates unique constraint: Key (national_id)=([redacted]) already exists' });
    expectNoPersonalData(text());
    // The caller's error is untouched.
    expect(driver.message).toContain(NATIONAL_ID);
  });

  it("redacts a child logger's bindings, a grandchild's, and what a serializer added by a child returns", () => {
    const { destination, text } = capture();
    const log = createLogger({ service: 'ra', destination });
    const child = log.child({ applicant: { nationalId: NATIONAL_ID } });
    const grandchild = child.child({ note: `for ${RESIDENT_ID}` });
    grandchild.info('step');
    // fastify's way: a child with a `req` serializer that reduces the request to its URL.
    const http = log.child({}, { serializers: { req: (req: { url: string }) => ({ url: req.url }) } });
    http.info({ req: { url: `/v1/persons/${NATIONAL_ID}`, socket: { huge: true } } }, 'incoming request');
    expectNoPersonalData(text());
    expect(text()).toContain('"url":"/v1/persons/[redacted]"');
    expect(text()).not.toContain('huge');
  });

  it('never changes the objects it is given, and copes with cycles, buffers and dates', () => {
    const { destination, last } = capture();
    const log = createLogger({ service: 'ra', destination });
    const applicant: Record<string, unknown> = { nationalId: NATIONAL_ID, at: new Date(0), key: Buffer.from([1, 2]) };
    applicant.self = applicant;
    log.info({ applicant }, 'cyclic');
    expect(applicant.nationalId).toBe(NATIONAL_ID);
    expect(last()).toMatchObject({ applicant: { nationalId: '[redacted]', at: '1970-01-01T00:00:00.000Z' } });
  });

  it('returns the very same value when there is nothing to redact (no copy on the common path)', () => {
    const line = { serial: '7f01', issuerKeyId: 'ab12', profile: 'citizen-signature', nested: { caller: 'spiffe://pki.internal/ra', items: [1, 2] } };
    expect(redactPersonalData(line)).toBe(line);
    expect(redactText('certificate 7f0123456789abcdef issued at 2026-01-02T03:04:05Z')).toBe('certificate 7f0123456789abcdef issued at 2026-01-02T03:04:05Z');
    // Not national IDs: lower case, too short, too long, or part of a longer word.
    for (const text of ['a123456789', 'A12345678', 'A1234567890', 'XA123456789', 'A3123456789']) expect(redactText(text)).toBe(text);
  });
});
