import { PkiError } from '@pki/kit';
import { encodeDerElement } from './der';
import { positiveInteger } from './public-key';

/**
 * Converts a raw ECDSA signature r || s (PKCS#11 CKM_ECDSA output, IEEE P1363 form, each half the
 * curve's byte length) into the DER Ecdsa-Sig-Value that X.509, CRLs and OCSP carry
 * (RFC 5480 §2.2 / RFC 3279 §2.2.3: `SEQUENCE { r INTEGER, s INTEGER }`).
 *
 * Written with encodeDerElement rather than the schema layer: it runs once per OCSP response on
 * the signer's event loop, and the schema layer cost as much as the rest of the response's
 * encoding. The test compares both encodings over random signatures.
 */
export function ecdsaSignatureToDer(rawSignature: Uint8Array): Buffer {
  if (rawSignature.length === 0 || rawSignature.length % 2 !== 0) {
    throw new PkiError('INTERNAL', `encode ECDSA signature: raw signature length ${rawSignature.length} is not r || s`);
  }
  const half = rawSignature.length / 2;
  const r = new Uint8Array(positiveInteger(rawSignature.subarray(0, half)));
  const s = new Uint8Array(positiveInteger(rawSignature.subarray(half)));
  return encodeDerElement(0x30, encodeDerElement(0x02, r), encodeDerElement(0x02, s));
}
