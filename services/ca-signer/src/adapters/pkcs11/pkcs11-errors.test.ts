import * as pkcs11 from 'pkcs11js';
import { PkiError } from '@pki/kit';
import { toPkiError } from './pkcs11-errors';

const ckr = (name: string, method = 'C_Sign') => {
  const code = (pkcs11 as unknown as Record<string, number>)[name]!;
  return new pkcs11.Pkcs11Error(`${name}:${code}`, code, method);
};

describe('PKCS#11 error mapping', () => {
  it.each([
    ['CKR_DEVICE_ERROR', 'UNAVAILABLE', 'sign: HSM unavailable: CKR_DEVICE_ERROR in C_Sign'],
    ['CKR_SESSION_HANDLE_INVALID', 'UNAVAILABLE', 'sign: HSM unavailable: CKR_SESSION_HANDLE_INVALID in C_Sign'],
    ['CKR_TOKEN_NOT_PRESENT', 'UNAVAILABLE', 'sign: HSM unavailable: CKR_TOKEN_NOT_PRESENT in C_Sign'],
    ['CKR_CRYPTOKI_NOT_INITIALIZED', 'UNAVAILABLE', 'sign: HSM unavailable: CKR_CRYPTOKI_NOT_INITIALIZED in C_Sign'],
    ['CKR_KEY_HANDLE_INVALID', 'NOT_FOUND', 'sign: CKR_KEY_HANDLE_INVALID in C_Sign'],
    ['CKR_DATA_LEN_RANGE', 'INVALID_ARGUMENT', 'sign: CKR_DATA_LEN_RANGE in C_Sign'],
    ['CKR_PIN_INCORRECT', 'FAILED_PRECONDITION', 'sign: CKR_PIN_INCORRECT in C_Sign'],
    ['CKR_GENERAL_ERROR', 'INTERNAL', 'sign: CKR_GENERAL_ERROR in C_Sign'],
  ])('%s becomes %s', (name, code, message) => {
    const error = toPkiError(ckr(name), 'sign');
    expect(error).toBeInstanceOf(PkiError);
    expect(error.code).toBe(code);
    expect(error.message).toBe(message);
    expect(error.details).toEqual({ pkcs11ReturnValue: name });
  });

  it('passes PkiErrors through and wraps unknown errors as INTERNAL', () => {
    const notFound = new PkiError('NOT_FOUND', 'sign: key 00 not found');
    expect(toPkiError(notFound, 'sign')).toBe(notFound);
    expect(toPkiError(new Error('odd'), 'sign')).toMatchObject({ code: 'INTERNAL', message: 'sign: odd' });
  });
});
