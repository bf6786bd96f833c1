import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { BasicConstraints, CertificatePolicies, ExtendedKeyUsage, Extension, KeyUsage, KeyUsageFlags, type KeyUsageType, PolicyInformation } from '@peculiar/asn1-x509';
import { PkiError } from '@pki/kit';
import { encodeDerElement } from './der';
import { contextTag, derIa5String, derOctetString, derSequence, DerTag, encodeOid, utf8Octets } from './der-encoding';
import * as oid from './oids';
import { subjectKeyIdentifierOf, toArrayBuffer } from './public-key';

/*
 * The extensions whose values change from one certificate to the next (subject and authority key
 * identifiers, the CRL partition's distribution point, AIA, subject directory attributes, subject
 * alternative names) are written directly in DER (decision 0019); the ones that depend only on a
 * profile (keyUsage, extKeyUsage, basicConstraints, certificatePolicies) are built by the schema
 * layer, and issuance keeps their bytes per profile. extensions.test.ts compares every direct
 * encoding with the schema layer's over random inputs.
 */

export type { KeyUsageType };

/** One certificate extension ready for the TBS: its OID, criticality and the DER inside extnValue. */
export interface CertificateExtension {
  extnID: string;
  critical: boolean;
  /** DER of the extension's value (what RFC 5280 §4.1 wraps in the extnValue OCTET STRING). */
  value: Buffer;
}

/** Every builder lets the profile decide criticality; the default is what RFC 5280 asks for. */
export interface Criticality {
  critical?: boolean;
}

function extension(extnID: string, critical: boolean, value: object): CertificateExtension {
  return { extnID, critical, value: Buffer.from(AsnConvert.serialize(value)) };
}

/** The @peculiar Extension object of a built extension (used by the TBS builder). */
export function toAsnExtension(ext: CertificateExtension): Extension {
  return new Extension({ extnID: ext.extnID, critical: ext.critical, extnValue: new OctetString(toArrayBuffer(ext.value)) });
}

/**
 * basicConstraints (RFC 5280 §4.2.1.9). Critical by default: the RFC says conforming CAs MUST
 * mark it critical in CA certificates. pathLenConstraint is only meaningful when cA is set.
 */
export function basicConstraintsExtension(value: { ca: boolean; pathLenConstraint?: number }, options: Criticality = {}): CertificateExtension {
  if (value.pathLenConstraint !== undefined) {
    if (!value.ca) throw new PkiError('INVALID_ARGUMENT', 'build basicConstraints: pathLenConstraint requires cA (RFC 5280 §4.2.1.9)');
    if (!Number.isInteger(value.pathLenConstraint) || value.pathLenConstraint < 0) {
      throw new PkiError('INVALID_ARGUMENT', 'build basicConstraints: pathLenConstraint must be a non-negative integer');
    }
  }
  // cA DEFAULT FALSE: asn1-schema omits a default value, as DER (X.690 §11.5) requires.
  const constraints = new BasicConstraints({ cA: value.ca });
  if (value.pathLenConstraint !== undefined) constraints.pathLenConstraint = value.pathLenConstraint;
  return extension(oid.id_ce_basicConstraints, options.critical ?? true, constraints);
}

/**
 * keyUsage (RFC 5280 §4.2.1.3): at least one bit set. Critical by default ("conforming CAs SHOULD
 * mark this extension as critical"); the citizen profiles turn it off as observed (domain.md).
 */
export function keyUsageExtension(usages: readonly KeyUsageType[], options: Criticality = {}): CertificateExtension {
  if (usages.length === 0) throw new PkiError('INVALID_ARGUMENT', 'build keyUsage: at least one usage is required (RFC 5280 §4.2.1.3)');
  let flags = 0;
  for (const usage of usages) {
    const flag = KEY_USAGE_FLAG[usage];
    if (flag === undefined) throw new PkiError('INVALID_ARGUMENT', `build keyUsage: unknown usage '${String(usage)}'`);
    flags |= flag;
  }
  // KeyUsage encodes the named bit list without trailing zero bits (X.690 §11.2.2).
  return extension(oid.id_ce_keyUsage, options.critical ?? true, new KeyUsage(flags));
}

// asn1-x509 names the bit `cRLSign`; the RFC-defined KeyUsageType spells it `crlSign`.
const KEY_USAGE_FLAG: Record<KeyUsageType, number> = {
  digitalSignature: KeyUsageFlags.digitalSignature,
  nonRepudiation: KeyUsageFlags.nonRepudiation,
  keyEncipherment: KeyUsageFlags.keyEncipherment,
  dataEncipherment: KeyUsageFlags.dataEncipherment,
  keyAgreement: KeyUsageFlags.keyAgreement,
  keyCertSign: KeyUsageFlags.keyCertSign,
  crlSign: KeyUsageFlags.cRLSign,
  encipherOnly: KeyUsageFlags.encipherOnly,
  decipherOnly: KeyUsageFlags.decipherOnly,
};

/** extKeyUsage (RFC 5280 §4.2.1.12), a list of KeyPurposeId OIDs. Non-critical by default. */
export function extendedKeyUsageExtension(purposes: readonly string[], options: Criticality = {}): CertificateExtension {
  if (purposes.length === 0) throw new PkiError('INVALID_ARGUMENT', 'build extKeyUsage: at least one purpose is required');
  purposes.forEach((p) => assertOid(p, 'build extKeyUsage'));
  return extension(oid.id_ce_extKeyUsage, options.critical ?? false, new ExtendedKeyUsage([...purposes]));
}

/**
 * subjectKeyIdentifier (RFC 5280 §4.2.1.2) computed by method (1) from the subject's SPKI. The RFC
 * says it MUST NOT be critical, hence the default.
 */
export function subjectKeyIdentifierExtension(subjectPublicKeyInfo: Uint8Array, options: Criticality = {}): CertificateExtension {
  // SubjectKeyIdentifier ::= KeyIdentifier ::= OCTET STRING
  return { extnID: oid.id_ce_subjectKeyIdentifier, critical: options.critical ?? false, value: derOctetString(subjectKeyIdentifierOf(subjectPublicKeyInfo)) };
}

/**
 * authorityKeyIdentifier (RFC 5280 §4.2.1.1) with keyIdentifier only: the issuer's subject key
 * identifier. All CA generations share one issuer DN (domain.md), so this is what tells a
 * validator which issuer key signed. MUST NOT be critical.
 */
export function authorityKeyIdentifierExtension(keyIdentifier: Uint8Array, options: Criticality = {}): CertificateExtension {
  if (keyIdentifier.length === 0) throw new PkiError('INVALID_ARGUMENT', 'build authorityKeyIdentifier: key identifier is empty');
  // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] KeyIdentifier OPTIONAL, ... } (implicit tags)
  return { extnID: oid.id_ce_authorityKeyIdentifier, critical: options.critical ?? false, value: derSequence(encodeDerElement(contextTag(0, false), keyIdentifier)) };
}

/** certificatePolicies (RFC 5280 §4.2.1.4): policy OIDs without qualifiers, no duplicates. */
export function certificatePoliciesExtension(policyOids: readonly string[], options: Criticality = {}): CertificateExtension {
  if (policyOids.length === 0) throw new PkiError('INVALID_ARGUMENT', 'build certificatePolicies: at least one policy is required');
  policyOids.forEach((p) => assertOid(p, 'build certificatePolicies'));
  if (new Set(policyOids).size !== policyOids.length) {
    throw new PkiError('INVALID_ARGUMENT', 'build certificatePolicies: a policy OID appears more than once (RFC 5280 §4.2.1.4)');
  }
  const policies = new CertificatePolicies(policyOids.map((policyIdentifier) => new PolicyInformation({ policyIdentifier })));
  return extension(oid.id_ce_certificatePolicies, options.critical ?? false, policies);
}

/**
 * cRLDistributionPoints (RFC 5280 §4.2.1.13): one DistributionPoint per URI, each with a
 * fullName and no reasons or cRLIssuer (the CA issues its own full CRLs).
 */
export function crlDistributionPointsExtension(uris: readonly string[], options: Criticality = {}): CertificateExtension {
  if (uris.length === 0) throw new PkiError('INVALID_ARGUMENT', 'build cRLDistributionPoints: at least one URI is required');
  // DistributionPoint ::= SEQUENCE { distributionPoint [0] DistributionPointName OPTIONAL, ... }
  // DistributionPointName ::= CHOICE { fullName [0] GeneralNames, ... }: a tagged CHOICE is
  // explicitly tagged, GeneralNames implicitly (RFC 5280 Appendix A.2).
  const points = uris.map((uri) => derSequence(encodeDerElement(contextTag(0, true), encodeDerElement(contextTag(0, true), uriName(uri, 'build cRLDistributionPoints')))));
  return { extnID: oid.id_ce_cRLDistributionPoints, critical: options.critical ?? false, value: derSequence(...points) };
}

/** authorityInfoAccess (RFC 5280 §4.2.2.1): OCSP then caIssuers URIs. MUST be non-critical. */
export function authorityInfoAccessExtension(access: { ocsp?: readonly string[]; caIssuers?: readonly string[] }, options: Criticality = {}): CertificateExtension {
  const operation = 'build authorityInfoAccess';
  // AccessDescription ::= SEQUENCE { accessMethod OBJECT IDENTIFIER, accessLocation GeneralName }
  const descriptions = [
    ...(access.ocsp ?? []).map((uri) => derSequence(encodeOid(oid.id_ad_ocsp), uriName(uri, operation))),
    ...(access.caIssuers ?? []).map((uri) => derSequence(encodeOid(oid.id_ad_caIssuers), uriName(uri, operation))),
  ];
  if (descriptions.length === 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: at least one URI is required`);
  return { extnID: oid.id_pe_authorityInfoAccess, critical: options.critical ?? false, value: derSequence(...descriptions) };
}

export interface DirectoryAttribute {
  /** Attribute type OID, e.g. {@link oid.id_tw_gca_nationalIdLastFour}. */
  type: string;
  value: string;
  /**
   * The string type of the value. PrintableString by default: the citizen CA's attributes carry
   * digits and letters (the exact type used by the CA is unconfirmed, domain.md).
   */
  encoding?: 'printableString' | 'utf8String';
}

/**
 * subjectDirectoryAttributes (RFC 5280 §4.2.1.8), one single-valued Attribute per entry. The RFC
 * says conforming CAs MUST mark it non-critical.
 */
export function subjectDirectoryAttributesExtension(attributes: readonly DirectoryAttribute[], options: Criticality = {}): CertificateExtension {
  const operation = 'build subjectDirectoryAttributes';
  if (attributes.length === 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: at least one attribute is required`);
  const items = attributes.map(({ type, value, encoding = 'printableString' }) => {
    assertOid(type, operation);
    if (value.length === 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: attribute ${type} has an empty value`);
    if (encoding === 'printableString' && !/^[A-Za-z0-9 '()+,\-./:=?]+$/.test(value)) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: attribute ${type} is not a PrintableString`);
    }
    // Attribute ::= SEQUENCE { type AttributeType, values SET OF AttributeValue }; a DirectoryString
    // CHOICE is just the chosen string's TLV.
    const string =
      encoding === 'printableString'
        ? encodeDerElement(DerTag.PRINTABLE_STRING, Buffer.from(value, 'latin1'))
        : encodeDerElement(DerTag.UTF8_STRING, utf8Octets(value, `${operation}: attribute ${type}`));
    return derSequence(encodeOid(type), encodeDerElement(DerTag.SET, string));
  });
  return { extnID: oid.id_ce_subjectDirectoryAttributes, critical: options.critical ?? false, value: derSequence(...items) };
}

/**
 * subjectAltName with rfc822Name entries (RFC 5280 §4.2.1.6). Non-critical by default: the RFC
 * requires critical only when the subject DN is empty, which never happens in these profiles.
 * rfc822Name is an IA5String: internationalised addresses (RFC 8398) are refused.
 */
export function subjectAltNameEmailExtension(emails: readonly string[], options: Criticality = {}): CertificateExtension {
  const operation = 'build subjectAltName';
  if (emails.length === 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: at least one e-mail address is required`);
  for (const email of emails) {
    // RFC 5280 §4.2.1.6: a Mailbox (RFC 5321 §4.1.2) local-part@domain, without display name or <>.
    const at = email.lastIndexOf('@');
    const localPart = email.slice(0, at);
    const domain = email.slice(at + 1);
    if (at <= 0 || !/^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]+$/.test(localPart) || !DOMAIN.test(domain)) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: not an ASCII mailbox address`);
    }
  }
  return { extnID: oid.id_ce_subjectAltName, critical: options.critical ?? false, value: derSequence(...emails.map(rfc822Name)) };
}

/**
 * id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1) for a delegated OCSP responder's certificate: the
 * value is NULL and the extension SHOULD be non-critical. It tells relying parties not to check
 * the responder certificate's revocation status, so the certificate must be short-lived.
 */
export function ocspNoCheckExtension(options: Criticality = {}): CertificateExtension {
  return { extnID: oid.id_pkix_ocsp_nocheck, critical: options.critical ?? false, value: Buffer.from([0x05, 0x00]) };
}

export interface SubjectAltNames {
  /** dNSName entries: preferred-name syntax host names (RFC 5280 §4.2.1.6, RFC 1034 §3.5). */
  dnsNames?: readonly string[];
  /** uniformResourceIdentifier entries, e.g. a SPIFFE ID `spiffe://trust-domain/path`. */
  uris?: readonly string[];
  /** rfc822Name entries (ASCII mailboxes). */
  emails?: readonly string[];
}

/**
 * subjectAltName (RFC 5280 §4.2.1.6) with DNS names, URIs and e-mail addresses, in that order.
 * Non-critical by default (the subject DN is never empty in these profiles). Names are checked
 * for their IA5String syntax; a DNS name is lower-case ASCII without a trailing dot or wildcard.
 */
export function subjectAltNameExtension(names: SubjectAltNames, options: Criticality = {}): CertificateExtension {
  const operation = 'build subjectAltName';
  const dnsNames = names.dnsNames ?? [];
  const uris = names.uris ?? [];
  const emails = names.emails ?? [];
  if (dnsNames.length + uris.length + emails.length === 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: at least one name is required`);
  for (const name of dnsNames) {
    if (!HOST_NAME.test(name)) throw new PkiError('INVALID_ARGUMENT', `${operation}: '${name}' is not a lower-case DNS host name`);
  }
  for (const uri of uris) {
    // RFC 5280 §4.2.1.6: the URI MUST include a scheme and a scheme-specific part, in ASCII.
    if (!/^[a-z][a-z0-9+.-]*:[\x21-\x7e]+$/.test(uri)) throw new PkiError('INVALID_ARGUMENT', `${operation}: '${uri}' is not an absolute ASCII URI`);
  }
  // The mailboxes are checked as subjectAltNameEmailExtension checks them.
  if (emails.length > 0) subjectAltNameEmailExtension(emails);
  // GeneralNames ::= SEQUENCE OF GeneralName; dNSName [2], uniformResourceIdentifier [6] and
  // rfc822Name [1] are IA5Strings, implicitly tagged (RFC 5280 Appendix A.2).
  const generalNames = [...dnsNames.map((name) => derIa5String(contextTag(2, false), name)), ...uris.map((uri) => derIa5String(contextTag(6, false), uri)), ...emails.map(rfc822Name)];
  return { extnID: oid.id_ce_subjectAltName, critical: options.critical ?? false, value: derSequence(...generalNames) };
}

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

const DOMAIN = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;

function rfc822Name(mailbox: string): Buffer {
  return derIa5String(contextTag(1, false), mailbox);
}

/** A uniformResourceIdentifier GeneralName ([6] IA5String) for a CRL DP or AIA URI. */
function uriName(uri: string, operation: string): Buffer {
  // uniformResourceIdentifier is an IA5String holding an absolute URI (RFC 5280 §4.2.1.6).
  let parsed: URL;
  try {
    parsed = new URL(uri);
  } catch {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: '${uri}' is not an absolute URI`);
  }
  if (!/^[\x21-\x7e]+$/.test(uri) || !['http:', 'https:', 'ldap:'].includes(parsed.protocol)) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: '${uri}' must be an ASCII http, https or ldap URI`);
  }
  return derIa5String(contextTag(6, false), uri);
}

function assertOid(value: string, operation: string): void {
  if (!/^[0-2](\.(0|[1-9][0-9]*))+$/.test(value)) throw new PkiError('INVALID_ARGUMENT', `${operation}: '${value}' is not an OID`);
}
