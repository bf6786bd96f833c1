import { AsnConvert } from '@peculiar/asn1-schema';
import { TBSCertificate } from '@peculiar/asn1-x509';
import { PkiError } from '@pki/kit';
import { derBytes, derChildren, derContent, type DerElement, readDerElement } from './der';
import * as oid from './oids';

/** The ASN.1 string types a name attribute or directory attribute value can have. */
export type DerStringType =
  | 'utf8String'
  | 'printableString'
  | 'teletexString'
  | 'ia5String'
  | 'universalString'
  | 'bmpString'
  | 'numericString'
  | 'visibleString'
  | 'other';

const STRING_TYPE_BY_TAG: Record<number, DerStringType> = {
  0x0c: 'utf8String',
  0x12: 'numericString',
  0x13: 'printableString',
  0x14: 'teletexString',
  0x16: 'ia5String',
  0x1a: 'visibleString',
  0x1c: 'universalString',
  0x1e: 'bmpString',
};

/** A string value as encoded: its ASN.1 type and its characters (undefined if they do not decode). */
export interface DecodedString {
  stringType: DerStringType;
  /** undefined when the octets are not valid for the type (e.g. malformed UTF-8). */
  value: string | undefined;
}

/** One AttributeTypeAndValue of a Name (RFC 5280 §4.1.2.4) with its exact string encoding. */
export interface DecodedNameAttribute extends DecodedString {
  oid: string;
}

/** A UTCTime or GeneralizedTime exactly as written (RFC 5280 §4.1.2.5). */
export interface DecodedTime {
  encoding: 'utcTime' | 'generalizedTime' | 'other';
  /** The characters of the time value. */
  text: string;
  /** undefined when `text` is not the RFC 5280 form (YYMMDDHHMMSSZ / YYYYMMDDHHMMSSZ). */
  date: Date | undefined;
}

export interface DecodedExtension {
  extnID: string;
  critical: boolean;
  /** The DER inside extnValue. */
  value: Buffer;
}

/**
 * A TBSCertificate (RFC 5280 §4.1.2) read from its DER without normalising anything: string types,
 * time encodings, extension order and duplicates are kept as they are, so that a linter can judge
 * the exact bytes a CA is about to sign.
 */
export interface DecodedTbsCertificate {
  der: Buffer;
  /** Whether a schema parse and re-serialisation gives back the same bytes (canonical DER). */
  canonical: boolean;
  /** 0 (v1), 1 (v2) or 2 (v3), as encoded; 0 when the DEFAULT is used. */
  version: number;
  /** Whether the version field was written out although it holds the DEFAULT v1 (forbidden in DER). */
  versionExplicitDefault: boolean;
  /** Content octets of the serialNumber INTEGER. */
  serialNumber: Buffer;
  /** DER of the signature AlgorithmIdentifier. */
  signatureAlgorithm: Buffer;
  issuerDer: Buffer;
  /** RDNs in order, each a list of attributes (one, unless multi-valued). */
  issuer: DecodedNameAttribute[][];
  notBefore: DecodedTime;
  notAfter: DecodedTime;
  subjectDer: Buffer;
  subject: DecodedNameAttribute[][];
  subjectPublicKeyInfo: Buffer;
  hasIssuerUniqueId: boolean;
  hasSubjectUniqueId: boolean;
  /** In certificate order, duplicates kept; undefined when the field is absent. */
  extensions: DecodedExtension[] | undefined;
}

const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  OCTET_STRING: 0x04,
  OID: 0x06,
  SEQUENCE: 0x30,
  SET: 0x31,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  VERSION: 0xa0,
  ISSUER_UID: 0x81,
  SUBJECT_UID: 0x82,
  EXTENSIONS: 0xa3,
} as const;

/**
 * Decodes the DER of a TBSCertificate. INVALID_ARGUMENT when the bytes are not a structurally
 * valid TBSCertificate; encoding details that are legal ASN.1 but break RFC 5280 rules (wrong
 * string type, bad time format) decode and are left for the caller to judge.
 */
export function decodeTbsCertificate(tbsDer: Uint8Array, operation = 'decode TBS certificate'): DecodedTbsCertificate {
  const bytes = Buffer.from(tbsDer);
  const fail = (why: string): never => {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: ${why}`);
  };
  const top = readDerElement(bytes, 0, operation);
  if (top.tag !== TAG.SEQUENCE) fail('not a SEQUENCE');
  if (top.end !== bytes.length) fail('trailing bytes after the TBSCertificate');
  const fields = derChildren(bytes, top, operation);
  let i = 0;
  const next = (tag: number, name: string): DerElement => {
    const field = fields[i++];
    if (field === undefined || field.tag !== tag) fail(`${name} missing or of the wrong type`);
    return field as DerElement;
  };

  let version = 0;
  let versionExplicitDefault = false;
  if (fields[0]?.tag === TAG.VERSION) {
    const inner = derChildren(bytes, next(TAG.VERSION, 'version'), operation);
    if (inner.length !== 1 || inner[0]!.tag !== TAG.INTEGER) fail('version is not an INTEGER');
    const content = derContent(bytes, inner[0]!);
    if (content.length !== 1 || content[0]! > 2) fail('version is not v1, v2 or v3');
    version = content[0]!;
    versionExplicitDefault = version === 0;
  }
  const serialNumber = derContent(bytes, next(TAG.INTEGER, 'serialNumber'));
  const signatureAlgorithm = derBytes(bytes, next(TAG.SEQUENCE, 'signature'));
  const issuerElement = next(TAG.SEQUENCE, 'issuer');
  const validity = derChildren(bytes, next(TAG.SEQUENCE, 'validity'), operation);
  if (validity.length !== 2) fail('validity does not hold two times');
  const subjectElement = next(TAG.SEQUENCE, 'subject');
  const subjectPublicKeyInfo = derBytes(bytes, next(TAG.SEQUENCE, 'subjectPublicKeyInfo'));
  let hasIssuerUniqueId = false;
  let hasSubjectUniqueId = false;
  let extensions: DecodedExtension[] | undefined;
  if (fields[i]?.tag === TAG.ISSUER_UID || fields[i]?.tag === (TAG.ISSUER_UID | 0x20)) {
    hasIssuerUniqueId = true;
    i++;
  }
  if (fields[i]?.tag === TAG.SUBJECT_UID || fields[i]?.tag === (TAG.SUBJECT_UID | 0x20)) {
    hasSubjectUniqueId = true;
    i++;
  }
  if (fields[i]?.tag === TAG.EXTENSIONS) {
    const wrapper = derChildren(bytes, next(TAG.EXTENSIONS, 'extensions'), operation);
    if (wrapper.length !== 1 || wrapper[0]!.tag !== TAG.SEQUENCE) fail('extensions is not a SEQUENCE');
    extensions = derChildren(bytes, wrapper[0]!, operation).map((ext) => decodeExtension(bytes, ext, operation));
  }
  if (i !== fields.length) fail('unexpected fields after subjectPublicKeyInfo');

  let canonical: boolean;
  try {
    canonical = Buffer.from(AsnConvert.serialize(AsnConvert.parse(bytes, TBSCertificate))).equals(bytes);
  } catch {
    canonical = false;
  }
  return {
    der: bytes,
    canonical,
    version,
    versionExplicitDefault,
    serialNumber,
    signatureAlgorithm,
    issuerDer: derBytes(bytes, issuerElement),
    issuer: decodeName(bytes, issuerElement, operation),
    notBefore: decodeTime(bytes, validity[0]!),
    notAfter: decodeTime(bytes, validity[1]!),
    subjectDer: derBytes(bytes, subjectElement),
    subject: decodeName(bytes, subjectElement, operation),
    subjectPublicKeyInfo,
    hasIssuerUniqueId,
    hasSubjectUniqueId,
    extensions,
  };
}

function decodeExtension(bytes: Buffer, element: DerElement, operation: string): DecodedExtension {
  if (element.tag !== TAG.SEQUENCE) throw new PkiError('INVALID_ARGUMENT', `${operation}: an extension is not a SEQUENCE`);
  const parts = derChildren(bytes, element, operation);
  const [id, second, third] = parts;
  const withCritical = parts.length === 3;
  const valueElement = withCritical ? third : second;
  if (id?.tag !== TAG.OID || valueElement?.tag !== TAG.OCTET_STRING || (withCritical && second?.tag !== TAG.BOOLEAN) || parts.length > 3) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: malformed Extension`);
  }
  const extnID = decodeOid(derContent(bytes, id), operation);
  const critical = withCritical ? derContent(bytes, second!)[0] !== 0x00 : false;
  return { extnID, critical, value: derContent(bytes, valueElement) };
}

/** The dotted form of an OBJECT IDENTIFIER's content octets (X.690 §8.19). */
export function decodeOid(content: Uint8Array, operation = 'decode OID'): string {
  if (content.length === 0 || (content[content.length - 1]! & 0x80) !== 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: malformed OID`);
  const arcs: bigint[] = [];
  let value = 0n;
  let startOfArc = true;
  for (const byte of content) {
    // X.690 §8.19.2: subidentifiers are minimal, so an arc never starts with 0x80.
    if (startOfArc && byte === 0x80) throw new PkiError('INVALID_ARGUMENT', `${operation}: non-minimal OID arc`);
    value = (value << 7n) | BigInt(byte & 0x7f);
    startOfArc = (byte & 0x80) === 0;
    if (startOfArc) {
      arcs.push(value);
      value = 0n;
    }
  }
  const first = arcs[0]!;
  const head = first < 40n ? [0n, first] : first < 80n ? [1n, first - 40n] : [2n, first - 80n];
  return [...head, ...arcs.slice(1)].join('.');
}

function decodeName(bytes: Buffer, name: DerElement, operation: string): DecodedNameAttribute[][] {
  return derChildren(bytes, name, operation).map((rdn) => {
    if (rdn.tag !== TAG.SET) throw new PkiError('INVALID_ARGUMENT', `${operation}: an RDN is not a SET`);
    return derChildren(bytes, rdn, operation).map((atv) => {
      const parts = atv.tag === TAG.SEQUENCE ? derChildren(bytes, atv, operation) : [];
      if (parts.length !== 2 || parts[0]!.tag !== TAG.OID) throw new PkiError('INVALID_ARGUMENT', `${operation}: malformed AttributeTypeAndValue`);
      return { oid: decodeOid(derContent(bytes, parts[0]!), operation), ...decodeDerString(bytes, parts[1]!) };
    });
  });
}

/** The string type and characters of a string element (see {@link DecodedString}). */
export function decodeDerString(bytes: Uint8Array, element: DerElement): DecodedString {
  const stringType = STRING_TYPE_BY_TAG[element.tag] ?? 'other';
  const content = derContent(bytes, element);
  let value: string | undefined;
  try {
    switch (stringType) {
      case 'utf8String':
        value = new TextDecoder('utf-8', { fatal: true }).decode(content);
        break;
      case 'bmpString':
        if (content.length % 2 !== 0) throw new Error('odd length');
        value = Buffer.from(content).swap16().toString('utf16le');
        break;
      case 'universalString':
        if (content.length % 4 !== 0) throw new Error('length not a multiple of 4');
        value = String.fromCodePoint(...Array.from({ length: content.length / 4 }, (_, k) => content.readUInt32BE(k * 4)));
        break;
      case 'other':
        value = undefined;
        break;
      default:
        // PrintableString, IA5String, NumericString, VisibleString, TeletexString: one octet per character.
        value = content.toString('latin1');
    }
  } catch {
    value = undefined;
  }
  return { stringType, value };
}

const UTC_TIME = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/;
const GENERALIZED_TIME = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/;

function decodeTime(bytes: Buffer, element: DerElement): DecodedTime {
  const text = derContent(bytes, element).toString('latin1');
  const encoding = element.tag === TAG.UTC_TIME ? 'utcTime' : element.tag === TAG.GENERALIZED_TIME ? 'generalizedTime' : 'other';
  const match = encoding === 'utcTime' ? UTC_TIME.exec(text) : encoding === 'generalizedTime' ? GENERALIZED_TIME.exec(text) : null;
  if (match === null) return { encoding, text, date: undefined };
  const [, y, mo, d, h, mi, s] = match.map(Number) as [number, number, number, number, number, number, number];
  // RFC 5280 §4.1.2.5.1: UTCTime YY >= 50 is 19YY, YY < 50 is 20YY.
  const year = encoding === 'utcTime' ? (y >= 50 ? 1900 + y : 2000 + y) : y;
  const date = new Date(Date.UTC(year, mo - 1, d, h, mi, s));
  // Reject impossible calendar values (month 13, 31 February) that Date.UTC would roll over.
  const valid = date.getUTCFullYear() === year && date.getUTCMonth() === mo - 1 && date.getUTCDate() === d && h < 24 && mi < 60 && s < 60;
  return { encoding, text, date: valid ? date : undefined };
}

/** Short names of the naming attributes, for messages: `C`, `CN`, ... or the dotted OID. */
export function nameAttributeLabel(attributeOid: string): string {
  return NAME_LABELS[attributeOid] ?? attributeOid;
}

const NAME_LABELS: Record<string, string> = {
  [oid.id_at_countryName]: 'C',
  [oid.id_at_stateOrProvinceName]: 'ST',
  [oid.id_at_localityName]: 'L',
  [oid.id_at_organizationName]: 'O',
  [oid.id_at_organizationalUnitName]: 'OU',
  [oid.id_at_commonName]: 'CN',
  [oid.id_at_serialNumber]: 'serialNumber',
  [oid.id_at_givenName]: 'givenName',
  [oid.id_at_surname]: 'surname',
};
