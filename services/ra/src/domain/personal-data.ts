import { PkiError } from '@pki/kit';
import { parseNationalId, type NationalId } from './national-id';

/**
 * A subscriber's personal data as ra receives it at the counter. Every field is personal data:
 * it is encrypted at rest (adapters/crypto), never logged, never put in an event, an audit
 * record or an error message. Validation messages name the field and the rule, never the value.
 */
export interface PersonalData {
  nationalId: NationalId;
  /** NFC-normalised; any script, including characters outside the BMP (rare CJK ideographs). */
  name: string;
  /** YYYY-MM-DD. */
  birthDate: string;
  email?: string;
}

export interface PersonalDataInput {
  nationalId: unknown;
  name: unknown;
  birthDate: unknown;
  email?: unknown;
}

const MAX_NAME_CODE_POINTS = 64;
// Letters (any script), combining marks, spaces and the punctuation names carry (middle dot of
// transliterated names, hyphen, apostrophe, period, comma). No controls, no digits, no symbols.
const NAME = /^[\p{L}\p{M}][\p{L}\p{M} ·・\-'.,]*$/u;
// RFC 5321 length limits; the shape is deliberately plain (an address with a dot-atom local part
// and a domain of labels), because it ends up in subjectAltName as an rfc822Name (RFC 5280 §4.2.1.6).
const EMAIL = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;

export function parsePersonalData(input: PersonalDataInput, operation: string, today: Date): PersonalData {
  const nationalId = parseNationalId(input.nationalId, operation);
  const name = parseName(input.name, operation);
  const birthDate = parseBirthDate(input.birthDate, operation, today);
  const data: PersonalData = { nationalId, name, birthDate };
  if (input.email !== undefined && input.email !== null && input.email !== '') data.email = parseEmail(input.email, operation);
  return data;
}

export function parseName(input: unknown, operation: string): string {
  if (typeof input !== 'string') throw invalid(operation, 'name must be a string');
  const name = input.normalize('NFC').trim().replace(/\s+/gu, ' ');
  const length = [...name].length;
  if (length === 0) throw invalid(operation, 'name is empty');
  if (length > MAX_NAME_CODE_POINTS) throw invalid(operation, `name is longer than ${MAX_NAME_CODE_POINTS} characters`);
  if (!NAME.test(name)) throw invalid(operation, 'name may hold only letters of any script, spaces and the marks · - \' . ,');
  // A lone surrogate cannot be encoded in a certificate's UTF8String.
  if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(name)) throw invalid(operation, 'name is not well-formed Unicode');
  return name;
}

export function parseBirthDate(input: unknown, operation: string, today: Date): string {
  if (typeof input !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(input)) throw invalid(operation, 'birthDate must be a date as YYYY-MM-DD');
  const date = new Date(`${input}T00:00:00Z`);
  if (Number.isNaN(date.getTime()) || date.toISOString().slice(0, 10) !== input) throw invalid(operation, 'birthDate is not a calendar date');
  if (date.getTime() > today.getTime()) throw invalid(operation, 'birthDate is in the future');
  if (date.getUTCFullYear() < 1890) throw invalid(operation, 'birthDate is before 1890');
  return input;
}

export function parseEmail(input: unknown, operation: string): string {
  if (typeof input !== 'string' || input.length > 254 || !EMAIL.test(input) || input.split('@')[0]!.length > 64) {
    throw invalid(operation, 'email must be an address like name@example.tw (ASCII, at most 254 characters)');
  }
  return input;
}

function invalid(operation: string, reason: string): PkiError {
  return new PkiError('INVALID_ARGUMENT', `${operation}: ${reason}`);
}
