import { createHash } from 'node:crypto';
import * as asn1js from 'asn1js';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, CRLReasons } from '@peculiar/asn1-x509';
import { CertID, id_pkix_ocsp_basic, KeyHash, OCSPResponseStatus, ResponderID } from '@peculiar/asn1-ocsp';
import { PkiError } from '@pki/kit';
import { derChildren, encodeDerElement, readDerElement } from './der';
import { parseSubjectPublicKeyInfo, positiveInteger, toArrayBuffer } from './public-key';
import { signatureAlgorithmIdentifier, type SignatureAlgorithm } from './signature-algorithm';

export type CertIdHash = 'SHA1' | 'SHA256';

const HASH_OID: Record<CertIdHash, string> = { SHA1: '1.3.14.3.2.26', SHA256: '2.16.840.1.101.3.4.2.1' };
const NODE_HASH: Record<CertIdHash, string> = { SHA1: 'sha1', SHA256: 'sha256' };

// Hashes over the same issuer and responder keys recur in every response of a batch: compute
// them once per key object (the signer keeps its certificates' buffers for its lifetime).
const keyHashCache = new WeakMap<Uint8Array, Map<string, Buffer>>();
const nameHashCache = new WeakMap<Uint8Array, Map<string, Buffer>>();

function cached(cache: WeakMap<Uint8Array, Map<string, Buffer>>, key: Uint8Array, algorithm: string, compute: () => Buffer): Buffer {
  let byAlgorithm = cache.get(key);
  if (!byAlgorithm) cache.set(key, (byAlgorithm = new Map()));
  let value = byAlgorithm.get(algorithm);
  if (!value) byAlgorithm.set(algorithm, (value = compute()));
  return value;
}

/** The public key bits an OCSP key hash covers: the BIT STRING value, without tag, length or unused-bits octet (RFC 6960 §4.1.1). */
export function publicKeyBits(spkiDer: Uint8Array): Buffer {
  return Buffer.from(parseSubjectPublicKeyInfo(spkiDer, 'OCSP key hash').subjectPublicKey);
}

function keyHash(spkiDer: Uint8Array, algorithm: string): Buffer {
  return cached(keyHashCache, spkiDer, algorithm, () => createHash(algorithm).update(publicKeyBits(spkiDer)).digest());
}

export interface OcspIssuer {
  /** The issuer certificate's subject, DER. */
  subjectDer: Uint8Array;
  subjectPublicKeyInfo: Uint8Array;
}

export interface OcspSingleResponseSpec {
  certIdHash: CertIdHash;
  /** Serial: the DER INTEGER content octets. */
  serial: Uint8Array;
  status: { kind: 'good' } | { kind: 'unknown' } | { kind: 'revoked'; revocationTime: Date; reason?: CRLReasons };
  thisUpdate: Date;
  nextUpdate: Date;
}

export interface ResponseDataSpec {
  /** The certificate whose status is given: CertID hashes are over its issuer (RFC 6960 §4.1.1). */
  issuer: OcspIssuer;
  /** The responder's public key: ResponderID byKey is its SHA-1 key hash (§4.2.1). */
  responderSpki: Uint8Array;
  producedAt: Date;
  responses: readonly OcspSingleResponseSpec[];
  /**
   * A nonce to echo (live responses only): the request's nonce extnValue contents, copied byte for
   * byte into the response's nonce extension (RFC 8954 §2.1, RFC 6960 §4.4.1).
   */
  nonce?: Uint8Array;
  /**
   * Adds id-pkix-ocsp-extended-revoke (RFC 6960 §4.4.8): the responder answers "revoked" for
   * serials that were never issued (§2.2).
   */
  extendedRevoke?: boolean;
}

function checkSecond(date: Date, field: string): void {
  // GeneralizedTime in OCSP has no fractional seconds (RFC 6960 §4.2.2.1 via RFC 5280 §4.1.2.5.2).
  if (Number.isNaN(date.getTime()) || date.getUTCMilliseconds() !== 0) {
    throw new PkiError('INVALID_ARGUMENT', `build OCSP response: ${field} must be a valid date in whole seconds`);
  }
}

/** A CertID for `serial` under `issuer`, hashed with `hash` (RFC 6960 §4.1.1). */
export function buildCertId(issuer: OcspIssuer, serial: Uint8Array, hash: CertIdHash): CertID {
  const algorithm = NODE_HASH[hash];
  const nameHash = cached(nameHashCache, issuer.subjectDer, algorithm, () => createHash(algorithm).update(issuer.subjectDer).digest());
  return new CertID({
    // OpenSSL writes NULL parameters in the CertID hash algorithm; so do we, for interoperability.
    hashAlgorithm: new AlgorithmIdentifier({ algorithm: HASH_OID[hash], parameters: null }),
    issuerNameHash: new OctetString(toArrayBuffer(nameHash)),
    issuerKeyHash: new OctetString(toArrayBuffer(keyHash(issuer.subjectPublicKeyInfo, algorithm))),
    serialNumber: positiveInteger(serial),
  });
}

/*
 * ResponseData is encoded directly in DER rather than through the schema layer: a pre-produced
 * response is signed for every certificate on every refresh, and the schema layer spent about
 * 100 µs on each, a sixth of an HSM signature. Only the serial, the status and the times vary; the
 * rest is encoded once per issuer and responder key, by the schema layer. ocsp.test.ts checks the
 * output byte for byte against a schema encoding of the same response over many random inputs,
 * and the signer's tests check every response with OpenSSL and pkilint.
 *
 *   ResponseData ::= SEQUENCE { responderID [2] EXPLICIT KeyHash, producedAt GeneralizedTime,
 *                               responses SEQUENCE OF SingleResponse }          (RFC 6960 §4.2.1)
 *   SingleResponse ::= SEQUENCE { certID CertID, certStatus CertStatus, thisUpdate GeneralizedTime,
 *                                 nextUpdate [0] EXPLICIT GeneralizedTime }
 *   CertStatus ::= CHOICE { good [0] IMPLICIT NULL, revoked [1] IMPLICIT RevokedInfo, unknown [2] IMPLICIT NULL }
 *   RevokedInfo ::= SEQUENCE { revocationTime GeneralizedTime, revocationReason [0] EXPLICIT CRLReason OPTIONAL }
 */
const GOOD_DER = Buffer.from([0x80, 0x00]);
const UNKNOWN_DER = Buffer.from([0x82, 0x00]);

// The CertID's fixed part (hashAlgorithm, issuerNameHash, issuerKeyHash) per issuer name, key and
// hash, and the ResponderID per responder key; keyed by the certificate buffers the signer keeps
// (two issuer generations share a subject DN, not a key).
const certIdPrefixCache = new WeakMap<Uint8Array, WeakMap<Uint8Array, Map<string, Buffer>>>();
const responderIdCache = new WeakMap<Uint8Array, Map<string, Buffer>>();

function certIdPrefix(issuer: OcspIssuer, hash: CertIdHash): Buffer {
  let byKey = certIdPrefixCache.get(issuer.subjectDer);
  if (!byKey) certIdPrefixCache.set(issuer.subjectDer, (byKey = new WeakMap()));
  return cached(byKey, issuer.subjectPublicKeyInfo, hash, () => {
    const certId = Buffer.from(AsnConvert.serialize(buildCertId(issuer, new Uint8Array([1]), hash)));
    // Everything inside the CertID SEQUENCE up to the serial INTEGER, which is its last element.
    const outer = readDerElement(certId, 0, 'encode CertID');
    const children = derChildren(certId, outer, 'encode CertID');
    return Buffer.from(certId.subarray(outer.contentStart, children[children.length - 1]!.start));
  });
}

function responderIdDer(responderSpki: Uint8Array): Buffer {
  return cached(responderIdCache, responderSpki, 'byKey', () =>
    Buffer.from(AsnConvert.serialize(new ResponderID({ byKey: new KeyHash(toArrayBuffer(keyHash(responderSpki, 'sha1'))) }))),
  );
}

// A batch carries a handful of distinct times (producedAt, thisUpdate, nextUpdate) many times over.
const recentTimes = new Map<number, Buffer>();

/** GeneralizedTime in DER: YYYYMMDDHHMMSSZ, no fraction (X.690 §11.7, RFC 5280 §4.1.2.5.2). */
function generalizedTimeDer(date: Date, field: string): Buffer {
  const known = recentTimes.get(date.getTime());
  if (known !== undefined) return known;
  checkSecond(date, field);
  const year = date.getUTCFullYear();
  if (year < 1 || year > 9999) throw new PkiError('INVALID_ARGUMENT', `build OCSP response: ${field} year ${year} does not fit GeneralizedTime`);
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.000Z for years 0000 to 9999
  const text = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  const der = encodeDerElement(0x18, Buffer.from(text, 'latin1'));
  if (recentTimes.size >= 256) recentTimes.clear();
  recentTimes.set(date.getTime(), der);
  return der;
}

const CRL_REASONS = new Set<number>(Object.values(CRLReasons).filter((v): v is number => typeof v === 'number'));

function certStatusDer(status: OcspSingleResponseSpec['status']): Buffer {
  if (status.kind === 'good') return GOOD_DER;
  if (status.kind === 'unknown') return UNKNOWN_DER;
  const time = generalizedTimeDer(status.revocationTime, 'revocationTime');
  if (status.reason === undefined) return encodeDerElement(0xa1, time);
  if (!CRL_REASONS.has(status.reason)) {
    throw new PkiError('INVALID_ARGUMENT', `build OCSP response: ${status.reason} is not a CRLReason`);
  }
  return encodeDerElement(0xa1, time, encodeDerElement(0xa0, encodeDerElement(0x0a, Buffer.from([status.reason]))));
}

/**
 * The DER of a ResponseData (RFC 6960 §4.2.1) for pre-produced responses (RFC 5019): no nonce,
 * responder by key hash, one SingleResponse per spec.
 */
export function buildResponseData(spec: ResponseDataSpec): Buffer {
  if (spec.responses.length === 0) throw new PkiError('INVALID_ARGUMENT', 'build OCSP response: no responses');
  const producedAt = generalizedTimeDer(spec.producedAt, 'producedAt');
  const singles = spec.responses.map((r) => {
    const thisUpdate = generalizedTimeDer(r.thisUpdate, 'thisUpdate');
    const nextUpdate = generalizedTimeDer(r.nextUpdate, 'nextUpdate');
    if (r.nextUpdate <= r.thisUpdate) throw new PkiError('INVALID_ARGUMENT', 'build OCSP response: nextUpdate must be after thisUpdate');
    if (HASH_OID[r.certIdHash] === undefined) throw new PkiError('INVALID_ARGUMENT', `build OCSP response: unknown CertID hash ${String(r.certIdHash)}`);
    const certId = encodeDerElement(0x30, certIdPrefix(spec.issuer, r.certIdHash), encodeDerElement(0x02, new Uint8Array(positiveInteger(r.serial))));
    return encodeDerElement(0x30, certId, certStatusDer(r.status), thisUpdate, encodeDerElement(0xa0, nextUpdate));
  });
  const extensions: Buffer[] = [];
  if (spec.nonce !== undefined) {
    if (spec.nonce.length === 0) throw new PkiError('INVALID_ARGUMENT', 'build OCSP response: the nonce is empty');
    extensions.push(encodeDerElement(0x30, NONCE_OID_DER, encodeDerElement(0x04, spec.nonce)));
  }
  if (spec.extendedRevoke) extensions.push(EXTENDED_REVOKE_EXTENSION_DER);
  // responseExtensions [1] EXPLICIT Extensions OPTIONAL (RFC 6960 §4.2.1)
  const responseExtensions = extensions.length > 0 ? [encodeDerElement(0xa1, encodeDerElement(0x30, ...extensions))] : [];
  return encodeDerElement(0x30, responderIdDer(spec.responderSpki), producedAt, encodeDerElement(0x30, ...singles), ...responseExtensions);
}

// id-pkix-ocsp-nonce and the whole id-pkix-ocsp-extended-revoke extension, whose extnValue is
// NULL (RFC 6960 §4.4.8).
const NONCE_OID_DER = Buffer.from('06092b0601050507300102', 'hex');
const EXTENDED_REVOKE_EXTENSION_DER = Buffer.from('300f06092b06010505073001090402' + '0500', 'hex');

const algorithmDerCache = new Map<SignatureAlgorithm, ArrayBuffer>();

// id-pkix-ocsp-basic as a DER OBJECT IDENTIFIER, encoded once by asn1js.
const OCSP_BASIC_OID_DER = Buffer.from(new asn1js.ObjectIdentifier({ value: id_pkix_ocsp_basic }).toBER());

/**
 * The OCSPResponse (status successful, id-pkix-ocsp-basic) from a signed ResponseData, with the
 * responder's certificate included so that clients can check the delegation (RFC 6960 §4.2.2.2).
 *
 * The signed ResponseData and the certificate are wrapped as they are, never re-encoded: parsing
 * and re-serialising the certificate through the schema layer for every response made batch
 * signing CPU-bound.
 */
export function assembleOcspResponse(responseDataDer: Uint8Array, signatureAlgorithm: SignatureAlgorithm, signature: Uint8Array, responderCertificateDer: Uint8Array): Buffer {
  let algorithmDer = algorithmDerCache.get(signatureAlgorithm);
  if (!algorithmDer) algorithmDerCache.set(signatureAlgorithm, (algorithmDer = AsnConvert.serialize(signatureAlgorithmIdentifier(signatureAlgorithm))));
  return assembleOcspResponseParts(responseDataDer, new Uint8Array(algorithmDer), signature, responderCertificateDer);
}

function headerLength(contentLength: number): number {
  if (contentLength < 0x80) return 2;
  if (contentLength < 0x100) return 3;
  if (contentLength < 0x10000) return 4;
  if (contentLength < 0x1000000) return 5;
  throw new PkiError('INVALID_ARGUMENT', `assemble OCSP response: ${contentLength} content octets is too long`);
}

function writeHeader(out: Buffer, offset: number, tag: number, contentLength: number): number {
  const size = headerLength(contentLength);
  out[offset] = tag;
  if (size === 2) out[offset + 1] = contentLength;
  else {
    out[offset + 1] = 0x80 | (size - 2);
    for (let i = offset + size - 1, n = contentLength; i >= offset + 2; i--, n >>>= 8) out[i] = n & 0xff;
  }
  return offset + size;
}

/**
 * The same OCSPResponse from parts already in DER (the AlgorithmIdentifier too), written into
 * one buffer: the responder assembles every answer it serves from the stored ResponseData and
 * signature and the responder certificate they share, so this is on its hot path.
 *
 *   OCSPResponse  ::= SEQUENCE { responseStatus ENUMERATED, responseBytes [0] EXPLICIT ResponseBytes }
 *   ResponseBytes ::= SEQUENCE { responseType OBJECT IDENTIFIER (id-pkix-ocsp-basic), response OCTET STRING }
 *   BasicOCSPResponse ::= SEQUENCE { tbsResponseData, signatureAlgorithm, signature BIT STRING,
 *                                    certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }  (RFC 6960 §4.2.1)
 */
export function assembleOcspResponseParts(responseDataDer: Uint8Array, signatureAlgorithmDer: Uint8Array, signature: Uint8Array, responderCertificateDer: Uint8Array): Buffer {
  if (signature.length === 0) throw new PkiError('INVALID_ARGUMENT', 'assemble OCSP response: signature is empty');
  const bitString = 1 + signature.length; // no unused bits
  const certsSequence = responderCertificateDer.length;
  const certsExplicit = headerLength(certsSequence) + certsSequence;
  const basic = responseDataDer.length + signatureAlgorithmDer.length + headerLength(bitString) + bitString + headerLength(certsExplicit) + certsExplicit;
  const octets = headerLength(basic) + basic;
  const responseBytes = OCSP_BASIC_OID_DER.length + headerLength(octets) + octets;
  const explicit = headerLength(responseBytes) + responseBytes;
  const total = 3 + headerLength(explicit) + explicit;
  const out = Buffer.allocUnsafe(headerLength(total) + total);
  let at = writeHeader(out, 0, 0x30, total);
  out[at++] = 0x0a;
  out[at++] = 0x01;
  out[at++] = OCSPResponseStatus.successful;
  at = writeHeader(out, at, 0xa0, explicit);
  at = writeHeader(out, at, 0x30, responseBytes);
  at += OCSP_BASIC_OID_DER.copy(out, at);
  at = writeHeader(out, at, 0x04, octets);
  at = writeHeader(out, at, 0x30, basic);
  out.set(responseDataDer, at);
  at += responseDataDer.length;
  out.set(signatureAlgorithmDer, at);
  at += signatureAlgorithmDer.length;
  at = writeHeader(out, at, 0x03, bitString);
  out[at++] = 0;
  out.set(signature, at);
  at += signature.length;
  at = writeHeader(out, at, 0xa0, certsExplicit);
  at = writeHeader(out, at, 0x30, certsSequence);
  out.set(responderCertificateDer, at);
  return out;
}

/** The OCSPResponseStatus values other than successful (RFC 6960 §4.2.1). */
export type OcspErrorStatus = 'malformedRequest' | 'internalError' | 'tryLater' | 'sigRequired' | 'unauthorized';

const ERROR_RESPONSES: Record<OcspErrorStatus, Buffer> = {
  malformedRequest: Buffer.from([0x30, 0x03, 0x0a, 0x01, OCSPResponseStatus.malformedRequest]),
  internalError: Buffer.from([0x30, 0x03, 0x0a, 0x01, OCSPResponseStatus.internalError]),
  tryLater: Buffer.from([0x30, 0x03, 0x0a, 0x01, OCSPResponseStatus.tryLater]),
  sigRequired: Buffer.from([0x30, 0x03, 0x0a, 0x01, OCSPResponseStatus.sigRequired]),
  unauthorized: Buffer.from([0x30, 0x03, 0x0a, 0x01, OCSPResponseStatus.unauthorized]),
};

/**
 * An OCSPResponse with only a status and no responseBytes: "when the status is not successful,
 * responseBytes is not set" (RFC 6960 §4.2.1), so it is unsigned and the same every time.
 */
export function ocspErrorResponse(status: OcspErrorStatus): Buffer {
  return ERROR_RESPONSES[status];
}
