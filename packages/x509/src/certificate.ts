import { AsnConvert } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, BasicConstraints, Certificate, Name, SubjectKeyIdentifier, Time } from '@peculiar/asn1-x509';
import { PkiError } from '@pki/kit';
import { derBytes, derChildren, derContent, encodeDerElement, readDerElement } from './der';
import { derBitString, derIntegerContent, derOctetString, derSequence, derTime, encodeOid } from './der-encoding';
import type { CertificateExtension } from './extensions';
import { type DistinguishedName, encodeName } from './name';
import { readSubjectPublicKeyInfo } from './public-key';
import { assertValidSerial } from './serial';
import { algorithmIdentifierDer, type SignatureAlgorithm, signatureAlgorithmIdentifier, signatureAlgorithmOfDer } from './signature-algorithm';
import { verifySignature } from './signature-verification';
import * as oid from './oids';

/** A name given as DER, copied into the TBS as it is (the issuer field of a subordinate's TBS). */
export interface EncodedName {
  der: Uint8Array;
}

/** Everything a TBSCertificate (RFC 5280 §4.1.2) holds, in domain types. */
export interface TbsCertificateSpec {
  /** Content octets of a positive INTEGER of at most 20 octets (see randomSerial). */
  serialNumber: Uint8Array;
  /** Goes into TBSCertificate.signature and, later, Certificate.signatureAlgorithm. */
  signatureAlgorithm: SignatureAlgorithm;
  /**
   * The issuer DN. Pass the issuer certificate's subject as `{ der }` so the two are byte-identical:
   * path building compares them (RFC 5280 §4.1.2.4, §7.1).
   */
  issuer: DistinguishedName | EncodedName;
  /** Whole seconds: X.509 times carry no fractions (RFC 5280 §4.1.2.5.1, §4.1.2.5.2). */
  validity: { notBefore: Date; notAfter: Date };
  subject: DistinguishedName | EncodedName;
  subjectPublicKeyInfo: Uint8Array;
  extensions: readonly CertificateExtension[];
}

/*
 * The TBSCertificate is written directly in DER (decision 0019), the way decision 0008 writes OCSP
 * ResponseData: issuance builds one per certificate, and the schema layer spent more on it than
 * the HSM's signature. What is not the CA's own bytes is checked before it is copied in: a DER
 * issuer or subject Name must re-encode identically through the schema layer (checked once per
 * distinct name), and the SubjectPublicKeyInfo is read strictly (readSubjectPublicKeyInfo).
 * certificate.test.ts compares the output with the schema layer's encoding of the same spec over
 * random specs (every profile's extensions, every name attribute, long-form lengths, validity on
 * both sides of 2050).
 *
 *   TBSCertificate ::= SEQUENCE { version [0] EXPLICIT Version DEFAULT v1, serialNumber INTEGER,
 *     signature AlgorithmIdentifier, issuer Name, validity Validity, subject Name,
 *     subjectPublicKeyInfo SubjectPublicKeyInfo, ..., extensions [3] EXPLICIT Extensions OPTIONAL }
 *   Validity ::= SEQUENCE { notBefore Time, notAfter Time }
 *   Extension ::= SEQUENCE { extnID OBJECT IDENTIFIER, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }
 */
const VERSION_V3 = Buffer.from('a003020102', 'hex');
const CRITICAL_TRUE = Buffer.from('0101ff', 'hex');

/** DER of the TBSCertificate described by `spec`: the exact bytes the CA key signs. */
export function buildTbsCertificate(spec: TbsCertificateSpec): Buffer {
  const operation = 'build TBS certificate';
  assertValidSerial(spec.serialNumber, operation);
  const { notBefore, notAfter } = spec.validity;
  const validity = derSequence(derTime(notBefore, 'notBefore', operation), derTime(notAfter, 'notAfter', operation));
  if (notAfter.getTime() <= notBefore.getTime()) throw new PkiError('INVALID_ARGUMENT', `${operation}: notAfter must be after notBefore`);
  const seen = new Set<string>();
  const extensions = spec.extensions.map((ext) => {
    // RFC 5280 §4.2: "A certificate MUST NOT include more than one instance of a particular extension."
    if (seen.has(ext.extnID)) throw new PkiError('INVALID_ARGUMENT', `${operation}: extension ${ext.extnID} appears more than once`);
    seen.add(ext.extnID);
    // X.690 §11.5: DER leaves out a value equal to its DEFAULT, so critical appears only when TRUE.
    return ext.critical ? derSequence(encodeOid(ext.extnID), CRITICAL_TRUE, derOctetString(ext.value)) : derSequence(encodeOid(ext.extnID), derOctetString(ext.value));
  });
  const issuer = nameDer(spec.issuer, 'issuer', operation);
  const subject = nameDer(spec.subject, 'subject', operation);
  readSubjectPublicKeyInfo(spec.subjectPublicKeyInfo, operation);
  return derSequence(
    // RFC 5280 §4.1.2.1: v3 when extensions are present (always, in this CA's profiles); v1 is the DEFAULT, left out.
    ...(extensions.length > 0 ? [VERSION_V3] : []),
    derIntegerContent(spec.serialNumber),
    algorithmIdentifierDer(spec.signatureAlgorithm),
    issuer,
    validity,
    subject,
    spec.subjectPublicKeyInfo,
    ...(extensions.length > 0 ? [encodeDerElement(0xa3, derSequence(...extensions))] : []),
  );
}

/**
 * RFC 5280 §4.1.2.5: dates through 2049 as UTCTime, from 2050 as GeneralizedTime. asn1-x509's Time
 * makes the same choice from a Date; it is spelled out here because the rule is the RFC's.
 */
export function timeOf(date: Date): Time {
  return date.getUTCFullYear() >= 2050 ? new Time({ generalTime: date }) : new Time({ utcTime: date });
}

// Names given as DER that passed the check below: the issuer DNs, a handful per signer.
const canonicalNames = new Set<string>();

function nameDer(name: DistinguishedName | EncodedName, field: string, operation: string): Uint8Array {
  if (!('der' in name)) return encodeName(name, `${operation}: ${field}`);
  const key = Buffer.from(name.der.buffer, name.der.byteOffset, name.der.byteLength).toString('latin1');
  if (canonicalNames.has(key)) return name.der;
  let parsed: Name;
  try {
    parsed = AsnConvert.parse(name.der, Name);
  } catch (err) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} is not a DER Name`, { cause: err });
  }
  // The TBS carries these bytes as they are: make sure they are one canonical DER Name.
  if (!Buffer.from(AsnConvert.serialize(parsed)).equals(Buffer.from(name.der))) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} does not re-encode identically (not canonical DER)`);
  }
  if (canonicalNames.size >= 256) canonicalNames.clear();
  canonicalNames.add(key);
  return name.der;
}

/**
 * The Certificate (RFC 5280 §4.1) from a TBS, its signature algorithm and the signature value.
 * Checks that `signatureAlgorithm` is the one the TBS names (§4.1.1.2 requires them identical).
 * The TBS bytes are copied as they are, never re-encoded, so the certificate carries exactly the
 * bytes that were signed (and linted).
 *
 *   Certificate ::= SEQUENCE { tbsCertificate TBSCertificate, signatureAlgorithm AlgorithmIdentifier, signatureValue BIT STRING }
 */
export function assembleCertificate(tbsDer: Uint8Array, signatureAlgorithm: SignatureAlgorithm, signature: Uint8Array): Buffer {
  const operation = 'assemble certificate';
  const algorithm = algorithmIdentifierDer(signatureAlgorithm);
  let named: Buffer;
  try {
    named = tbsSignatureField(tbsDer, operation);
  } catch (err) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: TBS is not a DER TBSCertificate`, { cause: err });
  }
  if (!named.equals(algorithm)) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: the TBS names a different signature algorithm than ${signatureAlgorithm}`);
  }
  if (signature.length === 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: signature is empty`);
  return derSequence(tbsDer, algorithm, derBitString(signature));
}

/** The DER of a TBSCertificate's signature field, after a structural read of its outer fields. */
function tbsSignatureField(tbsDer: Uint8Array, operation: string): Buffer {
  const top = readDerElement(tbsDer, 0, operation);
  if (top.tag !== 0x30 || top.end !== tbsDer.length) throw new Error('not one SEQUENCE');
  const fields = derChildren(tbsDer, top, operation);
  let i = fields[0]?.tag === 0xa0 ? 1 : 0;
  if (fields[i++]?.tag !== 0x02) throw new Error('no serialNumber');
  const signature = fields[i];
  // At least issuer, validity, subject and subjectPublicKeyInfo follow.
  if (signature?.tag !== 0x30 || fields.length < i + 5) throw new Error('no signature AlgorithmIdentifier');
  return derBytes(tbsDer, signature);
}

/** A certificate's three parts as they appear in its bytes (RFC 5280 §4.1.1). */
export interface CertificateParts {
  /** The TBSCertificate exactly as encoded: what the signature covers. */
  tbsDer: Buffer;
  signatureAlgorithmDer: Buffer;
  /** The signatureValue BIT STRING's octets. */
  signature: Buffer;
}

/** Splits a certificate into its parts without the schema layer; INVALID_ARGUMENT when it is not one. */
export function readCertificateParts(der: Uint8Array, operation = 'read certificate'): CertificateParts {
  const top = readDerElement(der, 0, operation);
  const fields = top.tag === 0x30 && top.end === der.length ? derChildren(der, top, operation) : [];
  const [tbs, algorithm, value] = fields;
  if (fields.length !== 3 || tbs!.tag !== 0x30 || algorithm!.tag !== 0x30 || value!.tag !== 0x03 || value!.end - value!.contentStart < 2 || der[value!.contentStart] !== 0) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: not a DER certificate`);
  }
  return { tbsDer: derBytes(der, tbs!), signatureAlgorithmDer: derBytes(der, algorithm!), signature: derContent(der, value!).subarray(1) };
}

/**
 * Whether a certificate carries a valid signature by `issuerSpki`, read from its bytes as a
 * relying party reads them: the TBS as encoded and the signature, under one of the CA's own
 * signature algorithms (byte for byte). What the signer checks on every certificate it makes.
 */
export function verifyCertificateSignatureDer(certificateDer: Uint8Array, issuerSpki: Uint8Array, operation = 'verify certificate signature'): boolean {
  const parts = readCertificateParts(certificateDer, operation);
  const algorithm = signatureAlgorithmOfDer(parts.signatureAlgorithmDer);
  if (algorithm === undefined) throw new PkiError('INVALID_ARGUMENT', `${operation}: the signature algorithm is not one the CA signs with`);
  return verifySignature({ publicKeySpki: issuerSpki, algorithm: signatureAlgorithmIdentifier(algorithm), data: parts.tbsDer, signature: parts.signature }, operation);
}

/** The parts of a certificate the CA reads: an issuer certificate, or a certificate it just made. */
export interface ParsedCertificate {
  der: Buffer;
  /** The TBSCertificate bytes exactly as they appear in `der` (what the signature covers). */
  tbsDer: Buffer;
  serialNumber: Buffer;
  signatureAlgorithm: AlgorithmIdentifier;
  signature: Buffer;
  issuer: Name;
  issuerDer: Buffer;
  subject: Name;
  subjectDer: Buffer;
  subjectPublicKeyInfo: Buffer;
  notBefore: Date;
  notAfter: Date;
  extensions: ReadonlyMap<string, { critical: boolean; value: Buffer }>;
  subjectKeyIdentifier?: Buffer;
  basicConstraints?: { ca: boolean; pathLenConstraint?: number };
}

export function parseCertificate(der: Uint8Array, operation = 'parse certificate'): ParsedCertificate {
  let cert: Certificate;
  try {
    cert = AsnConvert.parse(der, Certificate);
  } catch (err) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: not a DER certificate`, { cause: err });
  }
  const tbs = cert.tbsCertificate;
  const extensions = new Map<string, { critical: boolean; value: Buffer }>();
  for (const ext of tbs.extensions ?? []) {
    extensions.set(ext.extnID, { critical: ext.critical, value: Buffer.from(ext.extnValue.buffer) });
  }
  const ski = extensions.get(oid.id_ce_subjectKeyIdentifier);
  const bc = extensions.get(oid.id_ce_basicConstraints);
  const parsed: ParsedCertificate = {
    der: Buffer.from(der),
    tbsDer: Buffer.from(cert.tbsCertificateRaw ?? AsnConvert.serialize(tbs)),
    serialNumber: Buffer.from(tbs.serialNumber),
    signatureAlgorithm: cert.signatureAlgorithm,
    signature: Buffer.from(cert.signatureValue),
    issuer: tbs.issuer,
    issuerDer: Buffer.from(AsnConvert.serialize(tbs.issuer)),
    subject: tbs.subject,
    subjectDer: Buffer.from(AsnConvert.serialize(tbs.subject)),
    subjectPublicKeyInfo: Buffer.from(AsnConvert.serialize(tbs.subjectPublicKeyInfo)),
    notBefore: tbs.validity.notBefore.getTime(),
    notAfter: tbs.validity.notAfter.getTime(),
    extensions,
  };
  try {
    if (ski !== undefined) parsed.subjectKeyIdentifier = Buffer.from(AsnConvert.parse(ski.value, SubjectKeyIdentifier).buffer);
    if (bc !== undefined) {
      const value = AsnConvert.parse(bc.value, BasicConstraints);
      parsed.basicConstraints = value.pathLenConstraint === undefined ? { ca: value.cA } : { ca: value.cA, pathLenConstraint: value.pathLenConstraint };
    }
  } catch (err) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: malformed extension`, { cause: err });
  }
  return parsed;
}

/** Whether `certificate` carries a valid signature by the key `issuerSpki`. */
export function verifyCertificateSignature(certificate: ParsedCertificate, issuerSpki: Uint8Array): boolean {
  return verifySignature(
    { publicKeySpki: issuerSpki, algorithm: certificate.signatureAlgorithm, data: certificate.tbsDer, signature: certificate.signature },
    'verify certificate signature',
  );
}
