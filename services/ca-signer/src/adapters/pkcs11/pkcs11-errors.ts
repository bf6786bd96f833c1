import * as pkcs11 from 'pkcs11js';
import { PkiError, type ErrorCode } from '@pki/kit';

/** CKR_* names by value, from pkcs11js's constants. */
const CKR_NAMES = new Map<number, string>(
  Object.entries(pkcs11)
    .filter(([name, value]) => name.startsWith('CKR_') && typeof value === 'number')
    .map(([name, value]) => [value as number, name]),
);

/**
 * Return values meaning the HSM, the token or the session is gone or unusable: the request may
 * succeed later (after re-initialisation), so callers see UNAVAILABLE. A circuit breaker and
 * re-initialisation hook onto exactly this classification.
 */
const UNAVAILABLE = new Set([
  'CKR_DEVICE_ERROR', 'CKR_DEVICE_MEMORY', 'CKR_DEVICE_REMOVED', 'CKR_TOKEN_NOT_PRESENT', 'CKR_TOKEN_NOT_RECOGNIZED',
  'CKR_SESSION_CLOSED', 'CKR_SESSION_HANDLE_INVALID', 'CKR_SESSION_COUNT', 'CKR_CRYPTOKI_NOT_INITIALIZED',
  'CKR_USER_NOT_LOGGED_IN', 'CKR_SLOT_ID_INVALID', 'CKR_HOST_MEMORY', 'CKR_FUNCTION_CANCELED',
  'CKR_LIBRARY_LOAD_FAILED', 'CKR_FUNCTION_FAILED',
]);

/** Return values caused by what the caller asked for. */
const INVALID_ARGUMENT = new Set([
  'CKR_DATA_INVALID', 'CKR_DATA_LEN_RANGE', 'CKR_KEY_TYPE_INCONSISTENT', 'CKR_KEY_FUNCTION_NOT_PERMITTED',
  'CKR_MECHANISM_INVALID', 'CKR_MECHANISM_PARAM_INVALID', 'CKR_KEY_SIZE_RANGE', 'CKR_TEMPLATE_INCONSISTENT',
  'CKR_TEMPLATE_INCOMPLETE', 'CKR_ATTRIBUTE_VALUE_INVALID', 'CKR_DOMAIN_PARAMS_INVALID', 'CKR_CURVE_NOT_SUPPORTED',
]);

/** The key is gone (deleted since it was looked up). */
const NOT_FOUND = new Set(['CKR_KEY_HANDLE_INVALID', 'CKR_OBJECT_HANDLE_INVALID']);

/** Login problems: the deployment's PIN or token is wrong, not the request. */
const FAILED_PRECONDITION = new Set(['CKR_PIN_INCORRECT', 'CKR_PIN_LOCKED', 'CKR_PIN_EXPIRED', 'CKR_PIN_INVALID', 'CKR_PIN_LEN_RANGE']);

/** The CKR_* name of a pkcs11js error, if it carries one. */
export function pkcs11ReturnValue(err: unknown): string | undefined {
  if (err instanceof pkcs11.Pkcs11Error) return CKR_NAMES.get(err.code) ?? `CKR 0x${err.code.toString(16)}`;
  // graphene re-wraps some errors; their message starts "CKR_NAME:value".
  const match = err instanceof Error ? /\b(CKR_[A-Z_]+)\b/.exec(err.message) : null;
  return match?.[1];
}

/**
 * Turns a PKCS#11 failure into the project's typed error. The message names the operation, the
 * CKR_* value and the PKCS#11 function, nothing else: pkcs11js messages never contain the PIN,
 * and this function does not copy arbitrary text into the message.
 */
export function toPkiError(err: unknown, operation: string): PkiError {
  if (err instanceof PkiError) return err;
  const ckr = pkcs11ReturnValue(err);
  const method = err instanceof pkcs11.NativeError && err.method ? ` in ${err.method}` : '';
  if (ckr === undefined) {
    // A NativeError without a CKR value: the module could not be called at all.
    if (err instanceof pkcs11.NativeError) return new PkiError('UNAVAILABLE', `${operation}: HSM unavailable: native PKCS#11 error${method}`, { cause: err });
    return PkiError.from(err, operation);
  }
  const code: ErrorCode = UNAVAILABLE.has(ckr)
    ? 'UNAVAILABLE'
    : INVALID_ARGUMENT.has(ckr)
      ? 'INVALID_ARGUMENT'
      : NOT_FOUND.has(ckr)
        ? 'NOT_FOUND'
        : FAILED_PRECONDITION.has(ckr)
          ? 'FAILED_PRECONDITION'
          : 'INTERNAL';
  const prefix = code === 'UNAVAILABLE' ? 'HSM unavailable: ' : '';
  return new PkiError(code, `${operation}: ${prefix}${ckr}${method}`, { cause: err, details: { pkcs11ReturnValue: ckr } });
}
