import { PkiError } from '@pki/kit';
import type { DistinguishedName, NameAttribute, NameAttributeType } from '@pki/x509';

const KNOWN: readonly NameAttributeType[] = ['C', 'ST', 'L', 'O', 'OU', 'CN', 'serialNumber', 'givenName', 'surname'];

/**
 * Parses a subject given on the command line, "C=TW, O=行政院, OU=內政部憑證管理中心", in
 * certificate order (as `list` and `openssl -nameopt` print it, not RFC 4514's reversed order);
 * `\,` escapes a comma inside a value. Value syntax (PrintableString for C, lengths) is checked
 * when the name is encoded.
 */
export function parseSubject(text: string): DistinguishedName {
  const operation = 'parse subject';
  const parts = text.split(/(?<!\\),/).map((p) => p.trim()).filter((p) => p.length > 0);
  if (parts.length === 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: the subject is empty`);
  return parts.map((part): NameAttribute => {
    const eq = part.indexOf('=');
    const type = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim().replace(/\\,/g, ',');
    if (eq < 1 || value === '' || !KNOWN.includes(type as NameAttributeType)) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: '${part}' is not TYPE=value with TYPE one of ${KNOWN.join(', ')}`);
    }
    return { type: type as NameAttributeType, value };
  });
}
