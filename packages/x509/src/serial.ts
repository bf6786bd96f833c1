import { randomBytes } from 'node:crypto';
import { PkiError } from '@pki/kit';

/**
 * A random positive certificate serial number of `bytes` octets (default 16: the domain's
 * 128-bit serials). RFC 5280 §4.1.2.2: positive, at most 20 octets. The top bit is cleared so the
 * INTEGER is positive without a 0x00 pad, and the first octet is made non-zero so the DER length
 * is always exactly `bytes` (a leading 0x00 would be dropped by minimal encoding). This leaves
 * 8 * bytes - 1 bits of entropy minus a negligible bias in the first octet: 127 bits by default,
 * well over the 64 bits CA/Browser Forum practice requires.
 */
export function randomSerial(bytes = 16): Buffer {
  if (!Number.isInteger(bytes) || bytes < 8 || bytes > 20) {
    throw new PkiError('INVALID_ARGUMENT', `random serial: length must be 8 to 20 octets, got ${bytes}`);
  }
  const serial = randomBytes(bytes);
  serial[0] = serial[0]! & 0x7f;
  if (serial[0] === 0) serial[0] = 1 + (randomBytes(1)[0]! % 0x7f);
  return serial;
}

/**
 * Checks that `serial` is the content of a positive, minimally encoded INTEGER of at most 20
 * octets (RFC 5280 §4.1.2.2; X.690 §8.3.2 forbids a leading 0x00 unless the next bit is set).
 */
export function assertValidSerial(serial: Uint8Array, operation: string): void {
  if (!(serial instanceof Uint8Array) || serial.length === 0 || serial.length > 20) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: serial number must be 1 to 20 octets`);
  }
  if (serial[0]! & 0x80) throw new PkiError('INVALID_ARGUMENT', `${operation}: serial number must be positive`);
  if (serial[0] === 0 && (serial.length === 1 || (serial[1]! & 0x80) === 0)) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: serial number must be non-zero and minimally encoded`);
  }
}
