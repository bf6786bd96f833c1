import { CRLReasons } from '@peculiar/asn1-x509';
import { PkiError } from '@pki/kit';
import { derChildren, readDerElement, type DerElement } from './der';
import type { CertIdHash, OcspSingleResponseSpec } from './ocsp';

/*
 * Reads a successful OCSPResponse (RFC 6960 §4.2.1) into its parts: the responder keeps the
 * signed ResponseData and signature of each pre-produced response apart from the responder
 * certificate they share, and checks that what the signer returned says what was asked. Strict,
 * like the request reader: anything but the expected DER is refused.
 *
 *   OCSPResponse      ::= SEQUENCE { responseStatus ENUMERATED, responseBytes [0] EXPLICIT ResponseBytes OPTIONAL }
 *   ResponseBytes     ::= SEQUENCE { responseType OBJECT IDENTIFIER, response OCTET STRING }
 *   BasicOCSPResponse ::= SEQUENCE { tbsResponseData ResponseData, signatureAlgorithm AlgorithmIdentifier,
 *                                    signature BIT STRING, certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
 *   ResponseData      ::= SEQUENCE { version [0] EXPLICIT Version DEFAULT v1, responderID ResponderID,
 *                                    producedAt GeneralizedTime, responses SEQUENCE OF SingleResponse,
 *                                    responseExtensions [1] EXPLICIT Extensions OPTIONAL }
 *   SingleResponse    ::= SEQUENCE { certID CertID, certStatus CertStatus, thisUpdate GeneralizedTime,
 *                                    nextUpdate [0] EXPLICIT GeneralizedTime OPTIONAL,
 *                                    singleExtensions [1] EXPLICIT Extensions OPTIONAL }
 */

export interface ReadSingleResponse {
  hash: CertIdHash;
  issuerNameHash: Buffer;
  issuerKeyHash: Buffer;
  serialHex: string;
  status: OcspSingleResponseSpec['status'];
  thisUpdate: Date;
  nextUpdate?: Date;
}

export interface ReadOcspResponse {
  /** The whole ResponseData TLV: the signed bytes. */
  responseData: Buffer;
  /** The signatureAlgorithm AlgorithmIdentifier TLV. */
  signatureAlgorithm: Buffer;
  /** The signature BIT STRING's octets (without the unused-bits octet). */
  signature: Buffer;
  /** The certificates in `certs`, each a whole Certificate TLV. */
  certificates: Buffer[];
  /** ResponderID byKey (SHA-1 of the responder's public key), when the response names it so. */
  responderKeyHash?: Buffer;
  producedAt: Date;
  singles: ReadSingleResponse[];
  /** The nonce extension's extnValue contents, if the response has one. */
  nonce?: Buffer;
  extendedRevoke: boolean;
}

const OPERATION = 'read OCSP response';
const OCSP_BASIC_OID_DER = Buffer.from('06092b0601050507300101', 'hex');
const NONCE_OID_DER = Buffer.from('06092b0601050507300102', 'hex');
const EXTENDED_REVOKE_OID_DER = Buffer.from('06092b0601050507300109', 'hex');
const HASHES: Array<[CertIdHash, Buffer]> = [
  ['SHA1', Buffer.from('06052b0e03021a', 'hex')],
  ['SHA256', Buffer.from('0609608648016503040201', 'hex')],
];
const CRL_REASONS = new Set<number>(Object.values(CRLReasons).filter((v): v is number => typeof v === 'number'));

function fail(why: string): never {
  throw new PkiError('INVALID_ARGUMENT', `${OPERATION}: ${why}`);
}

function expect(element: DerElement | undefined, tag: number, what: string): DerElement {
  if (element === undefined || element.tag !== tag) fail(`${what} is missing or has the wrong tag`);
  return element;
}

function slice(bytes: Uint8Array, element: DerElement): Buffer {
  return Buffer.from(bytes.subarray(element.start, element.end));
}

function content(bytes: Uint8Array, element: DerElement): Buffer {
  return Buffer.from(bytes.subarray(element.contentStart, element.end));
}

/** GeneralizedTime YYYYMMDDHHMMSSZ, the only form RFC 5280 §4.1.2.5.2 allows. */
function generalizedTime(bytes: Uint8Array, element: DerElement, what: string): Date {
  const text = Buffer.from(bytes.subarray(expect(element, 0x18, what).contentStart, element.end)).toString('latin1');
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  if (!m) fail(`${what} '${text.slice(0, 20)}' is not YYYYMMDDHHMMSSZ`);
  const date = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
  if (Number.isNaN(date.getTime())) fail(`${what} is not a valid time`);
  return date;
}

function certStatus(bytes: Uint8Array, element: DerElement): OcspSingleResponseSpec['status'] {
  if (element.tag === 0x80 && element.end === element.contentStart) return { kind: 'good' };
  if (element.tag === 0x82 && element.end === element.contentStart) return { kind: 'unknown' };
  if (element.tag !== 0xa1) fail('certStatus is not good, revoked or unknown');
  const parts = derChildren(bytes, element, OPERATION);
  const revocationTime = generalizedTime(bytes, parts[0]!, 'revocationTime');
  if (parts.length === 1) return { kind: 'revoked', revocationTime };
  const reasonWrapper = derChildren(bytes, expect(parts[1], 0xa0, 'revocationReason'), OPERATION);
  const reason = expect(reasonWrapper[0], 0x0a, 'CRLReason');
  const value = bytes[reason.contentStart];
  if (reason.end - reason.contentStart !== 1 || value === undefined || !CRL_REASONS.has(value)) fail('revocationReason is not a CRLReason');
  return { kind: 'revoked', revocationTime, reason: value as CRLReasons };
}

function singleResponse(bytes: Uint8Array, element: DerElement): ReadSingleResponse {
  const parts = derChildren(bytes, expect(element, 0x30, 'SingleResponse'), OPERATION);
  const certId = derChildren(bytes, expect(parts[0], 0x30, 'CertID'), OPERATION);
  if (certId.length !== 4) fail('CertID does not have 4 elements');
  const algorithm = derChildren(bytes, expect(certId[0], 0x30, 'CertID hashAlgorithm'), OPERATION);
  const oid = expect(algorithm[0], 0x06, 'CertID hash OID');
  const hash = HASHES.find(([, der]) => der.equals(slice(bytes, oid)))?.[0];
  if (!hash) fail('CertID hash algorithm is neither SHA-1 nor SHA-256');
  const serial = expect(certId[3], 0x02, 'CertID serialNumber');
  const single: ReadSingleResponse = {
    hash,
    issuerNameHash: content(bytes, expect(certId[1], 0x04, 'issuerNameHash')),
    issuerKeyHash: content(bytes, expect(certId[2], 0x04, 'issuerKeyHash')),
    serialHex: content(bytes, serial).toString('hex'),
    status: certStatus(bytes, parts[1] ?? fail('certStatus is missing')),
    thisUpdate: generalizedTime(bytes, parts[2] ?? fail('thisUpdate is missing'), 'thisUpdate'),
  };
  if (parts[3]?.tag === 0xa0) single.nextUpdate = generalizedTime(bytes, derChildren(bytes, parts[3], OPERATION)[0] ?? fail('nextUpdate is empty'), 'nextUpdate');
  return single;
}

/** Reads a successful OCSPResponse with a BasicOCSPResponse; throws INVALID_ARGUMENT on anything else. */
export function readOcspResponse(der: Uint8Array): ReadOcspResponse {
  const outer = expect(readDerElement(der, 0, OPERATION), 0x30, 'OCSPResponse');
  if (outer.end !== der.length) fail('trailing octets after the OCSPResponse');
  const top = derChildren(der, outer, OPERATION);
  const status = expect(top[0], 0x0a, 'responseStatus');
  if (status.end - status.contentStart !== 1 || der[status.contentStart] !== 0) fail(`responseStatus is ${der[status.contentStart]}, not successful`);
  const bytesWrapper = derChildren(der, expect(top[1], 0xa0, 'responseBytes'), OPERATION);
  const responseBytes = derChildren(der, expect(bytesWrapper[0], 0x30, 'ResponseBytes'), OPERATION);
  if (!slice(der, expect(responseBytes[0], 0x06, 'responseType')).equals(OCSP_BASIC_OID_DER)) fail('responseType is not id-pkix-ocsp-basic');
  const octets = expect(responseBytes[1], 0x04, 'response');
  const basicElement = readDerElement(der, octets.contentStart, OPERATION);
  if (basicElement.end !== octets.end) fail('BasicOCSPResponse does not fill its OCTET STRING');
  const basic = derChildren(der, expect(basicElement, 0x30, 'BasicOCSPResponse'), OPERATION);
  const responseDataElement = expect(basic[0], 0x30, 'tbsResponseData');
  const signatureAlgorithm = expect(basic[1], 0x30, 'signatureAlgorithm');
  const signatureBits = expect(basic[2], 0x03, 'signature');
  if (signatureBits.end - signatureBits.contentStart < 2 || der[signatureBits.contentStart] !== 0) fail('signature BIT STRING is empty or has unused bits');
  const certificates = basic[3] ? derChildren(der, expect(derChildren(der, expect(basic[3], 0xa0, 'certs'), OPERATION)[0], 0x30, 'certs SEQUENCE'), OPERATION).map((c) => slice(der, expect(c, 0x30, 'certificate'))) : [];

  const data = readResponseDataElement(der, responseDataElement);
  return {
    responseData: slice(der, responseDataElement),
    signatureAlgorithm: slice(der, signatureAlgorithm),
    signature: Buffer.from(der.subarray(signatureBits.contentStart + 1, signatureBits.end)),
    certificates,
    ...data,
  };
}

export type ReadResponseData = Pick<ReadOcspResponse, 'responderKeyHash' | 'producedAt' | 'singles' | 'nonce' | 'extendedRevoke'>;

/** Reads a ResponseData (DER, as signed) on its own: the responder keeps these and reads statuses from them. */
export function readResponseData(der: Uint8Array): ReadResponseData {
  const element = readDerElement(der, 0, OPERATION);
  if (element.end !== der.length) fail('trailing octets after the ResponseData');
  return readResponseDataElement(der, expect(element, 0x30, 'ResponseData'));
}

function readResponseDataElement(der: Uint8Array, responseDataElement: DerElement): ReadResponseData {
  const data = derChildren(der, responseDataElement, OPERATION);
  let index = data[0]?.tag === 0xa0 ? 1 : 0;
  const responderId = data[index++];
  let responderKeyHash: Buffer | undefined;
  if (responderId?.tag === 0xa2) responderKeyHash = content(der, expect(derChildren(der, responderId, OPERATION)[0], 0x04, 'ResponderID byKey'));
  else if (responderId?.tag !== 0xa1) fail('responderID is neither byName nor byKey');
  const producedAt = generalizedTime(der, data[index++] ?? fail('producedAt is missing'), 'producedAt');
  const singles = derChildren(der, expect(data[index++], 0x30, 'responses'), OPERATION).map((s) => singleResponse(der, s));
  let nonce: Buffer | undefined;
  let extendedRevoke = false;
  if (data[index]?.tag === 0xa1) {
    const list = derChildren(der, expect(derChildren(der, data[index]!, OPERATION)[0], 0x30, 'responseExtensions'), OPERATION);
    for (const extension of list) {
      const parts = derChildren(der, expect(extension, 0x30, 'Extension'), OPERATION);
      const id = slice(der, expect(parts[0], 0x06, 'extnID'));
      const value = expect(parts[parts.length - 1], 0x04, 'extnValue');
      if (id.equals(NONCE_OID_DER)) nonce = content(der, value);
      if (id.equals(EXTENDED_REVOKE_OID_DER)) extendedRevoke = true;
    }
    index++;
  }
  if (index !== data.length) fail('ResponseData has unexpected elements');
  return { ...(responderKeyHash ? { responderKeyHash } : {}), producedAt, singles, ...(nonce ? { nonce } : {}), extendedRevoke };
}
