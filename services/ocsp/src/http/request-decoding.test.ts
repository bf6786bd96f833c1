import { decodeGetRequest } from './request-decoding';

describe('GET request decoding (RFC 5019 §5 and what clients send)', () => {
  const der = Buffer.from('3043304130' + 'ff'.repeat(40) + 'fbef', 'hex');
  const base64 = der.toString('base64');

  it.each([
    ['percent-encoded', encodeURIComponent(base64)],
    ['raw, with / and + in the path', base64],
    ['base64url', base64.replace(/\+/g, '-').replace(/\//g, '_')],
    ['without padding', base64.replace(/=+$/, '')],
    ['+ turned into a space by a form encoder', encodeURIComponent(base64).replace(/%2B/g, '%20')],
    ['with a query string appended', `${encodeURIComponent(base64)}?cachebuster=1`],
  ])('%s', (_name, path) => {
    expect(decodeGetRequest(path, 4096)).toEqual(der);
  });

  it.each([
    ['', /no request/],
    ['%E0%A4%A', /bad percent-encoding/],
    ['MEM*QT', /not base64/],
    ['MEMwQ', /dangling character/],
    ['A'.repeat(20_000), /longer than/],
  ])('refuses %j', (path, reason) => {
    expect(decodeGetRequest(path, 4096)).toMatch(reason);
  });
});
