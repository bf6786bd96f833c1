import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { agencyError } from '../domain/agency-systems';
import type { IdentityConfirmationResult } from '../domain/identity-confirmation';

/**
 * The identity confirmation's two encodings with the same fields: JSON, and XML for the agencies'
 * existing clients. Both are decoded from the exact bytes that were signed.
 */
export type IdentityEncoding = 'json' | 'xml';

export function encodingOf(contentType: string | undefined): IdentityEncoding | undefined {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (type === 'application/json') return 'json';
  if (type === 'application/xml' || type === 'text/xml') return 'xml';
  return undefined;
}

const ROOT = 'IdentityConfirmationRequest';

const parser = new XMLParser({
  ignoreAttributes: true,
  // Values stay text: "0012" is a serialNumber, not the number 12.
  parseTagValue: false,
  trimValues: true,
  processEntities: false,
  htmlEntities: false,
  ignoreDeclaration: true,
  isArray: (_name, jpath) => jpath === `${ROOT}.records.record`,
});

export function decodeIdentityRequest(body: Buffer, encoding: IdentityEncoding, operation: string): unknown {
  const text = body.toString('utf8');
  if (encoding === 'json') {
    try {
      return JSON.parse(text);
    } catch {
      throw agencyError('INVALID_ARGUMENT', 'MALFORMED_FIELD', `${operation}: the body is not well-formed JSON`);
    }
  }
  // No document type declarations, hence no entities to expand (billion laughs, external entities).
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) throw agencyError('INVALID_ARGUMENT', 'MALFORMED_XML', `${operation}: XML with a document type declaration or entities is refused`);
  const valid = XMLValidator.validate(text);
  if (valid !== true) throw agencyError('INVALID_ARGUMENT', 'MALFORMED_XML', `${operation}: the body is not well-formed XML (line ${valid.err.line}: ${valid.err.msg})`);
  const document = parser.parse(text) as Record<string, unknown>;
  const roots = Object.keys(document);
  if (roots.length !== 1 || roots[0] !== ROOT) throw agencyError('INVALID_ARGUMENT', 'MALFORMED_XML', `${operation}: the root element must be ${ROOT}`);
  const root = document[ROOT];
  if (typeof root !== 'object' || root === null) throw agencyError('INVALID_ARGUMENT', 'MALFORMED_FIELD', `${operation}: ${ROOT} is empty`);
  const { records, ...rest } = root as Record<string, unknown>;
  // <records> holds <record> elements only; anything else is a field the request does not have.
  let list: unknown = records;
  if (records !== undefined) {
    if (typeof records !== 'object' || records === null) list = [];
    else {
      const keys = Object.keys(records);
      if (keys.some((k) => k !== 'record')) throw agencyError('INVALID_ARGUMENT', 'MALFORMED_FIELD', `${operation}: records may hold only record elements`);
      list = (records as { record?: unknown[] }).record ?? [];
    }
  }
  return { ...rest, ...(list !== undefined ? { records: list } : {}) };
}

const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export function encodeIdentityResult(result: IdentityConfirmationResult): string {
  const results = result.results.map((r) => `<result><seq>${r.seq}</seq><code>${r.code}</code></result>`).join('');
  return `<?xml version="1.0" encoding="UTF-8"?>\n<IdentityConfirmationResponse><nonce>${escape(result.nonce)}</nonce><responseTime>${result.responseTime}</responseTime><results>${results}</results></IdentityConfirmationResponse>\n`;
}

export function encodeIdentityError(body: { error?: string; message?: string; details?: Record<string, string> }): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<IdentityConfirmationError><error>${escape(body.error ?? 'INTERNAL')}</error>${body.details?.code ? `<code>${escape(body.details.code)}</code>` : ''}<message>${escape(body.message ?? '')}</message></IdentityConfirmationError>\n`;
}
