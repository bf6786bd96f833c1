import { AsnConvert } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, AttributeTypeAndValue } from '@peculiar/asn1-x509';
import { PkiError } from '@pki/kit';
import { derBytes, derChildren, derContent, type DerElement, decodeOid, readDerElement } from './der';
import * as oid from './oids';
import { readSubjectPublicKeyInfo } from './public-key';
import { signatureAlgorithmOfDer } from './signature-algorithm';

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
  /**
   * Whether the bytes are canonical DER (X.690 §10-11) in what this decoder reads: the fields a
   * schema parse and re-serialisation would re-encode (see {@link decodeTbsCertificate}).
   */
  canonical: boolean;
  /** When not canonical, the first departure found, for messages. */
  notCanonicalBecause?: string;
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
 *
 * `canonical` says whether a schema-layer parse and re-serialisation would give the bytes back
 * (what the linter judged before, decision 0019), computed directly: the version written only
 * when it is not the DEFAULT v1 (X.690 §11.5), a critical BOOLEAN only as TRUE, 0xFF (§11.1,
 * §11.5), UTCTime as YYMMDDHHMMSSZ and GeneralizedTime without trailing fraction zeros (§11.7,
 * §11.8) on real calendar values, UTF8String and PrintableString name values that decode, and the
 * SubjectPublicKeyInfo read strictly (readSubjectPublicKeyInfo); rare shapes (a signature
 * algorithm that is not one of the CA's, a name value of another type) go to the schema layer
 * itself. Lengths are minimal everywhere, or the reader refuses the bytes (readDerElement), as it
 * refuses non-minimal OID arcs. The serial's INTEGER and the extension values are not judged
 * here: the linter judges the serial itself, and each extension value has its own canonical
 * reader (extension-decoding.ts). tbs-decoding.test.ts holds the verdict to the schema layer's
 * over random, altered and damaged certificates; the round trip itself cost more than issuing the
 * rest of the certificate.
 */
export function decodeTbsCertificate(tbsDer: Uint8Array, operation = 'decode TBS certificate'): DecodedTbsCertificate {
  const bytes = Buffer.from(tbsDer);
  const fail = (why: string): never => {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: ${why}`);
  };
  let notCanonicalBecause: string | undefined;
  const notCanonical = (why: string): void => {
    notCanonicalBecause ??= why;
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
    if (versionExplicitDefault) notCanonical('version v1 is written out although it is the DEFAULT');
  }
  const serialNumber = derContent(bytes, next(TAG.INTEGER, 'serialNumber'));
  const signatureElement = next(TAG.SEQUENCE, 'signature');
  const signatureAlgorithm = derBytes(bytes, signatureElement);
  checkAlgorithmIdentifier(bytes, signatureElement, notCanonical);
  const issuerElement = next(TAG.SEQUENCE, 'issuer');
  const validity = derChildren(bytes, next(TAG.SEQUENCE, 'validity'), operation);
  if (validity.length !== 2) fail('validity does not hold two times');
  const subjectElement = next(TAG.SEQUENCE, 'subject');
  const subjectPublicKeyInfo = derBytes(bytes, next(TAG.SEQUENCE, 'subjectPublicKeyInfo'));
  try {
    readSubjectPublicKeyInfo(subjectPublicKeyInfo, operation);
  } catch (err) {
    notCanonical((err as Error).message);
  }
  let hasIssuerUniqueId = false;
  let hasSubjectUniqueId = false;
  let extensions: DecodedExtension[] | undefined;
  for (const [tag, name] of [[TAG.ISSUER_UID, 'issuerUniqueID'], [TAG.SUBJECT_UID, 'subjectUniqueID']] as const) {
    const field = fields[i];
    if (field?.tag !== tag && field?.tag !== (tag | 0x20)) continue;
    if (tag === TAG.ISSUER_UID) hasIssuerUniqueId = true;
    else hasSubjectUniqueId = true;
    // UniqueIdentifier ::= BIT STRING, implicitly tagged: primitive, whole octets.
    if (field.tag !== tag || field.end === field.contentStart || bytes[field.contentStart] !== 0) notCanonical(`${name} is not a primitive BIT STRING of whole octets`);
    i++;
  }
  if (fields[i]?.tag === TAG.EXTENSIONS) {
    const wrapper = derChildren(bytes, next(TAG.EXTENSIONS, 'extensions'), operation);
    if (wrapper.length !== 1 || wrapper[0]!.tag !== TAG.SEQUENCE) fail('extensions is not a SEQUENCE');
    extensions = derChildren(bytes, wrapper[0]!, operation).map((ext) => decodeExtension(bytes, ext, operation, notCanonical));
  }
  if (i !== fields.length) fail('unexpected fields after subjectPublicKeyInfo');

  const notBefore = decodeTime(bytes, validity[0]!, notCanonical);
  const notAfter = decodeTime(bytes, validity[1]!, notCanonical);
  const decoded: DecodedTbsCertificate = {
    der: bytes,
    canonical: true,
    version,
    versionExplicitDefault,
    serialNumber,
    signatureAlgorithm,
    issuerDer: derBytes(bytes, issuerElement),
    issuer: decodeName(bytes, issuerElement, operation, notCanonical),
    notBefore,
    notAfter,
    subjectDer: derBytes(bytes, subjectElement),
    subject: decodeName(bytes, subjectElement, operation, notCanonical),
    subjectPublicKeyInfo,
    hasIssuerUniqueId,
    hasSubjectUniqueId,
    extensions,
  };
  if (notCanonicalBecause !== undefined) {
    decoded.canonical = false;
    decoded.notCanonicalBecause = notCanonicalBecause;
  }
  return decoded;
}

type NotCanonical = (why: string) => void;

/**
 * AlgorithmIdentifier ::= SEQUENCE { algorithm OBJECT IDENTIFIER, parameters ANY OPTIONAL }. The
 * CA's own algorithms are canonical as written; anything else (which the linter refuses anyway)
 * is judged by a schema-layer round trip of the AlgorithmIdentifier alone.
 */
function checkAlgorithmIdentifier(bytes: Buffer, element: DerElement, notCanonical: NotCanonical): void {
  const der = bytes.subarray(element.start, element.end);
  if (signatureAlgorithmOfDer(der) !== undefined) return;
  if (!reencodesIdentically(der, AlgorithmIdentifier)) notCanonical('the signature AlgorithmIdentifier does not re-encode identically');
}

/** A schema-layer parse and re-serialisation of `der` gives it back unchanged (for the rare shapes). */
function reencodesIdentically(der: Uint8Array, type: new () => object): boolean {
  try {
    return Buffer.from(AsnConvert.serialize(AsnConvert.parse(der, type))).equals(der);
  } catch {
    return false;
  }
}

function decodeExtension(bytes: Buffer, element: DerElement, operation: string, notCanonical: NotCanonical): DecodedExtension {
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
  // X.690 §11.1: TRUE is 0xFF; §11.5: critical FALSE is the DEFAULT and is left out.
  if (withCritical && (second!.end - second!.contentStart !== 1 || bytes[second!.contentStart] !== 0xff)) {
    notCanonical(`extension ${extnID}: critical is written out but is not the DER TRUE`);
  }
  return { extnID, critical, value: derContent(bytes, valueElement) };
}

function decodeName(bytes: Buffer, name: DerElement, operation: string, notCanonical: NotCanonical): DecodedNameAttribute[][] {
  return derChildren(bytes, name, operation).map((rdn) => {
    if (rdn.tag !== TAG.SET) throw new PkiError('INVALID_ARGUMENT', `${operation}: an RDN is not a SET`);
    // Multi-valued RDNs and values that are no string type (a constructed string among them) are
    // left to the linter, which refuses both; the schema layer carries them through unchanged.
    return derChildren(bytes, rdn, operation).map((atv) => {
      const parts = atv.tag === TAG.SEQUENCE ? derChildren(bytes, atv, operation) : [];
      if (parts.length !== 2 || parts[0]!.tag !== TAG.OID) throw new PkiError('INVALID_ARGUMENT', `${operation}: malformed AttributeTypeAndValue`);
      const attributeOid = decodeOid(derContent(bytes, parts[0]!), operation);
      const value = decodeDerString(bytes, parts[1]!);
      if (value.stringType === 'utf8String' || value.stringType === 'printableString') {
        // The CA's two string types: UTF-8 that does not decode would be re-encoded differently.
        if (value.value === undefined) notCanonical(`attribute ${attributeOid}: the ${value.stringType} does not decode`);
      } else if (!reencodesIdentically(bytes.subarray(atv.start, atv.end), AttributeTypeAndValue)) {
        // Any other type (which the linter refuses) is judged by the schema layer, as before.
        notCanonical(`attribute ${attributeOid}: the ${value.stringType} value does not re-encode identically`);
      }
      return { oid: attributeOid, ...value };
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
// DER GeneralizedTime (X.690 §11.7): seconds present, a fraction only without trailing zeros.
const GENERALIZED_TIME = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\.\d*[1-9])?Z$/;

function decodeTime(bytes: Buffer, element: DerElement, notCanonical: NotCanonical): DecodedTime {
  const text = derContent(bytes, element).toString('latin1');
  const encoding = element.tag === TAG.UTC_TIME ? 'utcTime' : element.tag === TAG.GENERALIZED_TIME ? 'generalizedTime' : 'other';
  const match = encoding === 'utcTime' ? UTC_TIME.exec(text) : encoding === 'generalizedTime' ? GENERALIZED_TIME.exec(text) : null;
  if (match === null) {
    notCanonical(`a validity time is not a DER ${encoding === 'other' ? 'Time' : encoding}`);
    return { encoding, text, date: undefined };
  }
  const [y, mo, d, h, mi, s] = match.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  // RFC 5280 §4.1.2.5.1: UTCTime YY >= 50 is 19YY, YY < 50 is 20YY.
  const year = encoding === 'utcTime' ? (y >= 50 ? 1900 + y : 2000 + y) : y;
  const date = new Date(Date.UTC(year, mo - 1, d, h, mi, s));
  date.setUTCFullYear(year); // Date.UTC reads the years 0 to 99 as 1900 to 1999
  // Reject impossible calendar values (month 13, 31 February) that Date.UTC would roll over.
  const valid = date.getUTCFullYear() === year && date.getUTCMonth() === mo - 1 && date.getUTCDate() === d && h < 24 && mi < 60 && s < 60;
  if (!valid) notCanonical('a validity time is not a calendar time');
  // RFC 5280 §4.1.2.5.2: GeneralizedTime in certificates MUST NOT include fractional seconds.
  return { encoding, text, date: valid && match[7] === undefined ? date : undefined };
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
