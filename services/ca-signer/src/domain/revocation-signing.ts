import { PkiError } from '@pki/kit';
import { CRLReasons } from '@pki/x509';

// Checks shared by the two revocation signers: CRLs (crl-signing.ts) and OCSP responses
// (ocsp-signing.ts). Each signer builds every structure itself from the facts it is given (it
// never signs caller-supplied TBS bytes), checks the signature it got from the HSM against the
// certificate relying parties will use, and audits each signing.

/** Serial hex as used across the project: DER INTEGER content octets, positive, 1 to 20 octets. */
export function parseSerialHex(serialHex: string, operation: string): Buffer {
  if (!/^(?:[0-9a-f]{2}){1,20}$/.test(serialHex)) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: serial '${serialHex.slice(0, 64)}' must be lower-case hex of 1 to 20 octets`);
  }
  const serial = Buffer.from(serialHex, 'hex');
  if ((serial[0]! & 0x80) !== 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: serial ${serialHex} is negative`);
  return serial;
}

export function requireWholeSecond(date: Date | undefined, field: string, operation: string): Date {
  if (!date || Number.isNaN(date.getTime())) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} is required`);
  if (date.getUTCMilliseconds() !== 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} must be a whole second`);
  return date;
}

export function crlReason(value: number, operation: string, serialHex: string, delta: boolean): CRLReasons | undefined {
  if (value === 0) return undefined;
  if (!Object.values(CRLReasons).includes(value)) throw new PkiError('INVALID_ARGUMENT', `${operation}: unknown revocation reason ${value} for ${serialHex}`);
  // RFC 5280 §5.3.1: removeFromCRL only appears in delta CRLs.
  if (value === CRLReasons.removeFromCRL && !delta) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: removeFromCRL (${serialHex}) is only allowed on a delta CRL`);
  }
  return value as CRLReasons;
}
