import type { Clock } from '@pki/kit';
import { PkiError } from '@pki/kit';
import {
  authorityInfoAccessExtension,
  authorityKeyIdentifierExtension,
  basicConstraintsExtension,
  crlDistributionPointsExtension,
  buildTbsCertificate,
  certificatePoliciesExtension,
  describePublicKey,
  type DistinguishedName,
  formatName,
  id_tw_gpki_certpolicy_class3Assurance,
  keyUsageExtension,
  parseCertificate,
  type ParsedCertificate,
  randomSerial,
  type SignatureAlgorithm,
  subjectKeyIdentifierExtension,
  subjectKeyIdentifierOf,
  verifyCertificateSignature,
} from '@pki/x509';
import type { CaKeySpec, KeyManager } from '../ports/key-manager';
import { addYears, signatureAlgorithmForIssuerSpki, signCertificate, wholeSecond } from './certificate-signing';

/** The development government root DN (the real GRCA uses this O, without CN). */
export const DEV_ROOT_CA_SUBJECT: DistinguishedName = [
  { type: 'C', value: 'TW' },
  { type: 'O', value: 'Government Root Certification Authority' },
];

/** The citizen CA's DN, shared by every generation (domain.md): only AKI/SKI tell them apart. */
export const CITIZEN_CA_SUBJECT: DistinguishedName = [
  { type: 'C', value: 'TW' },
  { type: 'O', value: '行政院' },
  { type: 'OU', value: '內政部憑證管理中心' },
];

/** Longest CA validity this signer will write, in years. */
const MAX_CA_YEARS = 50;

/**
 * A CA certificate ready to be signed: the point where a ceremony writes its audit intent (the
 * SHA-256 of exactly these TBS bytes) before the HSM is asked for the signature.
 */
export interface PreparedCaCertificate {
  /** CKA_ID (hex) of the key that signs: the root's own key for a self-signed root. */
  signerKeyId: string;
  signerSpki: Buffer;
  signatureAlgorithm: SignatureAlgorithm;
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  tbsDer: Buffer;
}

export interface RootCertificateSpec {
  /** CKA_ID (hex) and public key of the root key, already in the token. */
  keyId: string;
  publicKeySpki: Buffer;
  subject: DistinguishedName;
  notBefore: Date;
  validityYears: number;
  serial?: Buffer;
}

/**
 * The TBS of a self-signed root: RFC 5280 §4.2.1.9 basicConstraints critical with cA and no path
 * length limit, §4.2.1.3 keyCertSign and cRLSign, §4.2.1.2 SKI. AKI may be omitted in a
 * self-signed certificate (§4.2.1.1).
 */
export function prepareRootCertificate(spec: RootCertificateSpec, operation = 'create root CA'): PreparedCaCertificate {
  checkYears(spec.validityYears, 'validityYears', operation);
  const notBefore = wholeSecond(spec.notBefore);
  const notAfter = addYears(notBefore, spec.validityYears);
  const serial = spec.serial ?? randomSerial();
  const signatureAlgorithm = signatureAlgorithmForIssuerSpki(spec.publicKeySpki);
  const tbsDer = buildTbsCertificate({
    serialNumber: serial,
    signatureAlgorithm,
    issuer: spec.subject,
    subject: spec.subject,
    validity: { notBefore, notAfter },
    subjectPublicKeyInfo: spec.publicKeySpki,
    extensions: [
      basicConstraintsExtension({ ca: true }, { critical: true }),
      keyUsageExtension(['keyCertSign', 'crlSign'], { critical: true }),
      subjectKeyIdentifierExtension(spec.publicKeySpki),
    ],
  });
  return { signerKeyId: spec.keyId, signerSpki: spec.publicKeySpki, signatureAlgorithm, serialHex: serial.toString('hex'), notBefore, notAfter, tbsDer };
}

export interface IssuingCaCertificateSpec {
  /** The root that certifies: CKA_ID (hex) of its key and its certificate. */
  root: { keyId: string; certificateDer: Buffer };
  publicKeySpki: Buffer;
  subject: DistinguishedName;
  notBefore: Date;
  validityYears: number;
  /** Default the class 3 assurance policy, which subscriber certificates assert. */
  policies?: readonly string[];
  serial?: Buffer;
  /**
   * Where relying parties find the root's authority revocation list and the root certificate:
   * the issuing CA certificate's cRLDistributionPoints and AIA caIssuers (RFC 5280 §4.2.1.13,
   * §4.2.2.1), so that a validator checking the whole chain can check the issuing CA too.
   */
  publication?: { crlUrls: readonly string[]; caIssuersUrls: readonly string[] };
}

/**
 * The TBS of an issuing CA certificate signed by a root in the same token. The issuing CA signs
 * only end-entity certificates, CRLs and its delegated signers: pathLenConstraint 0 (§4.2.1.9).
 * The issuer field is byte-for-byte the root's subject (§4.1.2.4) and the AKI is the root's key
 * identifier (§4.2.1.1), so chains build whatever generation of root signed it.
 */
export function prepareIssuingCaCertificate(spec: IssuingCaCertificateSpec, operation = 'create issuing CA'): PreparedCaCertificate {
  checkYears(spec.validityYears, 'validityYears', operation);
  const root = parseCertificate(spec.root.certificateDer, `${operation}: root certificate`);
  if (root.basicConstraints?.ca !== true) throw new PkiError('FAILED_PRECONDITION', `${operation}: the root certificate is not a CA certificate`);
  const notBefore = wholeSecond(spec.notBefore);
  if (notBefore < root.notBefore || notBefore >= root.notAfter) throw new PkiError('FAILED_PRECONDITION', `${operation}: the root certificate is not valid now`);
  const notAfter = addYears(notBefore, spec.validityYears);
  // RFC 5280 §6.1.3 checks every certificate of the path against the validation time: a CA
  // certificate outliving its root would be unusable for its last years.
  if (notAfter > root.notAfter) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: the issuing CA cannot outlive the root (root notAfter ${root.notAfter.toISOString()}, requested ${notAfter.toISOString()})`);
  }
  const serial = spec.serial ?? randomSerial();
  const signatureAlgorithm = signatureAlgorithmForIssuerSpki(root.subjectPublicKeyInfo);
  const tbsDer = buildTbsCertificate({
    serialNumber: serial,
    signatureAlgorithm,
    issuer: { der: root.subjectDer },
    subject: spec.subject,
    validity: { notBefore, notAfter },
    subjectPublicKeyInfo: spec.publicKeySpki,
    extensions: [
      basicConstraintsExtension({ ca: true, pathLenConstraint: 0 }, { critical: true }),
      keyUsageExtension(['keyCertSign', 'crlSign'], { critical: true }),
      subjectKeyIdentifierExtension(spec.publicKeySpki),
      authorityKeyIdentifierExtension(root.subjectKeyIdentifier ?? subjectKeyIdentifierOf(root.subjectPublicKeyInfo)),
      certificatePoliciesExtension(spec.policies ?? [id_tw_gpki_certpolicy_class3Assurance]),
      ...(spec.publication && spec.publication.crlUrls.length > 0 ? [crlDistributionPointsExtension(spec.publication.crlUrls)] : []),
      ...(spec.publication && spec.publication.caIssuersUrls.length > 0 ? [authorityInfoAccessExtension({ caIssuers: spec.publication.caIssuersUrls })] : []),
    ],
  });
  return { signerKeyId: spec.root.keyId, signerSpki: root.subjectPublicKeyInfo, signatureAlgorithm, serialHex: serial.toString('hex'), notBefore, notAfter, tbsDer };
}

/** Signs a prepared CA certificate in the HSM; the signature is verified before it is returned. */
export function signCaCertificate(keyManager: KeyManager, prepared: PreparedCaCertificate, operation: string): Promise<Buffer> {
  return signCertificate(
    keyManager,
    { issuerKeyId: prepared.signerKeyId, issuerSpki: prepared.signerSpki, algorithm: prepared.signatureAlgorithm, tbsDer: prepared.tbsDer },
    operation,
  );
}

export interface CaCertificateExpectations {
  /** The public key of the key in the token that the certificate must certify. */
  publicKeySpki: Buffer;
  /** The subject the ceremony asked for (compared as formatted names, see below). */
  subject: DistinguishedName | string;
  clock: Clock;
  /** When given, the certificate's signature must verify with this issuer and name it as issuer. */
  issuerCertificateDer?: Buffer;
}

/**
 * Checks a CA certificate that came back from an external root before the signer trusts it with
 * a key of its own: the public key is exactly the token key's (so the HSM can sign under it), the
 * subject is the one requested, it is a CA certificate that may sign certificates and CRLs
 * (RFC 5280 §4.2.1.9, §4.2.1.3), it carries a subjectKeyIdentifier (generations sharing one DN
 * are told apart by it, domain.md) and it is valid now. Throws INVALID_ARGUMENT naming the first
 * mismatch.
 *
 * The subject is compared as a formatted name rather than byte for byte: a root may re-encode
 * string types when it signs, which does not change who the certificate names.
 */
export function checkCaCertificate(certificateDer: Buffer, expected: CaCertificateExpectations, operation = 'import CA certificate'): ParsedCertificate {
  const cert = parseCertificate(certificateDer, operation);
  if (!cert.subjectPublicKeyInfo.equals(expected.publicKeySpki)) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: the certificate's public key is not the key generated in the token for this request`);
  }
  const wantSubject = typeof expected.subject === 'string' ? expected.subject : formatName(expected.subject);
  const gotSubject = formatName(cert.subject);
  if (gotSubject !== wantSubject) throw new PkiError('INVALID_ARGUMENT', `${operation}: subject is '${gotSubject}', expected '${wantSubject}'`);
  if (cert.basicConstraints?.ca !== true) throw new PkiError('INVALID_ARGUMENT', `${operation}: the certificate is not a CA certificate (basicConstraints cA is not true)`);
  const keyUsage = cert.extensions.get('2.5.29.15');
  // KeyUsage is a BIT STRING: keyCertSign is bit 5 and cRLSign bit 6 of the first byte (§4.2.1.3).
  if (keyUsage === undefined || keyUsage.value.length < 4 || (keyUsage.value[3]! & 0x06) !== 0x06) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: keyUsage must allow keyCertSign and cRLSign`);
  }
  if (cert.subjectKeyIdentifier === undefined) throw new PkiError('INVALID_ARGUMENT', `${operation}: the certificate has no subjectKeyIdentifier`);
  const now = expected.clock.now();
  if (now < cert.notBefore || now >= cert.notAfter) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: the certificate is not valid now (${cert.notBefore.toISOString()} to ${cert.notAfter.toISOString()})`);
  }
  if (expected.issuerCertificateDer !== undefined) {
    const issuer = parseCertificate(expected.issuerCertificateDer, `${operation}: issuer certificate`);
    if (!cert.issuerDer.equals(issuer.subjectDer)) throw new PkiError('INVALID_ARGUMENT', `${operation}: the certificate's issuer is not the subject of the given issuer certificate`);
    if (!verifyCertificateSignature(cert, issuer.subjectPublicKeyInfo)) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: the certificate's signature does not verify with the given issuer certificate`);
    }
  }
  return cert;
}

/** A human name of a key spec, as ceremonies and audit events write it. */
export function keySpecName(spec: CaKeySpec): string {
  return spec.type === 'RSA' ? `rsa-${spec.bits}` : spec.curve.toLowerCase();
}

/** Parses `rsa-2048 | rsa-3072 | rsa-4096 | p-256 | p-384`. */
export function parseKeySpec(name: string, operation: string): CaKeySpec {
  switch (name.toLowerCase()) {
    case 'rsa-2048':
      return { type: 'RSA', bits: 2048 };
    case 'rsa-3072':
      return { type: 'RSA', bits: 3072 };
    case 'rsa-4096':
      return { type: 'RSA', bits: 4096 };
    case 'p-256':
      return { type: 'EC', curve: 'P-256' };
    case 'p-384':
      return { type: 'EC', curve: 'P-384' };
    default:
      throw new PkiError('INVALID_ARGUMENT', `${operation}: key spec must be rsa-2048, rsa-3072, rsa-4096, p-256 or p-384 (got '${name}')`);
  }
}

/** The key spec of a public key (for listing generations). */
export function keySpecOfSpki(spki: Uint8Array): string {
  const key = describePublicKey(spki, 'describe CA key');
  return key.type === 'RSA' ? `rsa-${key.bits}` : key.curve.toLowerCase();
}

function checkYears(years: number, name: string, operation: string): void {
  if (!Number.isInteger(years) || years < 1 || years > MAX_CA_YEARS) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${name} must be 1 to ${MAX_CA_YEARS}`);
}

export interface CaHierarchyOptions {
  clock: Clock;
  rootSubject?: DistinguishedName;
  issuingSubject?: DistinguishedName;
  /** Default RSA-2048, quick for development; production ceremonies use RSA-4096 (G3). */
  rootKeySpec?: CaKeySpec;
  issuingKeySpec?: CaKeySpec;
  /** Default 30 years. */
  rootValidityYears?: number;
  /** Default 20 years, as G3 (domain.md); must end before the root does. */
  issuingValidityYears?: number;
  /** Certificate policies of the issuing CA; default the class 3 assurance policy. */
  issuingPolicies?: readonly string[];
  /** CKA_LABELs of the two keys. */
  keyLabels?: { root: string; issuing: string };
  serials?: () => Buffer;
}

export interface CaCertificate {
  keyId: string;
  certificateDer: Buffer;
}

export interface CaHierarchy {
  root: CaCertificate;
  issuing: CaCertificate;
}

/**
 * Generates, inside the key manager's token, a root CA key with its self-signed certificate and
 * an issuing CA key with a certificate signed by the root key, with no audit and no records: for
 * tests of issuance. The embedded stack and production go through the ceremony steps
 * (src/ceremony), which build the same certificates with the functions above.
 */
export async function createCaHierarchy(keyManager: KeyManager, options: CaHierarchyOptions): Promise<CaHierarchy> {
  const operation = 'create CA hierarchy';
  const rootYears = options.rootValidityYears ?? 30;
  const issuingYears = options.issuingValidityYears ?? 20;
  for (const [name, years] of [['rootValidityYears', rootYears], ['issuingValidityYears', issuingYears]] as const) checkYears(years, name, operation);
  // Checked before any key is made, so a bad request leaves nothing behind in the token.
  if (issuingYears > rootYears) throw new PkiError('INVALID_ARGUMENT', `${operation}: the issuing CA cannot outlive the root`);
  const serials = options.serials ?? (() => randomSerial());
  const labels = options.keyLabels ?? { root: 'root-ca', issuing: 'citizen-ca' };
  const notBefore = wholeSecond(options.clock.now());

  const root = await keyManager.generateKeyPair({ label: labels.root, spec: options.rootKeySpec ?? { type: 'RSA', bits: 2048 } });
  const rootPrepared = prepareRootCertificate(
    { keyId: root.keyId, publicKeySpki: root.publicKeySpki, subject: options.rootSubject ?? DEV_ROOT_CA_SUBJECT, notBefore, validityYears: rootYears, serial: serials() },
    operation,
  );
  const rootCertificate = await signCaCertificate(keyManager, rootPrepared, operation);

  const issuing = await keyManager.generateKeyPair({ label: labels.issuing, spec: options.issuingKeySpec ?? { type: 'RSA', bits: 2048 } });
  const issuingPrepared = prepareIssuingCaCertificate(
    {
      root: { keyId: root.keyId, certificateDer: rootCertificate },
      publicKeySpki: issuing.publicKeySpki,
      subject: options.issuingSubject ?? CITIZEN_CA_SUBJECT,
      notBefore,
      validityYears: issuingYears,
      policies: options.issuingPolicies,
      serial: serials(),
    },
    operation,
  );
  const issuingCertificate = await signCaCertificate(keyManager, issuingPrepared, operation);
  return {
    root: { keyId: root.keyId, certificateDer: rootCertificate },
    issuing: { keyId: issuing.keyId, certificateDer: issuingCertificate },
  };
}
