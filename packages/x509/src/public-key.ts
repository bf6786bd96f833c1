import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, SubjectPublicKeyInfo } from '@peculiar/asn1-x509';
import { RSAPublicKey } from '@peculiar/asn1-rsa';
import { ECParameters } from '@peculiar/asn1-ecc';
import { PkiError } from '@pki/kit';
import { decodeOid, derBytes, derChildren, derContent, type DerElement, readDerElement } from './der';
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
 * What kind of key a SubjectPublicKeyInfo holds. Besides the ASN.1 structure, an EC key is imported
 * by OpenSSL (through node's crypto), which rejects points not on the curve; an RSA key's numbers
 * are read and checked here. A key this function accepts is one a relying party can use.
 *
 * Answers are kept by the bytes of the key (a few hundred, least recently used first out): one
 * issuance describes the card's key when it checks the request and again when the linter reads it
 * back from the TBS, and the OpenSSL import is most of the cost.
 */
export function describePublicKey(spkiDer: Uint8Array, operation = 'describe public key'): PublicKeyDescription {
  const key = spkiDer instanceof Uint8Array ? Buffer.from(spkiDer.buffer, spkiDer.byteOffset, spkiDer.byteLength).toString('base64') : '';
  const known = descriptions.get(key);
  if (known !== undefined) {
    // Refresh its place: the keys of a card in issuance are asked for again within milliseconds.
    descriptions.delete(key);
    descriptions.set(key, known);
    return known;
  }
  const description = Object.freeze(describeSpki(readSubjectPublicKeyInfo(spkiDer, operation), operation));
  // An EC point must be on its curve, which only the import checks. An RSA key has been read in
  // full above (strict DER, odd modulus, odd exponent of at least 3): OpenSSL's import of an RSA
  // public key checks no more, and cost 120 to 180 µs of a signer's event loop per certificate.
  if (description.type === 'EC') publicKeyObject(spkiDer, operation);
  if (descriptions.size >= DESCRIPTIONS_KEPT) descriptions.delete(descriptions.keys().next().value!);
  descriptions.set(key, description);
  return description;
}

const DESCRIPTIONS_KEPT = 512;
const descriptions = new Map<string, PublicKeyDescription>();

/** A SubjectPublicKeyInfo (RFC 5280 §4.1.2.7) as read by {@link readSubjectPublicKeyInfo}. */
export interface SubjectPublicKeyInfoParts {
  /** The AlgorithmIdentifier's OID, dotted. */
  algorithm: string;
  /** The DER of the algorithm parameters, when present. */
  parameters?: Buffer;
  /** The subjectPublicKey BIT STRING's octets (after the unused-bits octet, which is 0). */
  publicKey: Buffer;
}

/**
 * Reads a SubjectPublicKeyInfo strictly: exactly one DER element, no trailing bytes, minimal
 * lengths, a BIT STRING without unused bits. Accepts and refuses what
 * {@link parseSubjectPublicKeyInfo} (the schema layer and a canonical re-encoding) does, without
 * building schema objects (public-key.test.ts compares both over random and damaged keys).
 *
 *   SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }
 *   AlgorithmIdentifier ::= SEQUENCE { algorithm OBJECT IDENTIFIER, parameters ANY DEFINED BY algorithm OPTIONAL }
 */
export function readSubjectPublicKeyInfo(spkiDer: Uint8Array, operation = 'parse public key'): SubjectPublicKeyInfoParts {
  if (!(spkiDer instanceof Uint8Array) || spkiDer.length === 0) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: public key must be non-empty DER bytes`);
  }
  const malformed = (cause?: unknown) => new PkiError('INVALID_ARGUMENT', `${operation}: malformed SubjectPublicKeyInfo`, cause === undefined ? {} : { cause });
  const notCanonical = () => new PkiError('INVALID_ARGUMENT', `${operation}: SubjectPublicKeyInfo is not canonical DER`);
  let top: DerElement;
  let fields: DerElement[];
  let algorithmFields: DerElement[];
  try {
    top = readDerElement(spkiDer, 0, operation);
    if (top.tag !== 0x30) throw malformed();
    fields = derChildren(spkiDer, top, operation);
    if (fields.length !== 2 || fields[0]!.tag !== 0x30 || fields[1]!.tag !== 0x03) throw malformed();
    algorithmFields = derChildren(spkiDer, fields[0]!, operation);
    if (algorithmFields.length < 1 || algorithmFields.length > 2 || algorithmFields[0]!.tag !== 0x06) throw malformed();
  } catch (err) {
    // Lengths that are valid BER but not minimal: the schema layer reads them and re-encodes differently.
    if (err instanceof PkiError && /non-minimal length/.test(err.message)) throw notCanonical();
    throw err instanceof PkiError && err.message.startsWith(`${operation}: malformed SubjectPublicKeyInfo`) ? err : malformed(err);
  }
  if (top.end !== spkiDer.length) throw notCanonical();
  const bits = fields[1]!;
  if (bits.end - bits.contentStart < 1) throw malformed();
  // X.690 §11.2: the key is whole octets; unused bits would not survive a canonical re-encoding.
  if (spkiDer[bits.contentStart] !== 0) throw notCanonical();
  let algorithm: string;
  try {
    algorithm = decodeOid(spkiDer.subarray(algorithmFields[0]!.contentStart, algorithmFields[0]!.end), operation);
  } catch (err) {
    throw malformed(err);
  }
  const parts: SubjectPublicKeyInfoParts = { algorithm, publicKey: derContent(spkiDer, bits).subarray(1) };
  const parameters = algorithmFields[1];
  if (parameters !== undefined) {
    parts.parameters = derBytes(spkiDer, parameters);
    // The parameters are an ANY. The keys this CA sees carry NULL (RSA) or a curve OID (EC), read
    // here; anything else is judged by the schema layer, as before.
    const plain = (parameters.tag === 0x05 && parameters.end === parameters.contentStart) || (parameters.tag === 0x06 && isOid(spkiDer.subarray(parameters.contentStart, parameters.end)));
    if (!plain) parseSubjectPublicKeyInfo(spkiDer, operation);
  }
  return parts;
}

function isOid(content: Uint8Array): boolean {
  try {
    decodeOid(content);
    return true;
  } catch {
    return false;
  }
}

function describeSpki(spki: SubjectPublicKeyInfoParts, operation: string): PublicKeyDescription {
  if (spki.algorithm === oid.id_rsaEncryption) {
    // RFC 3279 §2.3.1: "The parameters field MUST have ASN.1 type NULL for this algorithm identifier."
    if (spki.parameters === undefined || !isDerNullElement(spki.parameters)) throw new PkiError('INVALID_ARGUMENT', `${operation}: RSA key parameters must be NULL (RFC 3279 §2.3.1)`);
    const { modulus, exponent } = readRsaPublicKey(spki.publicKey, operation);
    if (modulus.length === 0 || (modulus[modulus.length - 1]! & 1) === 0) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: RSA modulus must be odd and non-zero`);
    }
    // Exponents above 2^32 are legal but unheard of; refusing them keeps `exponent` a safe number.
    if (exponent.length === 0 || exponent.length > 4 || (exponent[exponent.length - 1]! & 1) === 0) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: RSA public exponent must be odd and at most 32 bits`);
    }
    const exponentValue = exponent.reduce((value, octet) => value * 256 + octet, 0);
    if (exponentValue < 3) throw new PkiError('INVALID_ARGUMENT', `${operation}: RSA public exponent must be at least 3`);
    const bits = (modulus.length - 1) * 8 + (32 - Math.clz32(modulus[0]!));
    return { type: 'RSA', bits, exponent: exponentValue };
  }
  if (spki.algorithm === oid.id_ecPublicKey) {
    if (spki.parameters === undefined) throw new PkiError('INVALID_ARGUMENT', `${operation}: EC key without curve parameters`);
    // RFC 5480 §2.1.1: ECParameters ::= CHOICE { namedCurve OID, ... }; only namedCurve is allowed in PKIX.
    let namedCurve: string | undefined;
    if (spki.parameters[0] === 0x06) {
      try {
        namedCurve = decodeOid(derContent(spki.parameters, readDerElement(spki.parameters, 0, operation)), operation);
      } catch (err) {
        throw new PkiError('INVALID_ARGUMENT', `${operation}: malformed EC parameters`, { cause: err });
      }
    } else if (spki.parameters[0] !== 0x05 && spki.parameters[0] !== 0x30) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: malformed EC parameters`);
    }
    const curve = namedCurve === undefined ? undefined : CURVE_BY_OID[namedCurve];
    if (curve === undefined) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: unsupported EC curve ${namedCurve ?? '(not a named curve)'}`);
    }
    const point = spki.publicKey;
    // RFC 5480 §2.2: the uncompressed form MUST be supported; compressed points are refused so
    // that every relying party can read the key.
    if (point.length !== POINT_LENGTH[curve] || point[0] !== 0x04) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: EC point is not an uncompressed ${curve} point`);
    }
    return { type: 'EC', curve };
  }
  throw new PkiError('INVALID_ARGUMENT', `${operation}: unsupported public key algorithm ${spki.algorithm}`);
}

function isDerNullElement(der: Buffer): boolean {
  return der.length === 2 && der[0] === 0x05 && der[1] === 0x00;
}

/**
 * RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER } (RFC 8017 A.1.1), read
 * strictly (one element, minimal positive INTEGERs); both returned without leading zero octets.
 */
function readRsaPublicKey(bytes: Buffer, operation: string): { modulus: Buffer; exponent: Buffer } {
  try {
    const top = readDerElement(bytes, 0, operation);
    const fields = top.tag === 0x30 && top.end === bytes.length ? derChildren(bytes, top, operation) : [];
    if (fields.length !== 2 || fields[0]!.tag !== 0x02 || fields[1]!.tag !== 0x02) throw new Error('not a SEQUENCE of two INTEGERs');
    const [modulus, exponent] = fields.map((field) => {
      const content = derContent(bytes, field);
      // X.690 §8.3.2: minimal; and a key's numbers are positive.
      if (content.length === 0 || content[0]! & 0x80 || (content.length > 1 && content[0] === 0 && (content[1]! & 0x80) === 0)) {
        throw new Error('an INTEGER is negative, empty or not minimal');
      }
      return content[0] === 0 ? content.subarray(1) : content;
    }) as [Buffer, Buffer];
    return { modulus, exponent };
  } catch (err) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: malformed RSA public key`, { cause: err });
  }
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
  return createHash('sha1').update(readSubjectPublicKeyInfo(spkiDer, 'compute key identifier').publicKey).digest();
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
