import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import { RSAPublicKey } from '@peculiar/asn1-rsa';
import { ECParameters } from '@peculiar/asn1-ecc';
import { PkiError } from '@pki/kit';
import * as oid from './oids';

export type EcCurve = 'P-256' | 'P-384';

export type PublicKeyDescription =
  | { type: 'RSA'; bits: number; exponent: number }
  | { type: 'EC'; curve: EcCurve };

const CURVE_BY_OID: Record<string, EcCurve> = { [oid.id_secp256r1]: 'P-256', [oid.id_secp384r1]: 'P-384' };
const OID_BY_CURVE: Record<EcCurve, string> = { 'P-256': oid.id_secp256r1, 'P-384': oid.id_secp384r1 };
/** Uncompressed point length (0x04 || X || Y), SEC 1 §2.3.3. */
const POINT_LENGTH: Record<EcCurve, number> = { 'P-256': 65, 'P-384': 97 };

/**
 * What kind of key a SubjectPublicKeyInfo holds. Besides the ASN.1 structure, the key is imported
 * by OpenSSL (through node's crypto), which rejects EC points not on the curve and malformed
 * RSA keys, so a key this function accepts is one a relying party can use.
 */
const descriptions = new WeakMap<Uint8Array, PublicKeyDescription>();

export function describePublicKey(spkiDer: Uint8Array, operation = 'describe public key'): PublicKeyDescription {
  const known = descriptions.get(spkiDer);
  if (known) return known;
  const spki = parseSubjectPublicKeyInfo(spkiDer, operation);
  const description = describeParsed(spki, operation);
  publicKeyObject(spkiDer, operation);
  // Only for buffers that are not written to later: the signer's certificate keys. A caller's
  // request buffer is a fresh object each time, so caching it costs nothing and helps nothing.
  descriptions.set(spkiDer, description);
  return description;
}

function describeParsed(spki: SubjectPublicKeyInfo, operation: string): PublicKeyDescription {
  const algorithm = spki.algorithm.algorithm;
  if (algorithm === oid.id_rsaEncryption) {
    let key: RSAPublicKey;
    try {
      key = AsnConvert.parse(spki.subjectPublicKey, RSAPublicKey);
    } catch (err) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: malformed RSA public key`, { cause: err });
    }
    const modulus = stripLeadingZeros(new Uint8Array(key.modulus));
    const exponent = stripLeadingZeros(new Uint8Array(key.publicExponent));
    if (modulus.length === 0 || (modulus[modulus.length - 1]! & 1) === 0) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: RSA modulus must be odd and non-zero`);
    }
    // Exponents above 2^32 are legal but unheard of; refusing them keeps `exponent` a safe number.
    if (exponent.length === 0 || exponent.length > 4 || (exponent[exponent.length - 1]! & 1) === 0) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: RSA public exponent must be odd and at most 32 bits`);
    }
    const exponentValue = Number.parseInt(Buffer.from(exponent).toString('hex'), 16);
    if (exponentValue < 3) throw new PkiError('INVALID_ARGUMENT', `${operation}: RSA public exponent must be at least 3`);
    const bits = (modulus.length - 1) * 8 + (32 - Math.clz32(modulus[0]!));
    return { type: 'RSA', bits, exponent: exponentValue };
  }
  if (algorithm === oid.id_ecPublicKey) {
    if (!spki.algorithm.parameters) throw new PkiError('INVALID_ARGUMENT', `${operation}: EC key without curve parameters`);
    let params: ECParameters;
    try {
      params = AsnConvert.parse(spki.algorithm.parameters, ECParameters);
    } catch (err) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: malformed EC parameters`, { cause: err });
    }
    // RFC 5480 §2.1.1: only namedCurve is allowed in PKIX.
    const curve = params.namedCurve === undefined ? undefined : CURVE_BY_OID[params.namedCurve];
    if (curve === undefined) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: unsupported EC curve ${params.namedCurve ?? '(not a named curve)'}`);
    }
    const point = new Uint8Array(spki.subjectPublicKey);
    // RFC 5480 §2.2: the uncompressed form MUST be supported; compressed points are refused so
    // that every relying party can read the key.
    if (point.length !== POINT_LENGTH[curve] || point[0] !== 0x04) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: EC point is not an uncompressed ${curve} point`);
    }
    return { type: 'EC', curve };
  }
  throw new PkiError('INVALID_ARGUMENT', `${operation}: unsupported public key algorithm ${algorithm}`);
}

/** Parses SPKI DER, refusing trailing bytes or anything that is not exactly one SPKI. */
export function parseSubjectPublicKeyInfo(spkiDer: Uint8Array, operation = 'parse public key'): SubjectPublicKeyInfo {
  if (!(spkiDer instanceof Uint8Array) || spkiDer.length === 0) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: public key must be non-empty DER bytes`);
  }
  let spki: SubjectPublicKeyInfo;
  try {
    spki = AsnConvert.parse(spkiDer, SubjectPublicKeyInfo);
  } catch (err) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: malformed SubjectPublicKeyInfo`, { cause: err });
  }
  // asn1js ignores bytes after the first element; a canonical re-encoding must equal the input.
  if (!Buffer.from(AsnConvert.serialize(spki)).equals(Buffer.from(spkiDer))) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: SubjectPublicKeyInfo is not canonical DER`);
  }
  return spki;
}

/** A node KeyObject for verification; INVALID_ARGUMENT if OpenSSL cannot import the key. */
// The signer verifies every signature it gets from the HSM against the same few CA and responder
// keys: import each key object once (keyed by the buffer the signer keeps for its lifetime).
const keyObjects = new WeakMap<Uint8Array, KeyObject>();

export function publicKeyObject(spkiDer: Uint8Array, operation = 'import public key'): KeyObject {
  const known = keyObjects.get(spkiDer);
  if (known) return known;
  try {
    const key = createPublicKey({ key: Buffer.from(spkiDer), format: 'der', type: 'spki' });
    keyObjects.set(spkiDer, key);
    return key;
  } catch (err) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: public key rejected: ${(err as Error).message}`, { cause: err });
  }
}

/** SPKI DER of an RSA key from its modulus and exponent (big-endian, unsigned). */
export function rsaSubjectPublicKeyInfo(modulus: Uint8Array, publicExponent: Uint8Array): Buffer {
  const key = new RSAPublicKey({ modulus: positiveInteger(modulus), publicExponent: positiveInteger(publicExponent) });
  // RFC 3279 §2.3.1: rsaEncryption parameters MUST be NULL.
  const spki = new SubjectPublicKeyInfo({
    algorithm: new AlgorithmIdentifier({ algorithm: oid.id_rsaEncryption, parameters: null }),
    subjectPublicKey: AsnConvert.serialize(key),
  });
  return Buffer.from(AsnConvert.serialize(spki));
}

/** SPKI DER of an EC key from its curve and uncompressed point (RFC 5480 §2). */
export function ecSubjectPublicKeyInfo(curve: EcCurve, point: Uint8Array): Buffer {
  const spki = new SubjectPublicKeyInfo({
    algorithm: new AlgorithmIdentifier({
      algorithm: oid.id_ecPublicKey,
      parameters: AsnConvert.serialize(new ECParameters({ namedCurve: OID_BY_CURVE[curve] })),
    }),
    subjectPublicKey: toArrayBuffer(point),
  });
  return Buffer.from(AsnConvert.serialize(spki));
}

/**
 * The uncompressed point from a PKCS#11 CKA_EC_POINT value. The attribute is "DER-encoding of
 * ANSI X9.62 ECPoint value Q" (PKCS#11 v2.40 §2.3.3), an OCTET STRING around the point, but some
 * modules return the bare point: both are accepted.
 */
export function uncompressedEcPoint(ckaEcPoint: Uint8Array, curve: EcCurve, operation = 'read EC point'): Buffer {
  const length = POINT_LENGTH[curve];
  if (ckaEcPoint.length === length && ckaEcPoint[0] === 0x04) return Buffer.from(ckaEcPoint);
  let point: Buffer | undefined;
  try {
    point = Buffer.from(AsnConvert.parse(ckaEcPoint, OctetString).buffer);
  } catch {
    point = undefined;
  }
  if (point?.length === length && point[0] === 0x04) return point;
  throw new PkiError('INVALID_ARGUMENT', `${operation}: not an uncompressed ${curve} point`);
}

/** The DER OID of a named curve, as PKCS#11 CKA_EC_PARAMS wants it. */
export function namedCurveParameters(curve: EcCurve): Buffer {
  return Buffer.from(AsnConvert.serialize(new ECParameters({ namedCurve: OID_BY_CURVE[curve] })));
}

/**
 * RFC 5280 §4.2.1.2 method (1): the 160-bit SHA-1 hash of the value of the BIT STRING
 * subjectPublicKey (excluding the tag, length and number of unused bits).
 */
export function subjectKeyIdentifierOf(spkiDer: Uint8Array): Buffer {
  const spki = parseSubjectPublicKeyInfo(spkiDer, 'compute key identifier');
  return createHash('sha1').update(new Uint8Array(spki.subjectPublicKey)).digest();
}

/**
 * The content octets of a positive DER INTEGER from unsigned big-endian bytes (X.690 §8.3):
 * leading zero octets removed, one 0x00 added when the high bit is set so it stays positive.
 * The INTEGER itself is encoded by asn1-schema; its converter takes these octets as they are.
 */
export function positiveInteger(unsigned: Uint8Array): ArrayBuffer {
  const stripped = stripLeadingZeros(unsigned);
  if (stripped.length === 0) return new Uint8Array([0]).buffer;
  const out = new Uint8Array(stripped.length + (stripped[0]! & 0x80 ? 1 : 0));
  out.set(stripped, out.length - stripped.length);
  return out.buffer;
}

function stripLeadingZeros(bytes: Uint8Array): Uint8Array {
  let i = 0;
  while (i < bytes.length && bytes[i] === 0) i++;
  return bytes.subarray(i);
}

export function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}
