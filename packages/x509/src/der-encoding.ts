import * as asn1js from 'asn1js';
import { PkiError } from '@pki/kit';
import { encodeDerElement } from './der';

/**
 * DER primitives for the certificate hot path (decision 0019): what issuance writes per
 * certificate, written without building schema objects. Each is compared byte for byte with the
 * schema layer's encoding of the same value over random inputs in the tests.
 */

/** Universal tags (X.690 §8.1.2.2, X.680 §8.4) of the elements written here. */
export const DerTag = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** Context-specific tag number `n`, primitive (IMPLICIT over a primitive type) or constructed. */
export function contextTag(n: number, constructed: boolean): number {
  return 0x80 | (constructed ? 0x20 : 0) | n;
}

// The OIDs a certificate carries are a few dozen constants: each is encoded once, by asn1js.
const oidCache = new Map<string, Buffer>();
const DOTTED_OID = /^[0-2](\.(0|[1-9][0-9]*))+$/;

/** The DER OBJECT IDENTIFIER of a dotted OID (X.690 §8.19), encoded by asn1js and kept. */
export function encodeOid(dotted: string): Buffer {
  let der = oidCache.get(dotted);
  if (der === undefined) {
    if (!DOTTED_OID.test(dotted)) throw new PkiError('INVALID_ARGUMENT', `encode OID: '${dotted}' is not an OID`);
    der = Buffer.from(new asn1js.ObjectIdentifier({ value: dotted }).toBER());
    if (oidCache.size < 1024) oidCache.set(dotted, der);
  }
  return der;
}

/** SEQUENCE { ... } around elements that are already DER. */
export function derSequence(...elements: Uint8Array[]): Buffer {
  return encodeDerElement(DerTag.SEQUENCE, ...elements);
}

/** An OCTET STRING around `content`. */
export function derOctetString(content: Uint8Array): Buffer {
  return encodeDerElement(DerTag.OCTET_STRING, content);
}

/** A BIT STRING with no unused bits around whole octets (X.690 §8.6.2: the initial octet is 0). */
export function derBitString(octets: Uint8Array): Buffer {
  return encodeDerElement(DerTag.BIT_STRING, ZERO_UNUSED_BITS, octets);
}
const ZERO_UNUSED_BITS = Buffer.from([0]);

/** An INTEGER from content octets that are already minimal and positive (serials, see assertValidSerial). */
export function derIntegerContent(content: Uint8Array): Buffer {
  return encodeDerElement(DerTag.INTEGER, content);
}

/** An IA5String of text already checked to be ASCII (URIs, DNS names, mailboxes). */
export function derIa5String(tag: number, ascii: string): Buffer {
  return encodeDerElement(tag, Buffer.from(ascii, 'latin1'));
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * The UTF-8 octets of `text`, refusing lone surrogates: they have no UTF-8 form, and Buffer.from
 * would silently turn them into U+FFFD where the schema layer refuses them.
 */
export function utf8Octets(text: string, operation: string): Buffer {
  if (LONE_SURROGATE.test(text)) throw new PkiError('INVALID_ARGUMENT', `${operation}: the text holds a lone UTF-16 surrogate, which UTF-8 cannot carry`);
  return Buffer.from(text, 'utf8');
}

/**
 * An X.509 Time (RFC 5280 §4.1.2.5): UTCTime YYMMDDHHMMSSZ for 1950 to 2049, GeneralizedTime
 * YYYYMMDDHHMMSSZ from 2050, whole seconds only (§4.1.2.5.1, §4.1.2.5.2; DER, X.690 §11.7-11.8).
 */
export function derTime(date: Date, field: string, operation: string): Buffer {
  if (!(date instanceof Date) || Number.isNaN(date.getTime())) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} is not a valid date`);
  if (date.getUTCMilliseconds() !== 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} must be a whole second`);
  const year = date.getUTCFullYear();
  if (year < 1950 || year > 9999) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} must lie in the years 1950 to 9999`);
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.000Z for the years 0000 to 9999
  const digits = `${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  return year >= 2050
    ? encodeDerElement(DerTag.GENERALIZED_TIME, Buffer.from(`${iso.slice(0, 4)}${digits}`, 'latin1'))
    : encodeDerElement(DerTag.UTC_TIME, Buffer.from(`${iso.slice(2, 4)}${digits}`, 'latin1'));
}
