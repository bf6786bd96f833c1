import type { Clock } from '@pki/kit';
import { PkiError } from '@pki/kit';
import {
  authorityInfoAccessExtension,
  authorityKeyIdentifierExtension,
  buildTbsCertificate,
  type CertificateExtension,
  certificatePoliciesExtension,
  crlDistributionPointsExtension,
  describePublicKey,
  type DistinguishedName,
  extendedKeyUsageExtension,
  id_tw_gca_nationalIdLastFour,
  keyUsageExtension,
  type NameAttribute,
  parseCertificate,
  type ParsedCertificate,
  type PublicKeyDescription,
  type SignatureAlgorithm,
  subjectAltNameEmailExtension,
  subjectDirectoryAttributesExtension,
  subjectKeyIdentifierExtension,
  subjectKeyIdentifierOf,
} from '@pki/x509';
import type { KeyManager } from '../ports/key-manager';
import { addYears, signatureAlgorithmForIssuerSpki, signCertificate, wholeSecond } from './certificate-signing';
import { type CertificateProfile, type CertificateProfileName, certificateProfiles } from './certificate-profiles';

export interface IssuanceDeps {
  keyManager: KeyManager;
  clock: Clock;
  /** A fresh random serial per call (randomSerial in production); uniqueness is the registry's job. */
  serials: () => Buffer;
}

/** An issuing CA generation: its key in the HSM, its certificate, where relying parties look. */
export interface IssuingCa {
  keyId: string;
  certificateDer: Buffer;
  /** cRLDistributionPoints URIs (RFC 5280 §4.2.1.13) of this generation's CRL. */
  crlUrls: readonly string[];
  /** AIA id-ad-ocsp URIs (RFC 5280 §4.2.2.1). */
  ocspUrls: readonly string[];
  /** AIA id-ad-caIssuers URIs where the issuer certificate is published. */
  caIssuersUrls: readonly string[];
}

export interface IssueCertificateRequest {
  issuer: IssuingCa;
  profile: CertificateProfileName;
  subject: DistinguishedName;
  /** SubjectPublicKeyInfo DER of the card's key. */
  publicKeySpki: Uint8Array;
  /** Either an explicit notAfter (whole second) or a number of days; default the profile maximum. */
  validity?: { notAfter: Date } | { days: number };
  /** Last four digits of the national ID, for subjectDirectoryAttributes (domain.md). */
  nationalIdLastFour?: string;
  email?: string;
}

/** A certificate ready to be signed: the point where audit intent and lint run (architecture.md). */
export interface PreparedCertificate {
  profile: CertificateProfileName;
  issuerKeyId: string;
  issuerSpki: Buffer;
  signatureAlgorithm: SignatureAlgorithm;
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  tbsDer: Buffer;
}

export interface IssuedCertificate {
  serialHex: string;
  certificateDer: Buffer;
  notBefore: Date;
  notAfter: Date;
}

const OPERATION = 'issue certificate';

/** Checks the request against the profile and the issuer, and builds the TBS. Signs nothing. */
export function prepareCertificate(deps: Pick<IssuanceDeps, 'clock' | 'serials'>, request: IssueCertificateRequest): PreparedCertificate {
  const profile = (certificateProfiles as Record<string, CertificateProfile | undefined>)[request.profile];
  if (profile === undefined) throw new PkiError('INVALID_ARGUMENT', `${OPERATION}: unknown profile '${String(request.profile)}'`);
  const issuer = parseIssuer(request.issuer);
  checkSubject(profile, request.subject);
  checkSubjectKey(profile, request.publicKeySpki, issuer);

  const notBefore = wholeSecond(deps.clock.now());
  // RFC 5280 §4.1.2.5: a certificate should not outlive its issuer; and an expired or not yet
  // valid issuer must not issue.
  if (notBefore < issuer.certificate.notBefore || notBefore >= issuer.certificate.notAfter) {
    throw new PkiError('FAILED_PRECONDITION', `${OPERATION}: the issuer certificate is not valid now`);
  }
  const notAfter = notAfterOf(profile, request.validity, notBefore);
  if (notAfter > issuer.certificate.notAfter) {
    throw new PkiError('INVALID_ARGUMENT', `${OPERATION}: notAfter ${notAfter.toISOString()} is after the issuer's notAfter ${issuer.certificate.notAfter.toISOString()}`);
  }

  const serial = deps.serials();
  const signatureAlgorithm = signatureAlgorithmForIssuerSpki(issuer.certificate.subjectPublicKeyInfo);
  const tbsDer = buildTbsCertificate({
    serialNumber: serial,
    signatureAlgorithm,
    // Byte-for-byte the issuer certificate's subject, so chains build (RFC 5280 §4.1.2.4).
    issuer: { der: issuer.certificate.subjectDer },
    subject: request.subject,
    validity: { notBefore, notAfter },
    subjectPublicKeyInfo: request.publicKeySpki,
    extensions: extensionsOf(profile, request, issuer),
  });
  return {
    profile: request.profile,
    issuerKeyId: request.issuer.keyId,
    issuerSpki: issuer.certificate.subjectPublicKeyInfo,
    signatureAlgorithm,
    serialHex: serial.toString('hex'),
    notBefore,
    notAfter,
    tbsDer,
  };
}

/** Signs a prepared certificate in the HSM and checks the signature before returning it. */
export async function signPreparedCertificate(deps: Pick<IssuanceDeps, 'keyManager'>, prepared: PreparedCertificate): Promise<IssuedCertificate> {
  const certificateDer = await signCertificate(
    deps.keyManager,
    { issuerKeyId: prepared.issuerKeyId, issuerSpki: prepared.issuerSpki, algorithm: prepared.signatureAlgorithm, tbsDer: prepared.tbsDer },
    OPERATION,
  );
  return { serialHex: prepared.serialHex, certificateDer, notBefore: prepared.notBefore, notAfter: prepared.notAfter };
}

/** Prepares and signs in one step, for callers with nothing to do in between. */
export async function issueCertificate(deps: IssuanceDeps, request: IssueCertificateRequest): Promise<IssuedCertificate> {
  return signPreparedCertificate(deps, prepareCertificate(deps, request));
}

interface ParsedIssuer {
  certificate: ParsedCertificate;
  keyIdentifier: Buffer;
}

function parseIssuer(issuer: IssuingCa): ParsedIssuer {
  let certificate: ParsedCertificate;
  try {
    certificate = parseCertificate(issuer.certificateDer, `${OPERATION}: issuer certificate`);
  } catch (err) {
    throw new PkiError('FAILED_PRECONDITION', `${OPERATION}: the issuer certificate cannot be read`, { cause: err });
  }
  // RFC 5280 §4.2.1.9: only a CA certificate may issue; §4.2.1.1: the AKI we write is the
  // issuer's SKI, which all generations need because they share one DN (domain.md).
  if (certificate.basicConstraints?.ca !== true) throw new PkiError('FAILED_PRECONDITION', `${OPERATION}: the issuer certificate is not a CA certificate`);
  const keyIdentifier = certificate.subjectKeyIdentifier ?? subjectKeyIdentifierOf(certificate.subjectPublicKeyInfo);
  return { certificate, keyIdentifier };
}

function checkSubject(profile: CertificateProfile, subject: DistinguishedName): void {
  const expected = profile.subject.map((rule) => rule.type).join(', ');
  if (!Array.isArray(subject) || subject.length !== profile.subject.length) {
    throw new PkiError('INVALID_ARGUMENT', `${OPERATION}: profile ${profile.name} requires the subject attributes ${expected}`);
  }
  profile.subject.forEach((rule, i) => {
    const attribute = subject[i] as NameAttribute;
    if (attribute?.type !== rule.type) {
      throw new PkiError('INVALID_ARGUMENT', `${OPERATION}: profile ${profile.name} requires the subject attributes ${expected}, in that order`);
    }
    if (rule.pattern !== undefined && !rule.pattern.test(attribute.value)) {
      // The value is personal data (CN, serialNumber): name the rule, never echo the value.
      throw new PkiError('INVALID_ARGUMENT', `${OPERATION}: subject ${rule.type} must be ${rule.patternDescription ?? rule.pattern.source}`);
    }
  });
}

function checkSubjectKey(profile: CertificateProfile, spki: Uint8Array, issuer: ParsedIssuer): void {
  const key = describePublicKey(spki, `${OPERATION}: public key`);
  const accepted = profile.subjectKeys.some((rule) =>
    rule.type === 'RSA' ? key.type === 'RSA' && key.bits === rule.bits : key.type === 'EC' && key.curve === rule.curve,
  );
  if (!accepted) {
    throw new PkiError(
      'INVALID_ARGUMENT',
      `${OPERATION}: public key is ${keyName(key)}, profile ${profile.name} requires ${profile.subjectKeys.map(keyName).join(' or ')}`,
    );
  }
  if (Buffer.from(spki).equals(issuer.certificate.subjectPublicKeyInfo)) {
    throw new PkiError('INVALID_ARGUMENT', `${OPERATION}: the public key is the issuer's own key`);
  }
}

function keyName(key: PublicKeyDescription | CertificateProfile['subjectKeys'][number]): string {
  return key.type === 'RSA' ? `RSA-${key.bits}` : `EC ${key.curve}`;
}

function notAfterOf(profile: CertificateProfile, validity: IssueCertificateRequest['validity'], notBefore: Date): Date {
  const longest = addYears(notBefore, profile.maxValidity.years);
  let notAfter: Date;
  if (validity === undefined) notAfter = longest;
  else if ('days' in validity) {
    if (!Number.isInteger(validity.days) || validity.days < 1) throw new PkiError('INVALID_ARGUMENT', `${OPERATION}: validity days must be a positive integer`);
    notAfter = new Date(notBefore.getTime() + validity.days * 86_400_000);
  } else {
    notAfter = validity.notAfter;
    if (!(notAfter instanceof Date) || Number.isNaN(notAfter.getTime())) throw new PkiError('INVALID_ARGUMENT', `${OPERATION}: notAfter is not a valid date`);
    if (notAfter.getUTCMilliseconds() !== 0) throw new PkiError('INVALID_ARGUMENT', `${OPERATION}: notAfter must be a whole second`);
  }
  if (notAfter <= notBefore) throw new PkiError('INVALID_ARGUMENT', `${OPERATION}: notAfter must be after notBefore`);
  if (notAfter > longest) {
    throw new PkiError('INVALID_ARGUMENT', `${OPERATION}: validity longer than the ${profile.maxValidity.years} years profile ${profile.name} allows`);
  }
  return notAfter;
}

function extensionsOf(profile: CertificateProfile, request: IssueCertificateRequest, issuer: ParsedIssuer): CertificateExtension[] {
  const { issuer: ca } = request;
  const extensions: CertificateExtension[] = [
    authorityKeyIdentifierExtension(issuer.keyIdentifier),
    subjectKeyIdentifierExtension(request.publicKeySpki),
    keyUsageExtension(profile.keyUsage.usages, { critical: profile.keyUsage.critical }),
  ];
  if (profile.extendedKeyUsage !== undefined) {
    extensions.push(extendedKeyUsageExtension(profile.extendedKeyUsage.purposes, { critical: profile.extendedKeyUsage.critical }));
  }
  extensions.push(certificatePoliciesExtension(profile.certificatePolicies.policies, { critical: profile.certificatePolicies.critical }));
  if (ca.crlUrls.length > 0) extensions.push(crlDistributionPointsExtension(ca.crlUrls));
  if (ca.ocspUrls.length + ca.caIssuersUrls.length > 0) {
    extensions.push(authorityInfoAccessExtension({ ocsp: ca.ocspUrls, caIssuers: ca.caIssuersUrls }));
  }
  if (request.nationalIdLastFour !== undefined) {
    if (!profile.allowsNationalIdLastFour) throw new PkiError('INVALID_ARGUMENT', `${OPERATION}: profile ${profile.name} carries no national ID digits`);
    if (!/^[0-9]{4}$/.test(request.nationalIdLastFour)) throw new PkiError('INVALID_ARGUMENT', `${OPERATION}: nationalIdLastFour must be 4 digits`);
    extensions.push(subjectDirectoryAttributesExtension([{ type: id_tw_gca_nationalIdLastFour, value: request.nationalIdLastFour }]));
  }
  if (request.email !== undefined) {
    if (!profile.allowsEmail) throw new PkiError('INVALID_ARGUMENT', `${OPERATION}: profile ${profile.name} carries no e-mail address`);
    extensions.push(subjectAltNameEmailExtension([request.email]));
  }
  return extensions;
}
