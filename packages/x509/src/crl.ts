import { AsnConvert } from '@peculiar/asn1-schema';
import { CertificateList, CRLReasons, Name } from '@peculiar/asn1-x509';
import { PkiError } from '@pki/kit';
import { signatureAlgorithmIdentifierDer, type SignatureAlgorithm } from './signature-algorithm';

export { CRLReasons };

/**
 * CRLs (RFC 5280 §5) written directly in DER, in pieces, so that a CRL of millions of entries is
 * never held in memory whole: the TBSCertList is a prefix (everything up to and including the
 * header of revokedCertificates), the entries one after another, and a suffix (crlExtensions).
 * Whoever holds the entries (the crl service, which stores and publishes the bytes) and whoever
 * signs (ca-signer, which hashes them as they stream past) build the same prefix and suffix from
 * the same facts with these functions, so the signer signs exactly what is published.
 *
 * Every byte written here is compared with the @peculiar/asn1-x509 schema layer's encoding in
 * crl.test.ts (random specs and entries), as decision 0008 does for OCSP.
 */

/** One revoked certificate on a CRL (RFC 5280 §5.1.2.6). */
export interface CrlEntry {
  /** Serial number: the DER INTEGER content octets (positive, minimal, 1 to 20 octets). */
  serial: Uint8Array;
  revocationDate: Date;
  /** Omitted from the entry when undefined or unspecified (RFC 5280 §5.3.1 recommends that). */
  reason?: CRLReasons;
  /** RFC 5280 §5.3.2: when the key was known or suspected to be compromised, if known. */
  invalidityDate?: Date;
}

export interface CrlIssuingDistributionPoint {
  /** The URI under which this CRL is published: the certificates it covers name the same URI. */
  uri: string;
  /** A CRL of end-entity certificates (a partition) or of CA certificates (an ARL, §5.2.5). */
  onlyContains: 'userCerts' | 'caCerts';
}

/** Everything in a TBSCertList except its entries. */
export interface CrlFrameSpec {
  signatureAlgorithm: SignatureAlgorithm;
  /** The issuer certificate's subject, byte for byte (RFC 5280 §5.1.2.3). */
  issuerDer: Uint8Array;
  /** The issuer's subjectKeyIdentifier: generations sharing one DN are told apart by it. */
  authorityKeyIdentifier: Uint8Array;
  thisUpdate: Date;
  nextUpdate: Date;
  /** cRLNumber (RFC 5280 §5.2.3). */
  crlNumber: bigint | number;
  /** Set for a delta CRL: the cRLNumber of its base CRL (§5.2.4). */
  deltaBaseCrlNumber?: bigint | number;
  /** A partition or an ARL: the critical issuingDistributionPoint (§5.2.5). */
  issuingDistributionPoint?: CrlIssuingDistributionPoint;
  /** A complete CRL announcing its delta CRLs: freshestCRL (§5.2.6), never in a delta. */
  freshestCrlUrl?: string;
  /**
   * ExpiredCertsOnCRL (X.509 (10/2019) §9.6.2.10, 2.5.29.60): the CRL still lists revoked
   * certificates that expired on or after this date.
   */
  expiredCertsOnCrl?: Date;
}

export interface TbsCertListSpec extends CrlFrameSpec {
  entries: readonly CrlEntry[];
}

/** The TBSCertList around its entries: prefix || entries || suffix is the exact TBS. */
export interface CrlFrame {
  prefix: Buffer;
  suffix: Buffer;
  /** Length of the whole TBSCertList DER. */
  tbsLength: number;
}

// Object identifiers, DER-encoded (tag, length, content), as the extensions carry them.
const OID_AUTHORITY_KEY_IDENTIFIER = Buffer.from('0603551d23', 'hex'); // 2.5.29.35
const OID_CRL_NUMBER = Buffer.from('0603551d14', 'hex'); // 2.5.29.20
const OID_DELTA_CRL_INDICATOR = Buffer.from('0603551d1b', 'hex'); // 2.5.29.27
const OID_ISSUING_DISTRIBUTION_POINT = Buffer.from('0603551d1c', 'hex'); // 2.5.29.28
const OID_FRESHEST_CRL = Buffer.from('0603551d2e', 'hex'); // 2.5.29.46
const OID_EXPIRED_CERTS_ON_CRL = Buffer.from('0603551d3c', 'hex'); // 2.5.29.60
/** The two entry extensions, each with its OID and the OCTET STRING header of its value. */
const REASON_CODE_PREFIX = Buffer.from('300a0603551d1504030a01', 'hex'); // 2.5.29.21, ENUMERATED follows
const INVALIDITY_DATE_PREFIX = Buffer.from('30180603551d180411180f', 'hex'); // 2.5.29.24, GeneralizedTime follows
const VERSION_V2 = Buffer.from('020101', 'hex');
const CRITICAL = Buffer.from('0101ff', 'hex');

/** Largest CRL number this module writes: RFC 5280 §5.2.3 allows 20 octets; 2^159 - 1 fits. */
const MAX_CRL_NUMBER = (1n << 159n) - 1n;

/** The identifier and length octets of a DER element with `length` content octets (X.690 §8.1.3, minimal). */
export function derHeader(tag: number, length: number): Buffer {
  if (!Number.isSafeInteger(length) || length < 0 || length > 0xffffffff) throw new PkiError('INVALID_ARGUMENT', `encode DER: ${length} content octets cannot be encoded`);
  if (length < 0x80) return Buffer.from([tag, length]);
  const octets: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) octets.unshift(n % 256);
  return Buffer.from([tag, 0x80 | octets.length, ...octets]);
}

function tlv(tag: number, ...contents: Uint8Array[]): Buffer {
  let length = 0;
  for (const c of contents) length += c.length;
  return Buffer.concat([derHeader(tag, length), ...contents]);
}

function twoDigits(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

function checkWholeSecond(date: Date, field: string, operation: string): void {
  if (!(date instanceof Date) || Number.isNaN(date.getTime())) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} is not a valid date`);
  if (date.getUTCMilliseconds() !== 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} must be a whole second`);
  const year = date.getUTCFullYear();
  if (year < 1950 || year > 9999) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} must lie in the years 1950 to 9999`);
}

function generalizedTimeText(date: Date): string {
  return `${date.getUTCFullYear()}${twoDigits(date.getUTCMonth() + 1)}${twoDigits(date.getUTCDate())}${twoDigits(date.getUTCHours())}${twoDigits(date.getUTCMinutes())}${twoDigits(date.getUTCSeconds())}Z`;
}

/** RFC 5280 §5.1.2.4-§5.1.2.6 (as §4.1.2.5): UTCTime through 2049, GeneralizedTime from 2050. */
function encodeTime(date: Date, field: string, operation: string): Buffer {
  checkWholeSecond(date, field, operation);
  const text = generalizedTimeText(date);
  return date.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(text.slice(2), 'latin1')) : tlv(0x18, Buffer.from(text, 'latin1'));
}

/** RFC 5280 §5.3.2 and X.509 §9.6.2.10: always GeneralizedTime. */
function encodeGeneralizedTime(date: Date, field: string, operation: string): Buffer {
  checkWholeSecond(date, field, operation);
  return tlv(0x18, Buffer.from(generalizedTimeText(date), 'latin1'));
}

/** A non-negative INTEGER's DER (X.690 §8.3, minimal, 0x00 pad when the high bit is set). */
function encodeNonNegativeInteger(value: bigint): Buffer {
  let hex = value.toString(16);
  if (hex.length % 2 === 1) hex = `0${hex}`;
  let content = Buffer.from(hex, 'hex');
  if (content[0]! & 0x80) content = Buffer.concat([Buffer.from([0]), content]);
  return tlv(0x02, content);
}

function crlNumberOf(value: bigint | number, field: string, operation: string): bigint {
  if (typeof value === 'number' && (!Number.isSafeInteger(value) || value < 0)) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} must be a non-negative integer`);
  const n = BigInt(value);
  if (n < 0n || n > MAX_CRL_NUMBER) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} must be a non-negative integer of at most 20 octets (RFC 5280 §5.2.3)`);
  return n;
}

function extension(oid: Buffer, critical: boolean, value: Uint8Array): Buffer {
  return critical ? tlv(0x30, oid, CRITICAL, tlv(0x04, value)) : tlv(0x30, oid, tlv(0x04, value));
}

/** GeneralNames with one uniformResourceIdentifier [6], as DistributionPointName.fullName [0]. */
function fullNameUri(uri: string, operation: string): Buffer {
  if (!/^https?:\/\/[\x21-\x7e]+$/.test(uri)) throw new PkiError('INVALID_ARGUMENT', `${operation}: distribution point '${uri.slice(0, 80)}' must be an http(s) URI of printable ASCII`);
  // DistributionPoint.distributionPoint [0] (explicit: a CHOICE) holding fullName [0] IMPLICIT GeneralNames.
  return tlv(0xa0, tlv(0xa0, tlv(0x86, Buffer.from(uri, 'latin1'))));
}

/**
 * Checks the frame and returns its extensions' DER (the [0] EXPLICIT Extensions of §5.1.2.7), in
 * a fixed order: AKI, cRLNumber, deltaCRLIndicator, issuingDistributionPoint, freshestCRL,
 * ExpiredCertsOnCRL.
 */
function crlExtensions(spec: CrlFrameSpec, operation: string): Buffer {
  const number = crlNumberOf(spec.crlNumber, 'crlNumber', operation);
  const extensions: Buffer[] = [];
  const aki = Buffer.from(spec.authorityKeyIdentifier);
  if (aki.length === 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: authority key identifier is empty`);
  // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING } (§4.2.1.1, §5.2.1).
  extensions.push(extension(OID_AUTHORITY_KEY_IDENTIFIER, false, tlv(0x30, tlv(0x80, aki))));
  extensions.push(extension(OID_CRL_NUMBER, false, encodeNonNegativeInteger(number)));
  if (spec.deltaBaseCrlNumber !== undefined) {
    const base = crlNumberOf(spec.deltaBaseCrlNumber, 'deltaBaseCrlNumber', operation);
    if (base >= number) throw new PkiError('INVALID_ARGUMENT', `${operation}: a delta CRL's base number must be lower than its own number`);
    if (spec.freshestCrlUrl !== undefined) throw new PkiError('INVALID_ARGUMENT', `${operation}: a delta CRL must not carry freshestCRL (RFC 5280 §5.2.6)`);
    extensions.push(extension(OID_DELTA_CRL_INDICATOR, true, encodeNonNegativeInteger(base)));
  }
  if (spec.issuingDistributionPoint !== undefined) {
    const idp = spec.issuingDistributionPoint;
    // IssuingDistributionPoint: distributionPoint [0], onlyContainsUserCerts [1] / onlyContainsCACerts [2] BOOLEAN TRUE.
    const only = idp.onlyContains === 'userCerts' ? Buffer.from('8101ff', 'hex') : Buffer.from('8201ff', 'hex');
    extensions.push(extension(OID_ISSUING_DISTRIBUTION_POINT, true, tlv(0x30, fullNameUri(idp.uri, operation), only)));
  }
  if (spec.freshestCrlUrl !== undefined) {
    // FreshestCRL ::= CRLDistributionPoints: one DistributionPoint with one URI.
    extensions.push(extension(OID_FRESHEST_CRL, false, tlv(0x30, tlv(0x30, fullNameUri(spec.freshestCrlUrl, operation)))));
  }
  if (spec.expiredCertsOnCrl !== undefined) {
    extensions.push(extension(OID_EXPIRED_CERTS_ON_CRL, false, encodeGeneralizedTime(spec.expiredCertsOnCrl, 'expiredCertsOnCrl', operation)));
  }
  return tlv(0xa0, tlv(0x30, ...extensions));
}

/**
 * The TBSCertList around `entryCount` entries whose DER adds up to `entriesLength` octets
 * (RFC 5280 §5.1.2, version 2). revokedCertificates is omitted when there are none (§5.1.2.6).
 */
export function buildCrlFrame(spec: CrlFrameSpec, entriesLength: number, entryCount: number, operation = 'build CRL'): CrlFrame {
  if (!Number.isSafeInteger(entriesLength) || entriesLength < 0 || !Number.isSafeInteger(entryCount) || entryCount < 0) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: entry count and length must be non-negative integers`);
  }
  if ((entryCount === 0) !== (entriesLength === 0)) throw new PkiError('INVALID_ARGUMENT', `${operation}: entry count and length must both be zero or both positive`);
  if (!(spec.nextUpdate > spec.thisUpdate)) throw new PkiError('INVALID_ARGUMENT', `${operation}: nextUpdate must be after thisUpdate`);
  try {
    // The issuer must be a Name, exactly: it is copied into the TBS as it is.
    AsnConvert.parse(spec.issuerDer, Name);
  } catch (err) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: issuer is not a DER Name`, { cause: err });
  }
  const head = Buffer.concat([
    VERSION_V2,
    signatureAlgorithmIdentifierDer(spec.signatureAlgorithm),
    Buffer.from(spec.issuerDer),
    encodeTime(spec.thisUpdate, 'thisUpdate', operation),
    encodeTime(spec.nextUpdate, 'nextUpdate', operation),
  ]);
  const entriesHeader = entryCount > 0 ? derHeader(0x30, entriesLength) : Buffer.alloc(0);
  const suffix = crlExtensions(spec, operation);
  const contentLength = head.length + entriesHeader.length + entriesLength + suffix.length;
  const tbsHeader = derHeader(0x30, contentLength);
  return { prefix: Buffer.concat([tbsHeader, head, entriesHeader]), suffix, tbsLength: tbsHeader.length + contentLength };
}

/** Integer order of two positive minimal INTEGER contents: shorter is smaller, then byte order. */
export function compareSerials(a: Uint8Array, b: Uint8Array): number {
  return a.length - b.length || Buffer.compare(a, b);
}

function checkSerial(serial: Uint8Array, operation: string): void {
  if (serial.length === 0 || serial.length > 20) throw new PkiError('INVALID_ARGUMENT', `${operation}: serial ${Buffer.from(serial).toString('hex') || '(empty)'} is not 1 to 20 octets`);
  if (serial[0]! & 0x80) throw new PkiError('INVALID_ARGUMENT', `${operation}: serial ${Buffer.from(serial).toString('hex')} is negative`);
  if (serial[0] === 0 && (serial.length === 1 || (serial[1]! & 0x80) === 0)) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: serial ${Buffer.from(serial).toString('hex')} is zero or not minimally encoded`);
  }
}

const CRL_REASON_VALUES = new Set<number>(Object.values(CRLReasons).filter((v): v is number => typeof v === 'number'));

/** DER of one RevokedCertificate (RFC 5280 §5.1.2.6): serial, date, then reasonCode and invalidityDate when known. */
export function encodeRevokedCertificate(entry: CrlEntry, operation = 'encode CRL entry'): Buffer {
  const serial = Buffer.from(entry.serial);
  checkSerial(serial, operation);
  const hex = serial.toString('hex');
  const parts: Buffer[] = [tlv(0x02, serial), encodeTime(entry.revocationDate, `revocation date of ${hex}`, operation)];
  const extensions: Buffer[] = [];
  if (entry.reason !== undefined && entry.reason !== CRLReasons.unspecified) {
    if (!CRL_REASON_VALUES.has(entry.reason)) throw new PkiError('INVALID_ARGUMENT', `${operation}: unknown revocation reason ${entry.reason} for ${hex}`);
    extensions.push(Buffer.concat([REASON_CODE_PREFIX, Buffer.from([entry.reason])]));
  }
  if (entry.invalidityDate !== undefined) {
    extensions.push(Buffer.concat([INVALIDITY_DATE_PREFIX, encodeGeneralizedTime(entry.invalidityDate, `invalidity date of ${hex}`, operation).subarray(2)]));
  }
  if (extensions.length > 0) parts.push(tlv(0x30, ...extensions));
  return tlv(0x30, ...parts);
}

/** What a strict reader found in one entry. Times are whole seconds since the epoch. */
export interface DecodedCrlEntry {
  /** A view into the bytes read (not a copy: a million entries are read per CRL). */
  serial: Buffer;
  revocationDate: number;
  reason?: CRLReasons;
  invalidityDate?: number;
  /** Offset just after the entry. */
  end: number;
}

const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function readTimeDigits(bytes: Uint8Array, at: number, count: number): number {
  let n = 0;
  for (let i = 0; i < count; i++) {
    const d = bytes[at + i]! - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

/**
 * Seconds since the epoch of a UTCTime (13 octets) or GeneralizedTime (15 octets) text at `at`,
 * or NaN when it is not a valid time in the form RFC 5280 §4.1.2.5 allows (UTC, 'Z', no fraction).
 * `generalizedFrom2050`: a GeneralizedTime for a year UTCTime could hold is refused.
 */
function readTimeText(bytes: Uint8Array, at: number, generalized: boolean, generalizedFrom2050: boolean): number {
  let year: number;
  let p = at;
  if (generalized) {
    year = readTimeDigits(bytes, p, 4);
    p += 4;
    if (year < 1950 || (generalizedFrom2050 && year < 2050)) return Number.NaN;
  } else {
    const yy = readTimeDigits(bytes, p, 2);
    if (yy < 0) return Number.NaN;
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
    p += 2;
  }
  const month = readTimeDigits(bytes, p, 2);
  const day = readTimeDigits(bytes, p + 2, 2);
  const hour = readTimeDigits(bytes, p + 4, 2);
  const minute = readTimeDigits(bytes, p + 6, 2);
  const second = readTimeDigits(bytes, p + 8, 2);
  if (bytes[p + 10] !== 0x5a) return Number.NaN;
  if (month < 1 || month > 12 || day < 1 || day > DAYS_IN_MONTH[month - 1]! || hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59) return Number.NaN;
  // 29 February of a year that has none.
  if (month === 2 && day === 29 && (year % 4 !== 0 || (year % 100 === 0 && year % 400 !== 0))) return Number.NaN;
  return Date.UTC(year, month - 1, day, hour, minute, second) / 1000;
}

/**
 * Reads the RevokedCertificate at `offset` and accepts only the one encoding
 * {@link encodeRevokedCertificate} writes for its facts (so checking the facts checks the bytes):
 * short-form lengths, a positive minimal serial of 1 to 20 octets, the time type RFC 5280 asks for
 * the year, then optionally reasonCode (non-critical, not unspecified) and invalidityDate
 * (non-critical, GeneralizedTime), in that order. Throws INVALID_ARGUMENT naming the offset.
 */
export function decodeRevokedCertificate(bytes: Uint8Array, offset: number, operation = 'read CRL entry'): DecodedCrlEntry {
  const fail = (why: string): never => {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: entry at offset ${offset}: ${why}`);
  };
  if (offset + 2 > bytes.length || bytes[offset] !== 0x30) fail('not a SEQUENCE');
  const length = bytes[offset + 1]!;
  if (length >= 0x80) fail('not the canonical encoding (long-form length)');
  const end = offset + 2 + length;
  if (end > bytes.length) fail('truncated');
  let p = offset + 2;
  if (bytes[p] !== 0x02) fail('no serial INTEGER');
  const serialLength = bytes[p + 1]!;
  if (serialLength === 0 || serialLength > 20 || p + 2 + serialLength > end) fail('serial must be 1 to 20 octets');
  const serial = Buffer.from(bytes.buffer, bytes.byteOffset + p + 2, serialLength);
  if (serial[0]! & 0x80) fail('serial is negative');
  if (serial[0] === 0 && (serialLength === 1 || (serial[1]! & 0x80) === 0)) fail('serial is zero or not minimally encoded');
  p += 2 + serialLength;
  let revocationDate: number;
  if (bytes[p] === 0x17 && bytes[p + 1] === 13) {
    revocationDate = readTimeText(bytes, p + 2, false, true);
    p += 15;
  } else if (bytes[p] === 0x18 && bytes[p + 1] === 15) {
    revocationDate = readTimeText(bytes, p + 2, true, true);
    p += 17;
  } else {
    revocationDate = fail('revocationDate must be UTCTime (through 2049) or GeneralizedTime (from 2050)');
  }
  if (Number.isNaN(revocationDate) || p > end) fail('revocationDate is not a valid time in its canonical form');
  const entry: DecodedCrlEntry = { serial, revocationDate, end };
  if (p === end) return entry;
  if (bytes[p] !== 0x30 || bytes[p + 1]! >= 0x80 || p + 2 + bytes[p + 1]! !== end) fail('crlEntryExtensions must be one SEQUENCE ending the entry');
  p += 2;
  if (p < end && bytes[p] === 0x30 && bytes[p + 1] === 0x0a) {
    for (let i = 0; i < REASON_CODE_PREFIX.length; i++) if (bytes[p + i] !== REASON_CODE_PREFIX[i]) fail('reasonCode extension is not canonical (it must be non-critical)');
    const reason = bytes[p + REASON_CODE_PREFIX.length]!;
    if (!CRL_REASON_VALUES.has(reason) || reason === CRLReasons.unspecified) fail(`reasonCode ${reason} is not a CRLReason written on entries`);
    entry.reason = reason as CRLReasons;
    p += REASON_CODE_PREFIX.length + 1;
  }
  if (p < end) {
    for (let i = 0; i < INVALIDITY_DATE_PREFIX.length; i++) if (bytes[p + i] !== INVALIDITY_DATE_PREFIX[i]) fail('unexpected entry extension (only reasonCode then invalidityDate, non-critical)');
    // invalidityDate is always GeneralizedTime, whatever the year (§5.3.2).
    const invalidity = readTimeText(bytes, p + INVALIDITY_DATE_PREFIX.length, true, false);
    if (Number.isNaN(invalidity)) fail('invalidityDate is not a valid GeneralizedTime');
    entry.invalidityDate = invalidity;
    p += INVALIDITY_DATE_PREFIX.length + 15;
  }
  if (p !== end) fail('trailing octets in crlEntryExtensions');
  if (entry.reason === undefined && entry.invalidityDate === undefined) fail('empty crlEntryExtensions');
  return entry;
}

/**
 * Builds the DER of a whole TBSCertList (RFC 5280 §5.1.2) with its entries in serial order, so
 * the same input always gives the same bytes. For CRLs small enough to hold in memory (deltas,
 * ARLs, tests); large ones go through {@link buildCrlFrame} and streamed entries.
 */
export function buildTbsCertList(spec: TbsCertListSpec): Buffer {
  const operation = 'build CRL';
  const encoded = [...spec.entries]
    .map((e) => ({ serial: Buffer.from(e.serial), der: encodeRevokedCertificate(e, operation) }))
    .sort((a, b) => compareSerials(a.serial, b.serial));
  for (let i = 1; i < encoded.length; i++) {
    if (compareSerials(encoded[i - 1]!.serial, encoded[i]!.serial) === 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: serial ${encoded[i]!.serial.toString('hex')} is listed twice`);
  }
  const entries = Buffer.concat(encoded.map((e) => e.der));
  const frame = buildCrlFrame(spec, entries.length, encoded.length, operation);
  return Buffer.concat([frame.prefix, entries, frame.suffix]);
}

/**
 * The CertificateList (RFC 5280 §5.1) around a TBSCertList of `tbsLength` octets: what comes
 * before it (the SEQUENCE header) and after it (signatureAlgorithm and the signature BIT STRING).
 */
export function certificateListEnvelope(tbsLength: number, signatureAlgorithm: SignatureAlgorithm, signature: Uint8Array): { header: Buffer; trailer: Buffer } {
  if (signature.length === 0) throw new PkiError('INVALID_ARGUMENT', 'assemble CRL: signature is empty');
  const trailer = Buffer.concat([signatureAlgorithmIdentifierDer(signatureAlgorithm), tlv(0x03, Buffer.from([0]), signature)]);
  return { header: derHeader(0x30, tbsLength + trailer.length), trailer };
}

/** The CertificateList (RFC 5280 §5.1) from a TBSCertList and its signature; the TBS bytes are kept exactly. */
export function assembleCrl(tbsDer: Uint8Array, signatureAlgorithm: SignatureAlgorithm, signature: Uint8Array): Buffer {
  const { header, trailer } = certificateListEnvelope(tbsDer.length, signatureAlgorithm, signature);
  const der = Buffer.concat([header, tbsDer, trailer]);
  const raw = AsnConvert.parse(der, CertificateList).tbsCertListRaw;
  if (raw === undefined || !Buffer.from(raw).equals(Buffer.from(tbsDer))) {
    throw new PkiError('INTERNAL', 'assemble CRL: the signed TBS bytes do not re-encode identically');
  }
  return der;
}

/**
 * The next cRLNumber of a scope (RFC 5280 §5.2.3: it only increases) in the citizen CA's
 * YYYYMMDD form (domain.md) followed by a 7-digit counter, e.g. 202612040000003: above `last`
 * always, and never below today's first number, so numbers still read as dates after a quiet day.
 */
export function nextCrlNumber(last: bigint | undefined, now: Date): bigint {
  const day = BigInt(now.toISOString().slice(0, 10).replace(/-/g, '')) * 10_000_000n;
  return last === undefined || last < day ? day : last + 1n;
}
