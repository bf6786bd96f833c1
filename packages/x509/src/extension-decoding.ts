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
import { readDerElement } from './der';
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
  return [...decodeCanonical(value, SubjectAlternativeName, 'subjectAltName')].map(generalName);
}

/** subjectDirectoryAttributes (RFC 5280 §4.2.1.8): each attribute's type and its values as strings. */
export function decodeSubjectDirectoryAttributes(value: Uint8Array): Array<{ type: string; values: DecodedString[] }> {
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
