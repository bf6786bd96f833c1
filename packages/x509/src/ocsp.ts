import { createHash } from 'node:crypto';
import * as asn1js from 'asn1js';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, CRLReason, type CRLReasons } from '@peculiar/asn1-x509';
import {
  CertID,
  CertStatus,
  id_pkix_ocsp_basic,
  KeyHash,
  OCSPResponseStatus,
  ResponderID,
  ResponseData,
  RevokedInfo,
  SingleResponse,
} from '@peculiar/asn1-ocsp';
import { PkiError } from '@pki/kit';
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

/**
 * The DER of a ResponseData (RFC 6960 §4.2.1) for pre-produced responses (RFC 5019): no nonce,
 * responder by key hash, one SingleResponse per spec.
 */
export function buildResponseData(spec: ResponseDataSpec): Buffer {
  checkSecond(spec.producedAt, 'producedAt');
  if (spec.responses.length === 0) throw new PkiError('INVALID_ARGUMENT', 'build OCSP response: no responses');
  const responses = spec.responses.map((r) => {
    checkSecond(r.thisUpdate, 'thisUpdate');
    checkSecond(r.nextUpdate, 'nextUpdate');
    if (r.nextUpdate <= r.thisUpdate) throw new PkiError('INVALID_ARGUMENT', 'build OCSP response: nextUpdate must be after thisUpdate');
    let certStatus: CertStatus;
    if (r.status.kind === 'good') certStatus = new CertStatus({ good: null });
    else if (r.status.kind === 'unknown') certStatus = new CertStatus({ unknown: null });
    else {
      checkSecond(r.status.revocationTime, 'revocationTime');
      certStatus = new CertStatus({
        revoked: new RevokedInfo({
          revocationTime: r.status.revocationTime,
          revocationReason: r.status.reason === undefined ? undefined : new CRLReason(r.status.reason),
        }),
      });
    }
    return new SingleResponse({ certID: buildCertId(spec.issuer, r.serial, r.certIdHash), certStatus, thisUpdate: r.thisUpdate, nextUpdate: r.nextUpdate });
  });
  const data = new ResponseData({
    responderID: new ResponderID({ byKey: new KeyHash(toArrayBuffer(keyHash(spec.responderSpki, 'sha1'))) }),
    producedAt: spec.producedAt,
    responses,
  });
  return Buffer.from(AsnConvert.serialize(data));
}

const algorithmDerCache = new Map<SignatureAlgorithm, ArrayBuffer>();

/**
 * One DER element (X.690 §8.1: identifier, definite-form length, contents) around contents that
 * are already DER. Used only to wrap exact signed bytes without re-encoding them; what it builds
 * is parsed back by the schema layer in tests.
 */
function derElement(tag: number, ...contents: Uint8Array[]): Buffer {
  const length = contents.reduce((n, c) => n + c.length, 0);
  let header: number[];
  if (length < 0x80) header = [tag, length];
  else {
    const octets: number[] = [];
    for (let n = length; n > 0; n = Math.floor(n / 256)) octets.unshift(n % 256);
    header = [tag, 0x80 | octets.length, ...octets];
  }
  return Buffer.concat([Buffer.from(header), ...contents]);
}

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
  if (signature.length === 0) throw new PkiError('INVALID_ARGUMENT', 'assemble OCSP response: signature is empty');
  let algorithmDer = algorithmDerCache.get(signatureAlgorithm);
  if (!algorithmDer) algorithmDerCache.set(signatureAlgorithm, (algorithmDer = AsnConvert.serialize(signatureAlgorithmIdentifier(signatureAlgorithm))));
  // BasicOCSPResponse ::= SEQUENCE { tbsResponseData, signatureAlgorithm, signature BIT STRING,
  //                                  certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }  (RFC 6960 §4.2.1)
  // BasicOCSPResponse ::= SEQUENCE { tbsResponseData, signatureAlgorithm, signature BIT STRING,
  //                                  certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }  (RFC 6960 §4.2.1)
  const basic = derElement(
    0x30,
    responseDataDer,
    new Uint8Array(algorithmDer),
    derElement(0x03, Buffer.from([0]), signature), // BIT STRING, no unused bits
    derElement(0xa0, derElement(0x30, responderCertificateDer)),
  );
  // OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED, responseBytes [0] EXPLICIT ResponseBytes }
  // ResponseBytes ::= SEQUENCE { responseType OBJECT IDENTIFIER (id-pkix-ocsp-basic), response OCTET STRING }
  const response = derElement(
    0x30,
    derElement(0x0a, Buffer.from([OCSPResponseStatus.successful])),
    derElement(0xa0, derElement(0x30, OCSP_BASIC_OID_DER, derElement(0x04, basic))),
  );
  return response;
}
