/**
 * The OCSPRequest in a GET URL (RFC 5019 §5: "{url}/{url-encoding of base-64 encoding of the DER
 * encoding of the OCSPRequest}") and the variants clients send: percent-encoded or not (so '/'
 * may split the path), '+' turned into a space by form encoders, base64url ('-' and '_'), padding
 * missing. Returns the DER, or a reason it is not one.
 */
export function decodeGetRequest(pathAfterPrefix: string, maxRequestBytes: number): Buffer | string {
  // A query string cannot be part of base64; some clients append one (cache busters).
  const query = pathAfterPrefix.indexOf('?');
  let text = query >= 0 ? pathAfterPrefix.slice(0, query) : pathAfterPrefix;
  if (text.length === 0) return 'no request in the URL';
  // Before decoding: base64 of maxRequestBytes, each character percent-encoded at worst.
  if (text.length > Math.ceil(maxRequestBytes / 3) * 4 * 3) return `URL longer than a ${maxRequestBytes}-octet request can be`;
  if (text.includes('%')) {
    try {
      text = decodeURIComponent(text);
    } catch {
      return 'bad percent-encoding in the URL';
    }
  }
  text = text.replace(/ /g, '+').replace(/-/g, '+').replace(/_/g, '/');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return 'the URL is not base64';
  const unpadded = text.replace(/=+$/, '');
  if (unpadded.length % 4 === 1) return 'the base64 in the URL has a dangling character';
  if (Math.floor((unpadded.length * 3) / 4) > maxRequestBytes) return `request larger than ${maxRequestBytes} octets`;
  return Buffer.from(unpadded, 'base64');
}
