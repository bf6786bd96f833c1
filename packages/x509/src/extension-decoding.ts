import { AsnConvert } from '@peculiar/asn1-schema';
import {
  AuthorityInfoAccessSyntax,
  AuthorityKeyIdentifier,
  BasicConstraints,
  CertificatePolicies,
  CRLDistributionPoints,
  ExtendedKeyUsage,
  type GeneralName,
  KeyUsage,
  KeyUsageFlags,
  type KeyUsageType,
  SubjectAlternativeName,
  SubjectDirectoryAttributes,
  SubjectKeyIdentifier,
} from '@peculiar/asn1-x509';
import { PkiError } from '@pki/kit';
import { decodeOid, derChildren, derContent, type DerElement, readDerElement } from './der';
import { type DecodedString, decodeDerString } from './tbs-decoding';

/**
 * Readers for the extension values the CA writes. Each refuses (INVALID_ARGUMENT) a value that does
 * not parse or is not canonical DER: re-serialising it must give back the same bytes, so what a
 * linter reads is exactly what a relying party will read.
 */

type Constructor<T> = new () => T;

function decodeCanonical<T extends object>(value: Uint8Array, type: Constructor<T>, name: string): T {
  let parsed: T;
  try {
    parsed = AsnConvert.parse(value, type);
  } catch (err) {
    throw new PkiError('INVALID_ARGUMENT', `decode ${name}: malformed value`, { cause: err });
  }
  if (!Buffer.from(AsnConvert.serialize(parsed)).equals(Buffer.from(value))) {
    throw new PkiError('INVALID_ARGUMENT', `decode ${name}: not canonical DER`);
  }
  return parsed;
}

const KEY_USAGE_BITS: ReadonlyArray<[KeyUsageType, number]> = [
  ['digitalSignature', KeyUsageFlags.digitalSignature],
  ['nonRepudiation', KeyUsageFlags.nonRepudiation],
  ['keyEncipherment', KeyUsageFlags.keyEncipherment],
  ['dataEncipherment', KeyUsageFlags.dataEncipherment],
  ['keyAgreement', KeyUsageFlags.keyAgreement],
  ['keyCertSign', KeyUsageFlags.keyCertSign],
  ['crlSign', KeyUsageFlags.cRLSign],
  ['encipherOnly', KeyUsageFlags.encipherOnly],
  ['decipherOnly', KeyUsageFlags.decipherOnly],
];

/** keyUsage (RFC 5280 §4.2.1.3): the asserted bits in RFC order. */
export function decodeKeyUsage(value: Uint8Array): KeyUsageType[] {
  const flags = decodeCanonical(value, KeyUsage, 'keyUsage').toNumber();
  // X.690 §11.2.2: a DER named bit list carries no trailing zero bits; the BitString model keeps
  // the unused-bits count as read, so compare with the minimal encoding of the same flags.
  if (!Buffer.from(AsnConvert.serialize(new KeyUsage(flags))).equals(Buffer.from(value))) {
    throw new PkiError('INVALID_ARGUMENT', 'decode keyUsage: not canonical DER');
  }
  return KEY_USAGE_BITS.filter(([, flag]) => (flags & flag) !== 0).map(([usage]) => usage);
}

/** extKeyUsage (RFC 5280 §4.2.1.12): the KeyPurposeId OIDs in order. */
export function decodeExtendedKeyUsage(value: Uint8Array): string[] {
  return [...decodeCanonical(value, ExtendedKeyUsage, 'extKeyUsage')];
}

/** basicConstraints (RFC 5280 §4.2.1.9). */
export function decodeBasicConstraints(value: Uint8Array): { ca: boolean; pathLenConstraint?: number } {
  const bc = decodeCanonical(value, BasicConstraints, 'basicConstraints');
  return bc.pathLenConstraint === undefined ? { ca: bc.cA } : { ca: bc.cA, pathLenConstraint: bc.pathLenConstraint };
}

/** subjectKeyIdentifier (RFC 5280 §4.2.1.2). */
export function decodeSubjectKeyIdentifier(value: Uint8Array): Buffer {
  // The form the CA writes, a primitive OCTET STRING that is exactly the value, read directly.
  const plain = wholeElement(value, 0x04);
  if (plain !== undefined) return derContent(value, plain);
  return Buffer.from(decodeCanonical(value, SubjectKeyIdentifier, 'subjectKeyIdentifier').buffer);
}

/** authorityKeyIdentifier (RFC 5280 §4.2.1.1): the key identifier, and whether issuer/serial are present too. */
export function decodeAuthorityKeyIdentifier(value: Uint8Array): { keyIdentifier?: Buffer; hasIssuerAndSerial: boolean } {
  const aki = decodeCanonical(value, AuthorityKeyIdentifier, 'authorityKeyIdentifier');
  const hasIssuerAndSerial = aki.authorityCertIssuer !== undefined || aki.authorityCertSerialNumber !== undefined;
  return aki.keyIdentifier === undefined ? { hasIssuerAndSerial } : { keyIdentifier: Buffer.from(aki.keyIdentifier.buffer), hasIssuerAndSerial };
}

/** certificatePolicies (RFC 5280 §4.2.1.4): policy OIDs in order, with the number of qualifiers each carries. */
export function decodeCertificatePolicies(value: Uint8Array): Array<{ policyIdentifier: string; qualifiers: number }> {
  return [...decodeCanonical(value, CertificatePolicies, 'certificatePolicies')].map((p) => ({
    policyIdentifier: p.policyIdentifier,
    qualifiers: p.policyQualifiers?.length ?? 0,
  }));
}

/** A GeneralName (RFC 5280 §4.2.1.6) reduced to its kind and, for the IA5String kinds, its text. */
export type DecodedGeneralName =
  | { type: 'uri' | 'dns' | 'email'; value: string }
  | { type: 'ip'; value: string }
  | { type: 'directoryName' | 'otherName' | 'registeredID' | 'x400Address' | 'ediPartyName' };

function generalName(name: GeneralName): DecodedGeneralName {
  if (name.uniformResourceIdentifier !== undefined) return { type: 'uri', value: name.uniformResourceIdentifier };
  if (name.dNSName !== undefined) return { type: 'dns', value: name.dNSName };
  if (name.rfc822Name !== undefined) return { type: 'email', value: name.rfc822Name };
  if (name.iPAddress !== undefined) return { type: 'ip', value: name.iPAddress };
  if (name.directoryName !== undefined) return { type: 'directoryName' };
  if (name.otherName !== undefined) return { type: 'otherName' };
  if (name.registeredID !== undefined) return { type: 'registeredID' };
  if (name.ediPartyName !== undefined) return { type: 'ediPartyName' };
  return { type: 'x400Address' };
}

export interface DecodedDistributionPoint {
  /** distributionPoint.fullName entries. */
  fullName: DecodedGeneralName[];
  /** Whether distributionPoint is nameRelativeToCRLIssuer (which this CA never writes). */
  relativeName: boolean;
  hasReasons: boolean;
  hasCrlIssuer: boolean;
}

/** cRLDistributionPoints (RFC 5280 §4.2.1.13). */
export function decodeCrlDistributionPoints(value: Uint8Array): DecodedDistributionPoint[] {
  return [...decodeCanonical(value, CRLDistributionPoints, 'cRLDistributionPoints')].map((dp) => ({
    fullName: (dp.distributionPoint?.fullName ?? []).map(generalName),
    relativeName: dp.distributionPoint?.nameRelativeToCRLIssuer !== undefined,
    hasReasons: dp.reasons !== undefined,
    hasCrlIssuer: dp.cRLIssuer !== undefined,
  }));
}

/** authorityInfoAccess (RFC 5280 §4.2.2.1): access method OID and location, in order. */
export function decodeAuthorityInfoAccess(value: Uint8Array): Array<{ accessMethod: string; accessLocation: DecodedGeneralName }> {
  return [...decodeCanonical(value, AuthorityInfoAccessSyntax, 'authorityInfoAccess')].map((ad) => ({
    accessMethod: ad.accessMethod,
    accessLocation: generalName(ad.accessLocation),
  }));
}

/** subjectAltName (RFC 5280 §4.2.1.6). */
export function decodeSubjectAltName(value: Uint8Array): DecodedGeneralName[] {
  return plainGeneralNames(value) ?? [...decodeCanonical(value, SubjectAlternativeName, 'subjectAltName')].map(generalName);
}

/** subjectDirectoryAttributes (RFC 5280 §4.2.1.8): each attribute's type and its values as strings. */
export function decodeSubjectDirectoryAttributes(value: Uint8Array): Array<{ type: string; values: DecodedString[] }> {
  const plain = plainDirectoryAttributes(value);
  if (plain !== undefined) return plain;
  return [...decodeCanonical(value, SubjectDirectoryAttributes, 'subjectDirectoryAttributes')].map((attribute) => ({
    type: attribute.type,
    values: attribute.values.map((v) => {
      const bytes = new Uint8Array(v);
      return decodeDerString(bytes, readDerElement(bytes, 0, 'decode subjectDirectoryAttributes'));
    }),
  }));
}

/** Whether `value` is exactly the DER NULL (05 00), as id-pkix-ocsp-nocheck requires (RFC 6960 §4.2.2.2.1). */
export function isDerNull(value: Uint8Array): boolean {
  return value.length === 2 && value[0] === 0x05 && value[1] === 0x00;
}

/*
 * Direct readers for the values that change with every certificate (its key identifier, mailbox
 * and national ID digits), in the plain forms the CA writes: each returns undefined for anything
 * else, which then goes to the schema layer as before. On what they accept they give what the
 * schema layer gives (extension-decoding.test.ts compares both over random and damaged values):
 * minimal-length primitive elements that exactly fill their parent re-encode to themselves.
 * Decision 0019: the schema layer cost about 50 µs for each of these per certificate.
 */

/** The element that is the whole of `bytes`, when it has `tag`, a DER length and nothing after it. */
function wholeElement(bytes: Uint8Array, tag: number): DerElement | undefined {
  let element: DerElement;
  try {
    element = readDerElement(bytes, 0);
  } catch {
    return undefined;
  }
  return element.tag === tag && element.end === bytes.length ? element : undefined;
}

/** The children of a constructed element, or undefined when they do not parse as DER. */
function childrenOf(bytes: Uint8Array, element: DerElement): DerElement[] | undefined {
  try {
    return derChildren(bytes, element);
  } catch {
    return undefined;
  }
}

// GeneralName IA5String alternatives, implicitly tagged and primitive (RFC 5280 Appendix A.2).
const IA5_GENERAL_NAMES: Record<number, 'email' | 'dns' | 'uri'> = { 0x81: 'email', 0x82: 'dns', 0x86: 'uri' };

/** GeneralNames holding only rfc822Name, dNSName and URI entries. */
function plainGeneralNames(value: Uint8Array): DecodedGeneralName[] | undefined {
  const sequence = wholeElement(value, 0x30);
  const names = sequence === undefined ? undefined : childrenOf(value, sequence);
  if (names === undefined) return undefined;
  const decoded: DecodedGeneralName[] = [];
  for (const name of names) {
    const type = IA5_GENERAL_NAMES[name.tag];
    if (type === undefined) return undefined;
    decoded.push({ type, value: Buffer.from(value.buffer, value.byteOffset + name.contentStart, name.end - name.contentStart).toString('latin1') });
  }
  return decoded;
}

const DIRECTORY_STRING_TAGS = new Set([0x0c, 0x13]); // UTF8String, PrintableString

/** Attributes whose values are all primitive UTF8Strings or PrintableStrings. */
function plainDirectoryAttributes(value: Uint8Array): Array<{ type: string; values: DecodedString[] }> | undefined {
  const sequence = wholeElement(value, 0x30);
  const attributes = sequence === undefined ? undefined : childrenOf(value, sequence);
  if (attributes === undefined) return undefined;
  const decoded: Array<{ type: string; values: DecodedString[] }> = [];
  for (const attribute of attributes) {
    const parts = attribute.tag === 0x30 ? childrenOf(value, attribute) : undefined;
    if (parts?.length !== 2 || parts[0]!.tag !== 0x06 || parts[1]!.tag !== 0x31) return undefined;
    const values = childrenOf(value, parts[1]!);
    if (values === undefined || values.some((v) => !DIRECTORY_STRING_TAGS.has(v.tag))) return undefined;
    let type: string;
    try {
      type = decodeOid(derContent(value, parts[0]!));
    } catch {
      return undefined;
    }
    decoded.push({ type, values: values.map((v) => decodeDerString(value, v)) });
  }
  return decoded;
}
