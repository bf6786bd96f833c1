import { AsnConvert } from '@peculiar/asn1-schema';
import { ECDSASigValue } from '@peculiar/asn1-ecc';
import { PkiError } from '@pki/kit';
import { positiveInteger } from './public-key';

/**
 * Converts a raw ECDSA signature r || s (PKCS#11 CKM_ECDSA output, IEEE P1363 form, each half the
 * curve's byte length) into the DER Ecdsa-Sig-Value that X.509, CRLs and OCSP carry
 * (RFC 5480 §2.2 / RFC 3279 §2.2.3: `SEQUENCE { r INTEGER, s INTEGER }`).
 */
export function ecdsaSignatureToDer(rawSignature: Uint8Array): Buffer {
  if (rawSignature.length === 0 || rawSignature.length % 2 !== 0) {
    throw new PkiError('INTERNAL', `encode ECDSA signature: raw signature length ${rawSignature.length} is not r || s`);
  }
  const half = rawSignature.length / 2;
  const value = new ECDSASigValue({
    r: positiveInteger(rawSignature.subarray(0, half)),
    s: positiveInteger(rawSignature.subarray(half)),
  });
  return Buffer.from(AsnConvert.serialize(value));
}
