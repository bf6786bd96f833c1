import { AsnConvert } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier,
  BasicConstraints,
  Certificate,
  Extensions,
  Name,
  SubjectKeyIdentifier,
  TBSCertificate,
  Time,
  Validity,
  Version,
} from '@peculiar/asn1-x509';
import { PkiError } from '@pki/kit';
import { type CertificateExtension, toAsnExtension } from './extensions';
import { buildName, type DistinguishedName } from './name';
import { parseSubjectPublicKeyInfo, toArrayBuffer } from './public-key';
import { assertValidSerial } from './serial';
import { type SignatureAlgorithm, signatureAlgorithmIdentifier } from './signature-algorithm';
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

/** DER of the TBSCertificate described by `spec`: the exact bytes the CA key signs. */
export function buildTbsCertificate(spec: TbsCertificateSpec): Buffer {
  const operation = 'build TBS certificate';
  assertValidSerial(spec.serialNumber, operation);
  const { notBefore, notAfter } = spec.validity;
  for (const [label, date] of [['notBefore', notBefore], ['notAfter', notAfter]] as const) {
    if (!(date instanceof Date) || Number.isNaN(date.getTime())) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${label} is not a valid date`);
    if (date.getUTCMilliseconds() !== 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${label} must be a whole second`);
    if (date.getUTCFullYear() < 1950 || date.getUTCFullYear() > 9999) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: ${label} must lie in the years 1950 to 9999`);
    }
  }
  if (notAfter.getTime() <= notBefore.getTime()) throw new PkiError('INVALID_ARGUMENT', `${operation}: notAfter must be after notBefore`);
  const seen = new Set<string>();
  for (const ext of spec.extensions) {
    // RFC 5280 §4.2: "A certificate MUST NOT include more than one instance of a particular extension."
    if (seen.has(ext.extnID)) throw new PkiError('INVALID_ARGUMENT', `${operation}: extension ${ext.extnID} appears more than once`);
    seen.add(ext.extnID);
  }
  const validity = new Validity();
  validity.notBefore = timeOf(notBefore);
  validity.notAfter = timeOf(notAfter);
  const tbs = new TBSCertificate({
    // RFC 5280 §4.1.2.1: v3 when extensions are present (always, in this CA's profiles).
    version: spec.extensions.length > 0 ? Version.v3 : Version.v1,
    serialNumber: toArrayBuffer(spec.serialNumber),
    signature: signatureAlgorithmIdentifier(spec.signatureAlgorithm),
    issuer: nameOf(spec.issuer, 'issuer', operation),
    validity,
    subject: nameOf(spec.subject, 'subject', operation),
    subjectPublicKeyInfo: parseSubjectPublicKeyInfo(spec.subjectPublicKeyInfo, operation),
  });
  if (spec.extensions.length > 0) tbs.extensions = new Extensions(spec.extensions.map(toAsnExtension));
  return Buffer.from(AsnConvert.serialize(tbs));
}

/**
 * RFC 5280 §4.1.2.5: dates through 2049 as UTCTime, from 2050 as GeneralizedTime. asn1-x509's Time
 * makes the same choice from a Date; it is spelled out here because the rule is the RFC's.
 */
export function timeOf(date: Date): Time {
  return date.getUTCFullYear() >= 2050 ? new Time({ generalTime: date }) : new Time({ utcTime: date });
}

function nameOf(name: DistinguishedName | EncodedName, field: string, operation: string): Name {
  if (!('der' in name)) return buildName(name, `${operation}: ${field}`);
  let parsed: Name;
  try {
    parsed = AsnConvert.parse(name.der, Name);
  } catch (err) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} is not a DER Name`, { cause: err });
  }
  // The TBS is re-serialised from the parsed model: make sure that loses nothing.
  if (!Buffer.from(AsnConvert.serialize(parsed)).equals(Buffer.from(name.der))) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} does not re-encode identically (not canonical DER)`);
  }
  return parsed;
}

/**
 * The Certificate (RFC 5280 §4.1) from a TBS, its signature algorithm and the signature value.
 * Checks that `signatureAlgorithm` is the one the TBS names (§4.1.1.2 requires them identical)
 * and that the TBS bytes appear unchanged in the result.
 */
export function assembleCertificate(tbsDer: Uint8Array, signatureAlgorithm: SignatureAlgorithm, signature: Uint8Array): Buffer {
  const operation = 'assemble certificate';
  let tbs: TBSCertificate;
  try {
    tbs = AsnConvert.parse(tbsDer, TBSCertificate);
  } catch (err) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: TBS is not a DER TBSCertificate`, { cause: err });
  }
  const algorithm = signatureAlgorithmIdentifier(signatureAlgorithm);
  if (!sameDer(tbs.signature, algorithm)) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: the TBS names a different signature algorithm than ${signatureAlgorithm}`);
  }
  if (signature.length === 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: signature is empty`);
  const der = Buffer.from(
    AsnConvert.serialize(new Certificate({ tbsCertificate: tbs, signatureAlgorithm: algorithm, signatureValue: toArrayBuffer(signature) })),
  );
  const raw = AsnConvert.parse(der, Certificate).tbsCertificateRaw;
  if (raw === undefined || !Buffer.from(raw).equals(Buffer.from(tbsDer))) {
    throw new PkiError('INTERNAL', `${operation}: the signed TBS bytes do not re-encode identically`);
  }
  return der;
}

function sameDer(a: object, b: object): boolean {
  return Buffer.from(AsnConvert.serialize(a)).equals(Buffer.from(AsnConvert.serialize(b)));
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
