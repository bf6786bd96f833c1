import type { Clock } from '@pki/kit';
import { PkiError } from '@pki/kit';
import {
  authorityInfoAccessExtension,
  authorityKeyIdentifierExtension,
  basicConstraintsExtension,
  buildTbsCertificate,
  type CertificateExtension,
  certificatePoliciesExtension,
  crlDistributionPointsExtension,
  crlPartitionOf,
  crlPartitionUrl,
  describePublicKey,
  type DistinguishedName,
  extendedKeyUsageExtension,
  id_tw_gca_nationalIdLastFour,
  keyUsageExtension,
  type NameAttribute,
  ocspNoCheckExtension,
  parseCertificate,
  type ParsedCertificate,
  type SubjectAltNames,
  type PublicKeyDescription,
  type SignatureAlgorithm,
  subjectAltNameExtension,
  subjectDirectoryAttributesExtension,
  subjectKeyIdentifierExtension,
  subjectKeyIdentifierOf,
} from '@pki/x509';
import type { KeyManager } from '../ports/key-manager';
import { signatureAlgorithmForIssuerSpki, signCertificate, wholeSecond } from './certificate-signing';
import { type CertificateProfile, type CertificateProfileName, certificateProfile, describeValidityLimit, maxNotAfter } from './certificate-profiles';
import { assertLintClean, type LintResult, lintTbsCertificate, sha256Hex } from './lint';

export interface IssuanceDeps {
  keyManager: KeyManager;
  clock: Clock;
  /** A fresh random serial per call (randomSerial in production); uniqueness is the registry's job. */
  serials: () => Buffer;
}

/**
 * How a CA generation's CRL is partitioned (RFC 5280 §5.2.5 partitioned CRLs): each certificate
 * points at partition `crlPartitionOf(serial, partitions)`, published at
 * `crlPartitionUrl(baseUrl, <issuer key identifier>, partition)`. The count is fixed for the life
 * of a generation: the CRL service computes the same partitions.
 */
export interface CrlPartitioning {
  baseUrl: string;
  partitions: number;
}

/** An issuing CA generation: its key in the HSM, its certificate, where relying parties look. */
export interface IssuingCa {
  keyId: string;
  certificateDer: Buffer;
  /**
   * cRLDistributionPoints URIs (RFC 5280 §4.2.1.13) of this generation's single, unpartitioned CRL.
   * Give either this or `crl`.
   */
  crlUrls?: readonly string[];
  /** Partitioned CRLs: the certificate names its own partition's URI. Give either this or `crlUrls`. */
  crl?: CrlPartitioning;
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
  /** subjectAltName dNSNames, for profiles that allow them (serviceMtls). */
  dnsNames?: readonly string[];
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
  /** The CRL partition the certificate names, when the issuer's CRL is partitioned. */
  crlPartition?: number;
  /**
   * The pre-issuance lint of exactly `tbsDer` (no errors, or preparation would have failed);
   * warnings are for the audit record. Signing refuses bytes whose hash is not `lint.tbsSha256`.
   */
  lint: LintResult;
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
  const profile = certificateProfile(String(request.profile));
  if (profile === undefined) throw new PkiError('INVALID_ARGUMENT', `${OPERATION}: unknown profile '${String(request.profile)}'`);
  const issuer = issuerOf(request.issuer);
  checkSubject(profile, request.subject);
  checkSubjectKey(profile, request.publicKeySpki, issuer);

  const now = deps.clock.now();
  const notBefore = wholeSecond(now);
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
  const { signatureAlgorithm } = issuer;
  const publication = publicationOf(profile, request.issuer, issuer, serial);
  const tbsDer = buildTbsCertificate({
    serialNumber: serial,
    signatureAlgorithm,
    // Byte-for-byte the issuer certificate's subject, so chains build (RFC 5280 §4.1.2.4).
    issuer: { der: issuer.certificate.subjectDer },
    subject: request.subject,
    validity: { notBefore, notAfter },
    subjectPublicKeyInfo: request.publicKeySpki,
    extensions: extensionsOf(profile, request, issuer, publication),
  });
  // Every issuance path (gRPC service, ceremonies, tests) comes through here: the bytes built are
  // the bytes linted, and signPreparedCertificate signs only bytes with this lint's hash.
  const lint = lintTbsCertificate(tbsDer, { profile, issuer: issuer.certificate, now, publication });
  assertLintClean(lint, OPERATION);
  const prepared: PreparedCertificate = {
    profile: request.profile,
    issuerKeyId: request.issuer.keyId,
    issuerSpki: issuer.certificate.subjectPublicKeyInfo,
    signatureAlgorithm,
    serialHex: serial.toString('hex'),
    notBefore,
    notAfter,
    tbsDer,
    lint,
  };
  if (publication.crlPartition !== undefined) prepared.crlPartition = publication.crlPartition;
  return prepared;
}

/** Signs a prepared certificate in the HSM and checks the signature before returning it. */
export async function signPreparedCertificate(deps: Pick<IssuanceDeps, 'keyManager'>, prepared: PreparedCertificate): Promise<IssuedCertificate> {
  // Sign only what was linted clean: the Buffer is mutable and the object could be hand-made.
  if (prepared.lint.errors.length > 0 || sha256Hex(prepared.tbsDer) !== prepared.lint.tbsSha256) {
    throw new PkiError('INTERNAL', `${OPERATION}: the TBS to sign is not the one that passed the pre-issuance lint`);
  }
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
  signatureAlgorithm: SignatureAlgorithm;
  /** The extensions that depend only on a profile, this issuer and its publication points. */
  constantExtensions: Map<string, ConstantExtensions>;
}

/** A profile's extensions other than the subject's own, in certificate order around them. */
interface ConstantExtensions {
  /** authorityKeyIdentifier: first, before the subjectKeyIdentifier. */
  first: CertificateExtension;
  /** keyUsage, extKeyUsage, basicConstraints, certificatePolicies: between the SKI and the CRL DP. */
  beforeCrl: readonly CertificateExtension[];
  /** authorityInfoAccess, id-pkix-ocsp-nocheck: after the CRL DP. */
  afterCrl: readonly CertificateExtension[];
}

// The issuing generations a signer uses, parsed once each (keyed by their certificate's bytes, so
// a caller's fresh IssuingCa object for the same generation finds it). Only issuers that passed
// the checks of parseIssuer are kept.
const issuers = new Map<string, ParsedIssuer>();
const ISSUERS_KEPT = 32;

function issuerOf(ca: IssuingCa): ParsedIssuer {
  const der = ca.certificateDer;
  const key = Buffer.isBuffer(der) ? der.toString('latin1') : undefined;
  const known = key === undefined ? undefined : issuers.get(key);
  if (known !== undefined) return known;
  const parsed = parseIssuer(ca);
  if (key !== undefined) {
    if (issuers.size >= ISSUERS_KEPT) issuers.clear();
    issuers.set(key, parsed);
  }
  return parsed;
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
  const signatureAlgorithm = signatureAlgorithmForIssuerSpki(certificate.subjectPublicKeyInfo);
  return { certificate, keyIdentifier, signatureAlgorithm, constantExtensions: new Map() };
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
  const longest = maxNotAfter(profile, notBefore);
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
    throw new PkiError('INVALID_ARGUMENT', `${OPERATION}: validity longer than the ${describeValidityLimit(profile.maxValidity)} profile ${profile.name} allows`);
  }
  return notAfter;
}

interface Publication {
  crlUrls: readonly string[];
  ocspUrls: readonly string[];
  caIssuersUrls: readonly string[];
  crlPartition?: number;
}

/** The URIs this certificate points to, as its profile asks, from the issuing CA's publication. */
function publicationOf(profile: CertificateProfile, ca: IssuingCa, issuer: ParsedIssuer, serial: Buffer): Publication {
  const publication: Publication = {
    crlUrls: [],
    ocspUrls: profile.authorityInfoAccess.ocsp ? ca.ocspUrls : [],
    caIssuersUrls: profile.authorityInfoAccess.caIssuers ? ca.caIssuersUrls : [],
  };
  if (ca.crl !== undefined && ca.crlUrls !== undefined && ca.crlUrls.length > 0) {
    throw new PkiError('FAILED_PRECONDITION', `${OPERATION}: the issuing CA names both partitioned and unpartitioned CRL URLs`);
  }
  if (profile.crlDistributionPoint) {
    if (ca.crl !== undefined) {
      // RFC 5280 §4.2.1.13 / §5.2.5: the certificate names the one partition whose CRL covers it.
      const partition = crlPartitionOf(serial, ca.crl.partitions);
      publication.crlUrls = [crlPartitionUrl(ca.crl.baseUrl, issuer.keyIdentifier.toString('hex'), partition)];
      publication.crlPartition = partition;
    } else {
      publication.crlUrls = ca.crlUrls ?? [];
    }
    if (publication.crlUrls.length === 0) throw new PkiError('FAILED_PRECONDITION', `${OPERATION}: profile ${profile.name} needs a CRL URL and the issuing CA has none`);
  }
  if (profile.authorityInfoAccess.ocsp && publication.ocspUrls.length === 0) {
    throw new PkiError('FAILED_PRECONDITION', `${OPERATION}: profile ${profile.name} needs an OCSP URL and the issuing CA has none`);
  }
  if (profile.authorityInfoAccess.caIssuers && publication.caIssuersUrls.length === 0) {
    throw new PkiError('FAILED_PRECONDITION', `${OPERATION}: profile ${profile.name} needs a caIssuers URL and the issuing CA has none`);
  }
  return publication;
}

function extensionsOf(profile: CertificateProfile, request: IssueCertificateRequest, issuer: ParsedIssuer, publication: Publication): CertificateExtension[] {
  const constant = constantExtensionsOf(profile, issuer, publication);
  const extensions: CertificateExtension[] = [constant.first, subjectKeyIdentifierExtension(request.publicKeySpki), ...constant.beforeCrl];
  if (publication.crlUrls.length > 0) extensions.push(crlDistributionPointsExtension(publication.crlUrls));
  extensions.push(...constant.afterCrl);
  if (request.nationalIdLastFour !== undefined) {
    if (!profile.allowsNationalIdLastFour) throw new PkiError('INVALID_ARGUMENT', `${OPERATION}: profile ${profile.name} carries no national ID digits`);
    if (!/^[0-9]{4}$/.test(request.nationalIdLastFour)) throw new PkiError('INVALID_ARGUMENT', `${OPERATION}: nationalIdLastFour must be 4 digits`);
    extensions.push(subjectDirectoryAttributesExtension([{ type: id_tw_gca_nationalIdLastFour, value: request.nationalIdLastFour }]));
  }
  const san = subjectAltNamesOf(profile, request);
  if (san !== undefined) extensions.push(subjectAltNameExtension(san));
  return extensions;
}

/**
 * The extensions of a profile that are the same for every certificate of one issuer generation,
 * built once per profile and publication points (the profile-derived bytes cost the schema layer
 * as much as the rest of a TBS); the bytes are the builders' own, so nothing changes in them.
 */
function constantExtensionsOf(profile: CertificateProfile, issuer: ParsedIssuer, publication: Publication): ConstantExtensions {
  const key = `${profile.name}\n${publication.ocspUrls.join(' ')}\n${publication.caIssuersUrls.join(' ')}`;
  const known = issuer.constantExtensions.get(key);
  if (known !== undefined) return known;
  const beforeCrl = [keyUsageExtension(profile.keyUsage.usages, { critical: profile.keyUsage.critical })];
  if (profile.extendedKeyUsage !== undefined) {
    beforeCrl.push(extendedKeyUsageExtension(profile.extendedKeyUsage.purposes, { critical: profile.extendedKeyUsage.critical }));
  }
  if (profile.basicConstraints !== undefined) beforeCrl.push(basicConstraintsExtension({ ca: false }, { critical: profile.basicConstraints.critical }));
  if (profile.certificatePolicies !== undefined) {
    beforeCrl.push(certificatePoliciesExtension(profile.certificatePolicies.policies, { critical: profile.certificatePolicies.critical }));
  }
  const afterCrl: CertificateExtension[] = [];
  if (publication.ocspUrls.length + publication.caIssuersUrls.length > 0) {
    afterCrl.push(authorityInfoAccessExtension({ ocsp: publication.ocspUrls, caIssuers: publication.caIssuersUrls }));
  }
  if (profile.ocspNoCheck) afterCrl.push(ocspNoCheckExtension());
  const constant: ConstantExtensions = Object.freeze({
    first: Object.freeze(authorityKeyIdentifierExtension(issuer.keyIdentifier)),
    beforeCrl: Object.freeze(beforeCrl.map((e) => Object.freeze(e))),
    afterCrl: Object.freeze(afterCrl.map((e) => Object.freeze(e))),
  });
  if (issuer.constantExtensions.size >= 64) issuer.constantExtensions.clear();
  issuer.constantExtensions.set(key, constant);
  return constant;
}

function subjectAltNamesOf(profile: CertificateProfile, request: IssueCertificateRequest): SubjectAltNames | undefined {
  if (request.email !== undefined && !profile.allowsEmail) throw new PkiError('INVALID_ARGUMENT', `${OPERATION}: profile ${profile.name} carries no e-mail address`);
  const dnsNames = request.dnsNames ?? [];
  if (dnsNames.length > 0 && !profile.allowsDnsNames) throw new PkiError('INVALID_ARGUMENT', `${OPERATION}: profile ${profile.name} carries no DNS names`);
  if (new Set(dnsNames).size !== dnsNames.length) throw new PkiError('INVALID_ARGUMENT', `${OPERATION}: a DNS name appears twice`);
  // RFC 5280 §4.2.1.6: dNSName in the preferred name syntax; fully qualified (a bare service name
  // like "ocsp" only means something inside one search domain, and pkilint refuses it).
  for (const name of dnsNames) {
    if (!FULLY_QUALIFIED_HOST_NAME.test(name)) throw new PkiError('INVALID_ARGUMENT', `${OPERATION}: DNS name '${String(name).slice(0, 253)}' is not a fully qualified lower-case host name`);
  }
  const names: SubjectAltNames = {};
  if (dnsNames.length > 0) names.dnsNames = dnsNames;
  if (profile.spiffeId !== undefined) {
    // Decision 0006: the identity is spiffe://<trust domain>/<service>, the service being the CN
    // (checkSubject has held it to the profile's service-name pattern).
    const service = request.subject.find((attribute) => attribute.type === 'CN')!.value;
    names.uris = [`spiffe://${profile.spiffeId.trustDomain}/${service}`];
  }
  if (request.email !== undefined) names.emails = [request.email];
  return Object.keys(names).length > 0 ? names : undefined;
}

const FULLY_QUALIFIED_HOST_NAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$/;
