import { AttributeTypeAndValue, AttributeValue, Name, RelativeDistinguishedName } from '@peculiar/asn1-x509';
import { PkiError } from '@pki/kit';
import { encodeDerElement } from './der';
import { DerTag, encodeOid, utf8Octets } from './der-encoding';
import * as oid from './oids';

/** The naming attributes the CA writes, by their RFC 4519 short names. */
export type NameAttributeType = 'C' | 'ST' | 'L' | 'O' | 'OU' | 'CN' | 'serialNumber' | 'givenName' | 'surname';

/** One attribute of a distinguished name; a DN is an ordered list, one attribute per RDN. */
export interface NameAttribute {
  type: NameAttributeType;
  value: string;
}

/** A distinguished name in certificate order (most significant first: `C=TW, O=..., ...`). */
export type DistinguishedName = readonly NameAttribute[];

/** An attribute read back from DER: `type` is the short name when known, else the dotted OID. */
export interface ParsedNameAttribute {
  type: string;
  oid: string;
  value: string;
}

interface AttributeRule {
  oid: string;
  /** RFC 5280 Appendix A upper bound (ub-*) in characters. */
  maxLength: number;
  encoding: 'printableString' | 'utf8String';
}

// RFC 5280 §4.1.2.6 / Appendix A: countryName and serialNumber are PrintableString by definition;
// for DirectoryString attributes §4.1.2.4 says new certificates MUST use PrintableString or
// UTF8String, and UTF8String is the only one that carries the Chinese DNs of this CA.
const RULES: Record<NameAttributeType, AttributeRule> = {
  C: { oid: oid.id_at_countryName, maxLength: 2, encoding: 'printableString' },
  ST: { oid: oid.id_at_stateOrProvinceName, maxLength: 128, encoding: 'utf8String' },
  L: { oid: oid.id_at_localityName, maxLength: 128, encoding: 'utf8String' },
  O: { oid: oid.id_at_organizationName, maxLength: 64, encoding: 'utf8String' },
  OU: { oid: oid.id_at_organizationalUnitName, maxLength: 64, encoding: 'utf8String' },
  CN: { oid: oid.id_at_commonName, maxLength: 64, encoding: 'utf8String' },
  serialNumber: { oid: oid.id_at_serialNumber, maxLength: 64, encoding: 'printableString' },
  givenName: { oid: oid.id_at_givenName, maxLength: 32768, encoding: 'utf8String' },
  surname: { oid: oid.id_at_surname, maxLength: 32768, encoding: 'utf8String' },
};

const TYPE_BY_OID = new Map<string, NameAttributeType>(
  Object.entries(RULES).map(([type, rule]) => [rule.oid, type as NameAttributeType]),
);

// X.680 §41.4 PrintableString alphabet.
const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]+$/;

/** Builds the ASN.1 Name of a DN, checking each value against its attribute's syntax. */
export function buildName(dn: DistinguishedName, operation = 'build name'): Name {
  return new Name(
    dn.map((attribute) => {
      const rule = checkAttribute(attribute, operation);
      return new RelativeDistinguishedName([new AttributeTypeAndValue({ type: rule.oid, value: new AttributeValue({ [rule.encoding]: attribute.value }) })]);
    }),
  );
}

/**
 * DER of a DN (the `Name` of RFC 5280 §4.1.2.4), one attribute per RDN, with the same checks as
 * {@link buildName}. Written directly: issuance encodes a subject per certificate, and the schema
 * layer cost more than the rest of the TBS (decision 0019; name.test.ts compares both encodings
 * over random names).
 *
 *   Name ::= SEQUENCE OF RelativeDistinguishedName
 *   RelativeDistinguishedName ::= SET SIZE (1..MAX) OF AttributeTypeAndValue
 *   AttributeTypeAndValue ::= SEQUENCE { type AttributeType, value AttributeValue }
 */
export function encodeName(dn: DistinguishedName, operation = 'build name'): Buffer {
  const rdns = dn.map((attribute) => {
    const rule = checkAttribute(attribute, operation);
    const value =
      rule.encoding === 'utf8String'
        ? encodeDerElement(DerTag.UTF8_STRING, utf8Octets(attribute.value, `${operation}: ${attribute.type}`))
        : encodeDerElement(DerTag.PRINTABLE_STRING, Buffer.from(attribute.value, 'latin1'));
    return encodeDerElement(DerTag.SET, encodeDerElement(DerTag.SEQUENCE, encodeOid(rule.oid), value));
  });
  return encodeDerElement(DerTag.SEQUENCE, ...rdns);
}

/** The rule of an attribute whose value fits it; INVALID_ARGUMENT naming what does not. */
function checkAttribute({ type, value }: NameAttribute, operation: string): AttributeRule {
  const rule = RULES[type as NameAttributeType] as AttributeRule | undefined;
  if (rule === undefined) throw new PkiError('INVALID_ARGUMENT', `${operation}: unknown name attribute type '${String(type)}'`);
  if (typeof value !== 'string' || value.length === 0) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: ${type} must not be empty`);
  }
  if ([...value].length > rule.maxLength) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: ${type} is longer than ${rule.maxLength} characters (RFC 5280 Appendix A)`);
  }
  if (type === 'C' && !/^[A-Z]{2}$/.test(value)) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: C must be a two-letter ISO 3166 code`);
  }
  if (rule.encoding === 'printableString' && !PRINTABLE.test(value)) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: ${type} contains characters outside PrintableString`);
  }
  return rule;
}

/** Reads a DER Name back into ordered attributes (multi-valued RDNs are flattened in order). */
export function parseName(name: Name): ParsedNameAttribute[] {
  const attributes: ParsedNameAttribute[] = [];
  for (const rdn of name) {
    for (const atv of rdn) {
      attributes.push({ type: TYPE_BY_OID.get(atv.type) ?? atv.type, oid: atv.type, value: atv.value.toString() });
    }
  }
  return attributes;
}

export interface FormatNameOptions {
  /**
   * Replaces the values of these attribute types with `…`. Subject DNs of citizens carry the
   * person's name and CA-assigned serialNumber, which are personal data and never reach a log
   * line in clear (architecture.md, "Security lines").
   */
  redact?: readonly string[];
}

/**
 * A readable one-line DN for logs and error messages: `C=TW, O=行政院, OU=內政部憑證管理中心`.
 * Attributes appear in certificate order (as this CA's documents and `openssl -nameopt` write
 * them), not RFC 4514's reversed order; values are escaped as RFC 4514 §2.4 requires.
 */
export function formatName(name: Name | DistinguishedName | readonly ParsedNameAttribute[], options: FormatNameOptions = {}): string {
  const attributes = name instanceof Name ? parseName(name) : name;
  const redact = new Set(options.redact ?? []);
  return attributes.map(({ type, value }) => `${type}=${redact.has(type) ? '…' : escapeRfc4514(value)}`).join(', ');
}

function escapeRfc4514(value: string): string {
  let escaped = value.replace(/[\\",+;<>]/g, (c) => `\\${c}`);
  if (escaped.startsWith('#') || escaped.startsWith(' ')) escaped = `\\${escaped}`;
  if (escaped.endsWith(' ')) escaped = `${escaped.slice(0, -1)}\\ `;
  return escaped;
}
