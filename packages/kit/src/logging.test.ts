import { Writable } from 'node:stream';
import { createLogger } from './logging';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb(); } });
  return { lines, destination };
}

describe('logger', () => {
  it('redacts personal data and secrets wherever they appear in a log object', () => {
    const { lines, destination } = capture();
    const log = createLogger({ service: 'ra', destination });
    log.info({ nationalId: 'A123456789', applicant: { name: '王小明', birthDate: '1990-01-01' }, records: [{ pin: '1234' }], serial: '7f01' }, 'enrolment');
    const line = lines.join('');
    for (const secret of ['A123456789', '王小明', '1990-01-01', '"1234"']) expect(line).not.toContain(secret);
    expect(JSON.parse(line)).toMatchObject({ service: 'ra', serial: '7f01', nationalId: '[redacted]', msg: 'enrolment' });
  });
});
