import { AsnConvert } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier } from '@peculiar/asn1-x509';
import { PkiError } from '@pki/kit';
import { derBytes, derChildren, readDerElement, type DerElement } from './der';
import type { CertIdHash } from './ocsp';
import type { SignatureCheck } from './signature-verification';

/*
 * OCSP requests (RFC 6960 §4.1.1), read strictly and by hand: a responder parses whatever the
 * Internet sends it, so the reader walks only the structure it expects, one level at a time (no
 * recursion, whatever the nesting), checks every length against its parent, and refuses BER
 * forms, unknown critical extensions and trailing bytes. Every refusal is a PkiError
 * INVALID_ARGUMENT whose message says what was wrong; the responder answers it with
 * malformedRequest.
 *
 *   OCSPRequest ::= SEQUENCE { tbsRequest TBSRequest, optionalSignature [0] EXPLICIT Signature OPTIONAL }
 *   TBSRequest  ::= SEQUENCE { version [0] EXPLICIT Version DEFAULT v1,
 *                              requestorName [1] EXPLICIT GeneralName OPTIONAL,
 *                              requestList SEQUENCE OF Request,
 *                              requestExtensions [2] EXPLICIT Extensions OPTIONAL }
 *   Request     ::= SEQUENCE { reqCert CertID, singleRequestExtensions [0] EXPLICIT Extensions OPTIONAL }
 *   CertID      ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, issuerNameHash OCTET STRING,
 *                              issuerKeyHash OCTET STRING, serialNumber CertificateSerialNumber }
 */

/** id-pkix-ocsp-nonce (RFC 6960 §4.4.1, RFC 8954). */
export const id_pkix_ocsp_nonce = '1.3.6.1.5.5.7.48.1.2';
/** id-pkix-ocsp-extended-revoke (RFC 6960 §4.4.8). */
export const id_pkix_ocsp_extended_revoke = '1.3.6.1.5.5.7.48.1.9';

/** RFC 8954 §2.1: Nonce ::= OCTET STRING (SIZE(1..32)). */
export const MAX_NONCE_LENGTH = 32;

const SHA1_OID_DER = Buffer.from('06052b0e03021a', 'hex');
const SHA256_OID_DER = Buffer.from('0609608648016503040201', 'hex');
const NONCE_OID_DER = Buffer.from('06092b0601050507300102', 'hex');
const NULL_DER = Buffer.from('0500', 'hex');
const HASH_LENGTH: Record<CertIdHash, number> = { SHA1: 20, SHA256: 32 };

export interface RequestedCertId {
  /** The CertID hash algorithm, when it is one this project answers for (SHA-1 or SHA-256). */
  hash: CertIdHash;
  issuerNameHash: Buffer;
  issuerKeyHash: Buffer;
  /**
   * The serial's INTEGER content octets exactly as sent (DER-minimal). A negative serial or one
   * longer than 20 octets is well-formed ASN.1 that no CA of this project issued: `serialHex` is
   * then undefined and the responder treats the serial as never issued.
   */
  serial: Buffer;
  serialHex: string | undefined;
}

export interface ParsedOcspRequest {
  certIds: RequestedCertId[];
  /**
   * The nonce extension's extnValue contents, to be echoed byte for byte (RFC 8954 §2.1); absent
   * when the request has no nonce.
   */
  nonce?: Buffer;
  /** The request was signed (optionalSignature present): `signature` says with what. */
  signed: boolean;
  /**
   * RFC 6960 §4.1.2, read only when present (unsigned requests pay nothing for it): the signed
   * bytes, the algorithm, the signature and the certificates sent to verify it. Checking it is the
   * caller's business (the responder verifies it off its pre-produced path).
   */
  signature?: OcspRequestSignature;
}

/**
 *   Signature ::= SEQUENCE { signatureAlgorithm AlgorithmIdentifier, signature BIT STRING,
 *                            certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
 */
export interface OcspRequestSignature {
  /** The tbsRequest exactly as received: what the signature covers (RFC 6960 §4.1.2). */
  tbsRequestDer: Buffer;
  /** The signatureAlgorithm AlgorithmIdentifier, DER. */
  algorithmDer: Buffer;
  /** The BIT STRING's octets (no unused bits). */
  value: Buffer;
  /** The DER of each certificate in `certs`, in order (the first is the signer's); empty when absent. */
  certs: Buffer[];
  /** The requestorName GeneralName (DER, inside the [1] wrapper), when present. */
  requestorNameDer?: Buffer;
}

export interface OcspRequestLimits {
  /** Most CertIDs answered in one request; more is refused as malformed. */
  maxCertIds: number;
  /** Shortest nonce accepted (RFC 8954 §2.1 allows 1; a deployment may require more). */
  minNonceLength?: number;
}

const OPERATION = 'parse OCSP request';

function malformed(why: string): PkiError {
  return new PkiError('INVALID_ARGUMENT', `${OPERATION}: ${why}`);
}

function expectTag(element: DerElement | undefined, tag: number, what: string): DerElement {
  if (element === undefined) throw malformed(`${what} is missing`);
  if (element.tag !== tag) throw malformed(`${what} has tag 0x${element.tag.toString(16).padStart(2, '0')}, expected 0x${tag.toString(16).padStart(2, '0')}`);
  return element;
}

function equalBytes(bytes: Uint8Array, element: DerElement, expected: Buffer): boolean {
  return element.end - element.start === expected.length && Buffer.compare(bytes.subarray(element.start, element.end), expected) === 0;
}

/** The hash algorithm of a CertID: SHA-1 or SHA-256, parameters NULL or absent (RFC 5754 §2 allows both). */
function certIdHash(bytes: Uint8Array, algorithm: DerElement): CertIdHash {
  const parts = derChildren(bytes, expectTag(algorithm, 0x30, 'CertID hashAlgorithm'), OPERATION);
  const oid = expectTag(parts[0], 0x06, 'CertID hash algorithm OID');
  if (parts.length > 2 || (parts.length === 2 && !equalBytes(bytes, parts[1]!, NULL_DER))) throw malformed('CertID hash algorithm parameters must be NULL or absent');
  if (equalBytes(bytes, oid, SHA1_OID_DER)) return 'SHA1';
  if (equalBytes(bytes, oid, SHA256_OID_DER)) return 'SHA256';
  throw malformed(`CertID hash algorithm ${Buffer.from(bytes.subarray(oid.contentStart, oid.end)).toString('hex')} is not supported (SHA-1 and SHA-256 are)`);
}

/** An INTEGER's content octets, refusing non-minimal encodings (X.690 §8.3.2). */
function integerContent(bytes: Uint8Array, element: DerElement, what: string): Buffer {
  expectTag(element, 0x02, what);
  const length = element.end - element.contentStart;
  if (length === 0) throw malformed(`${what} is empty`);
  if (length > 1) {
    const first = bytes[element.contentStart]!;
    const second = bytes[element.contentStart + 1]!;
    if ((first === 0x00 && (second & 0x80) === 0) || (first === 0xff && (second & 0x80) !== 0)) throw malformed(`${what} is not minimally encoded`);
  }
  return Buffer.from(bytes.subarray(element.contentStart, element.end));
}

function parseCertId(bytes: Uint8Array, element: DerElement): RequestedCertId {
  const parts = derChildren(bytes, expectTag(element, 0x30, 'CertID'), OPERATION);
  if (parts.length !== 4) throw malformed(`CertID has ${parts.length} elements, expected 4`);
  const hash = certIdHash(bytes, parts[0]!);
  const nameHash = expectTag(parts[1], 0x04, 'CertID issuerNameHash');
  const keyHash = expectTag(parts[2], 0x04, 'CertID issuerKeyHash');
  for (const [what, e] of [['issuerNameHash', nameHash], ['issuerKeyHash', keyHash]] as const) {
    if (e.end - e.contentStart !== HASH_LENGTH[hash]) throw malformed(`CertID ${what} is ${e.end - e.contentStart} octets, ${hash} gives ${HASH_LENGTH[hash]}`);
  }
  const serial = integerContent(bytes, parts[3]!, 'CertID serialNumber');
  // RFC 5280 §4.1.2.2: serials are positive and at most 20 octets. Others cannot be ours.
  const ours = (serial[0]! & 0x80) === 0 && serial.length <= 20;
  return {
    hash,
    issuerNameHash: Buffer.from(bytes.subarray(nameHash.contentStart, nameHash.end)),
    issuerKeyHash: Buffer.from(bytes.subarray(keyHash.contentStart, keyHash.end)),
    serial,
    serialHex: ours ? serial.toString('hex') : undefined,
  };
}

/**
 * Extensions ::= SEQUENCE SIZE (1..MAX) OF Extension; Extension ::= SEQUENCE { extnID, critical
 * BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }. Returns the nonce's extnValue contents, if any.
 * Unknown non-critical extensions are ignored (RFC 6960 §4.4); an unknown critical one, or the
 * same extension twice (RFC 5280 §4.2), makes the request malformed.
 */
function readExtensions(bytes: Uint8Array, wrapper: DerElement, where: string, limits: OcspRequestLimits): Buffer | undefined {
  const inner = derChildren(bytes, wrapper, OPERATION);
  if (inner.length !== 1) throw malformed(`${where} must hold exactly one Extensions SEQUENCE`);
  const list = derChildren(bytes, expectTag(inner[0], 0x30, `${where} Extensions`), OPERATION);
  if (list.length === 0) throw malformed(`${where} Extensions is empty`);
  if (list.length > 16) throw malformed(`${where} has ${list.length} extensions; at most 16 are read`);
  let nonce: Buffer | undefined;
  const seen = new Set<string>();
  for (const extension of list) {
    const parts = derChildren(bytes, expectTag(extension, 0x30, `${where} Extension`), OPERATION);
    const id = expectTag(parts[0], 0x06, `${where} extnID`);
    let index = 1;
    let critical = false;
    if (parts[index]?.tag === 0x01) {
      const flag = parts[index]!;
      if (flag.end - flag.contentStart !== 1 || (bytes[flag.contentStart] !== 0x00 && bytes[flag.contentStart] !== 0xff)) throw malformed(`${where} critical flag is not a DER BOOLEAN`);
      // An encoded FALSE is the DEFAULT, which DER omits (X.690 §11.5) but which is harmless.
      critical = bytes[flag.contentStart] === 0xff;
      index++;
    }
    const value = expectTag(parts[index], 0x04, `${where} extnValue`);
    if (parts.length !== index + 1) throw malformed(`${where} Extension has trailing elements`);
    const idHex = Buffer.from(bytes.subarray(id.start, id.end)).toString('hex');
    if (seen.has(idHex)) throw malformed(`${where} repeats extension ${idHex}`);
    seen.add(idHex);
    if (equalBytes(bytes, id, NONCE_OID_DER)) {
      nonce = Buffer.from(bytes.subarray(value.contentStart, value.end));
      checkNonce(nonce, limits);
    } else if (critical) {
      throw malformed(`${where} has an unsupported critical extension ${idHex}`);
    }
  }
  return nonce;
}

/**
 * RFC 8954 §2.1: the nonce is an OCTET STRING of 1 to 32 octets inside extnValue. Some clients put
 * the raw octets in extnValue instead; both are echoed as sent, and both are held to the limits.
 */
function checkNonce(extnValue: Buffer, limits: OcspRequestLimits): void {
  let length = extnValue.length;
  if (extnValue.length >= 2 && extnValue[0] === 0x04) {
    try {
      const element = readDerElement(extnValue, 0, OPERATION);
      if (element.end === extnValue.length) length = element.end - element.contentStart;
    } catch {
      // not an OCTET STRING after all: raw nonce octets
    }
  }
  if (length < Math.max(1, limits.minNonceLength ?? 1)) throw malformed(`nonce of ${length} octets is shorter than ${Math.max(1, limits.minNonceLength ?? 1)}`);
  if (length > MAX_NONCE_LENGTH) throw malformed(`nonce of ${length} octets is longer than ${MAX_NONCE_LENGTH} (RFC 8954 §2.1)`);
}

/** Parses a DER OCSPRequest strictly; throws INVALID_ARGUMENT (malformedRequest) on anything else. */
export function parseOcspRequest(der: Uint8Array, limits: OcspRequestLimits): ParsedOcspRequest {
  const outer = expectTag(readDerElement(der, 0, OPERATION), 0x30, 'OCSPRequest');
  if (outer.end !== der.length) throw malformed(`${der.length - outer.end} octets after the OCSPRequest`);
  const top = derChildren(der, outer, OPERATION);
  if (top.length < 1 || top.length > 2) throw malformed(`OCSPRequest has ${top.length} elements`);
  const tbs = derChildren(der, expectTag(top[0], 0x30, 'TBSRequest'), OPERATION);
  if (top[1] !== undefined) expectTag(top[1], 0xa0, 'optionalSignature');

  let index = 0;
  if (tbs[index]?.tag === 0xa0) {
    const version = derChildren(der, tbs[index]!, OPERATION);
    if (version.length !== 1) throw malformed('version must hold one INTEGER');
    const value = integerContent(der, version[0]!, 'version');
    // v1 is the DEFAULT, which DER omits (X.690 §11.5); some encoders write it anyway, harmlessly.
    if (value.length !== 1 || value[0] !== 0) throw malformed('version is not v1');
    index++;
  }
  let requestorName: DerElement | undefined;
  if (tbs[index]?.tag === 0xa1) requestorName = tbs[index++]; // read only for signed requests
  const list = expectTag(tbs[index], 0x30, 'requestList');
  index++;
  let nonce: Buffer | undefined;
  if (tbs[index]?.tag === 0xa2) {
    nonce = readExtensions(der, tbs[index]!, 'requestExtensions', limits);
    index++;
  }
  if (index !== tbs.length) throw malformed('TBSRequest has unexpected elements');

  // Count before parsing: a request with ten thousand CertIDs costs no more than one with the limit.
  const requests = derChildren(der, list, OPERATION);
  if (requests.length === 0) throw malformed('requestList is empty');
  if (requests.length > limits.maxCertIds) throw malformed(`${requests.length} CertIDs in one request; at most ${limits.maxCertIds}`);
  const certIds = requests.map((request) => {
    const parts = derChildren(der, expectTag(request, 0x30, 'Request'), OPERATION);
    if (parts.length < 1 || parts.length > 2) throw malformed(`Request has ${parts.length} elements`);
    if (parts[1] !== undefined) {
      // singleRequestExtensions: none is defined for requests that this responder acts on.
      const singleNonce = readExtensions(der, expectTag(parts[1], 0xa0, 'singleRequestExtensions'), 'singleRequestExtensions', limits);
      if (singleNonce !== undefined) throw malformed('a nonce belongs in requestExtensions, not in singleRequestExtensions');
    }
    return parseCertId(der, parts[0]!);
  });
  if (top[1] === undefined) return { certIds, ...(nonce !== undefined ? { nonce } : {}), signed: false };
  const signature = readSignature(der, top[1], derBytes(der, top[0]!));
  if (requestorName !== undefined) {
    const inner = derChildren(der, requestorName, OPERATION);
    if (inner.length !== 1) throw malformed('requestorName must hold one GeneralName');
    signature.requestorNameDer = derBytes(der, inner[0]!);
  }
  return { certIds, ...(nonce !== undefined ? { nonce } : {}), signed: true, signature };
}

/** Most certificates read from a signed request's `certs` (the signer's and a few intermediates). */
const MAX_SIGNATURE_CERTS = 4;

/** RFC 6960 §4.1.1 Signature, inside optionalSignature [0] EXPLICIT. */
function readSignature(der: Uint8Array, wrapper: DerElement, tbsRequestDer: Buffer): OcspRequestSignature {
  const inner = derChildren(der, wrapper, OPERATION);
  if (inner.length !== 1) throw malformed('optionalSignature must hold one Signature');
  const parts = derChildren(der, expectTag(inner[0], 0x30, 'Signature'), OPERATION);
  if (parts.length < 2 || parts.length > 3) throw malformed(`Signature has ${parts.length} elements`);
  const algorithm = expectTag(parts[0], 0x30, 'Signature signatureAlgorithm');
  const bits = expectTag(parts[1], 0x03, 'Signature signature');
  // A signature is whole octets: the unused-bits octet must be 0 (X.690 §8.6.2.2).
  if (bits.end - bits.contentStart < 2 || der[bits.contentStart] !== 0) throw malformed('Signature signature is not a whole number of octets');
  const certs: Buffer[] = [];
  if (parts[2] !== undefined) {
    const wrapped = derChildren(der, expectTag(parts[2], 0xa0, 'Signature certs'), OPERATION);
    if (wrapped.length !== 1) throw malformed('Signature certs must hold one SEQUENCE OF Certificate');
    const list = derChildren(der, expectTag(wrapped[0], 0x30, 'Signature certs'), OPERATION);
    if (list.length > MAX_SIGNATURE_CERTS) throw malformed(`Signature carries ${list.length} certificates; at most ${MAX_SIGNATURE_CERTS} are read`);
    for (const cert of list) certs.push(derBytes(der, expectTag(cert, 0x30, 'Signature certificate')));
  }
  return { tbsRequestDer, algorithmDer: derBytes(der, algorithm), value: Buffer.from(der.subarray(bits.contentStart + 1, bits.end)), certs };
}

/** What {@link verifySignature} needs to check a signed request with the signer's key (RFC 6960 §4.1.2). */
export function ocspRequestSignatureCheck(signature: OcspRequestSignature, publicKeySpki: Uint8Array): SignatureCheck {
  let algorithm: AlgorithmIdentifier;
  try {
    algorithm = AsnConvert.parse(signature.algorithmDer, AlgorithmIdentifier);
  } catch (err) {
    throw new PkiError('INVALID_ARGUMENT', `${OPERATION}: the signature algorithm is not an AlgorithmIdentifier`, { cause: err });
  }
  return { publicKeySpki, algorithm, data: signature.tbsRequestDer, signature: signature.value };
}
