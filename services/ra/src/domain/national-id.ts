import { PkiError } from '@pki/kit';

/**
 * Taiwan's personal identification numbers, as ra accepts them for subscribers:
 *
 * - National ID (國民身分證統一編號): a letter for the place of first registration, a gender
 *   digit (1 male, 2 female), seven digits and a check digit, e.g. A123456789.
 * - Resident certificate number in the unified format used since 2021 (新式統一證號): the same
 *   shape with 8 (male) or 9 (female) as its second character, e.g. A800000014.
 * - The older resident certificate number (舊式統一證號): two letters, the second giving the
 *   gender (A or C male, B or D female), then eight digits, e.g. AA12345678. Still found on
 *   residence permits issued before 2021 and in legacy registries.
 *
 * All three use one checksum: the first letter becomes two digits (A=10 ... Z=33, in the
 * registry's own order, below), weighted 1 and 9; the eight following characters are weighted
 * 8, 7, ..., 1 (the second letter of the old resident format counting as its code's last digit);
 * the check digit is added with weight 1, and the sum must be a multiple of 10.
 */
const LETTER_CODES: Readonly<Record<string, number>> = {
  A: 10, B: 11, C: 12, D: 13, E: 14, F: 15, G: 16, H: 17, I: 34, J: 18, K: 19, L: 20, M: 21,
  N: 22, O: 35, P: 23, Q: 24, R: 25, S: 26, T: 27, U: 28, V: 29, W: 32, X: 30, Y: 31, Z: 33,
};

export type NationalIdKind = 'CITIZEN' | 'RESIDENT' | 'RESIDENT_LEGACY';
export type Gender = 'MALE' | 'FEMALE';

export interface NationalId {
  /** Upper-case, no spaces: the form that is hashed, encrypted and compared. */
  readonly value: string;
  readonly kind: NationalIdKind;
  /** For the programme's statistics (domain.md), derived from the number itself. */
  readonly gender: Gender;
  /** What the certificate's subjectDirectoryAttributes carry (domain.md): the last four digits. */
  readonly lastFour: string;
}

const SHAPE = /^[A-Z]([12890][0-9]{8}|[A-D][0-9]{8})$/;

/**
 * Parses and checks a national ID or resident number. The error never repeats the input: it is
 * personal data, and error messages reach logs and API callers.
 */
export function parseNationalId(input: unknown, operation: string): NationalId {
  if (typeof input !== 'string') throw invalid(operation, 'must be a string');
  const value = input.trim().toUpperCase();
  if (!SHAPE.test(value)) {
    throw invalid(operation, 'must be a letter and nine digits (a national ID or a resident number) or two letters and eight digits (an older resident number)');
  }
  const first = LETTER_CODES[value[0]!]!;
  const second = value[1]!;
  const legacy = second >= 'A' && second <= 'D';
  if (!legacy && !'1289'.includes(second)) throw invalid(operation, 'has a second character that is no gender code (1, 2, 8 or 9)');
  const middle = legacy ? LETTER_CODES[second]! % 10 : Number(second);
  const digits = [Math.floor(first / 10), first % 10, middle, ...value.slice(2).split('').map(Number)];
  const weights = [1, 9, 8, 7, 6, 5, 4, 3, 2, 1, 1];
  const sum = digits.reduce((acc, digit, i) => acc + digit * weights[i]!, 0);
  if (sum % 10 !== 0) throw invalid(operation, 'fails its check digit');
  const kind: NationalIdKind = legacy ? 'RESIDENT_LEGACY' : second === '8' || second === '9' ? 'RESIDENT' : 'CITIZEN';
  const gender: Gender = legacy ? (second === 'A' || second === 'C' ? 'MALE' : 'FEMALE') : second === '1' || second === '8' ? 'MALE' : 'FEMALE';
  return { value, kind, gender, lastFour: value.slice(-4) };
}

/** Makes a valid number from its first nine characters (tests, generators): appends the check digit. */
export function withCheckDigit(prefix: string): string {
  const upper = prefix.toUpperCase();
  for (let d = 0; d <= 9; d++) {
    try {
      return parseNationalId(`${upper}${d}`, 'check digit').value;
    } catch {
      // try the next digit
    }
  }
  throw new PkiError('INVALID_ARGUMENT', 'check digit: no digit completes this prefix');
}

function invalid(operation: string, reason: string): PkiError {
  return new PkiError('INVALID_ARGUMENT', `${operation}: nationalId ${reason}`);
}
