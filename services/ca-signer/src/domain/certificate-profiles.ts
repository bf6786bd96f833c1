import {
  id_ce_extKeyUsage_anyExtendedKeyUsage,
  id_kp_clientAuth,
  id_kp_documentSigning,
  id_kp_emailProtection,
  id_kp_OCSPSigning,
  id_kp_serverAuth,
  id_tw_gpki_certpolicy_class3Assurance,
  type KeyUsageType,
  type NameAttributeType,
} from '@pki/x509';

/** One attribute of the subject DN a profile requires, in the order it must appear. */
export interface SubjectAttributeRule {
  type: NameAttributeType;
  /** The whole value must match (anchor the pattern with ^ and $). */
  pattern?: RegExp;
  /** What the pattern means, for the error message. */
  patternDescription?: string;
}

export type SubjectKeyRule = { type: 'RSA'; bits: number } | { type: 'EC'; curve: 'P-256' | 'P-384' };

/** A longest validity, in calendar years or in days. */
export type ValidityLimit = { years: number } | { days: number };

/**
 * A place where a profile knowingly departs from a SHOULD of RFC 5280 (or another standard the
 * linters apply). `code` is the lint warning it causes, so the warning is expected, not a surprise.
 */
export interface ProfileDeviation {
  code: string;
  reason: string;
}

/**
 * A certificate profile as data: what the subject, the key and the extensions of a certificate
 * issued under it look like. Issuance builds from it, the pre-issuance linter checks the TBS
 * against it, and {@link validateProfile} checks the profile itself against RFC 5280.
 */
export interface CertificateProfile {
  name: string;
  /** The subject DN, attribute by attribute, in certificate order; nothing else is allowed. */
  subject: readonly SubjectAttributeRule[];
  /** Accepted subject public keys. */
  subjectKeys: readonly SubjectKeyRule[];
  /** Longest validity, and the one used when the request names none. */
  maxValidity: ValidityLimit;
  keyUsage: { usages: readonly KeyUsageType[]; critical: boolean };
  extendedKeyUsage?: { purposes: readonly string[]; critical: boolean };
  /** basicConstraints with cA FALSE (RFC 5280 §4.2.1.9 allows it in end-entity certificates). */
  basicConstraints?: { critical: boolean };
  certificatePolicies?: { policies: readonly string[]; critical: boolean };
  /** Whether the certificate carries cRLDistributionPoints naming its CRL partition (§4.2.1.13). */
  crlDistributionPoint: boolean;
  /** Which authorityInfoAccess methods the certificate carries (§4.2.2.1). */
  authorityInfoAccess: { ocsp: boolean; caIssuers: boolean };
  /** Whether the certificate carries id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1). */
  ocspNoCheck: boolean;
  /** Whether the last four digits of the national ID go into subjectDirectoryAttributes (2.5.29.9). */
  allowsNationalIdLastFour: boolean;
  /** Whether an e-mail address may go into subjectAltName. */
  allowsEmail: boolean;
  /** Whether DNS names may go into subjectAltName. */
  allowsDnsNames: boolean;
  /**
   * When set, subjectAltName carries exactly one URI `spiffe://<trustDomain>/<CN>` (the service
   * identity of decision 0006), derived from the subject CN rather than taken from the request.
   */
  spiffeId?: { trustDomain: string };
  /** Known, accepted departures from SHOULDs; every lint warning a profile causes is listed here. */
  deviations: readonly ProfileDeviation[];
}

const KEY_USAGE_NOT_CRITICAL_AS_OBSERVED: ProfileDeviation = {
  code: 'w_key_usage_not_critical',
  reason:
    'RFC 5280 §4.2.1.3 says keyUsage SHOULD be critical; the citizen CA\'s issued certificates carry no critical extension (domain.md), and relying-party software in the field was built against them',
};

/** Key types for service keys that are generated in software or an HSM, not on a card. */
const SERVICE_KEYS: readonly SubjectKeyRule[] = [
  { type: 'RSA', bits: 2048 },
  { type: 'RSA', bits: 3072 },
  { type: 'RSA', bits: 4096 },
  { type: 'EC', curve: 'P-256' },
  { type: 'EC', curve: 'P-384' },
];

const TW = { type: 'C', pattern: /^TW$/, patternDescription: 'TW' } as const satisfies SubjectAttributeRule;

/**
 * Citizen certificates (domain.md): subject `C=TW, CN=<name>, serialNumber=<16 digits>`, RSA-2048
 * keys generated on the card, class 3 policy, AKI/SKI, CRL DP and AIA, optional e-mail, and no
 * critical extension (observed on issued certificates; RFC 5280 requires none of these to be).
 */
const citizenSubject: readonly SubjectAttributeRule[] = [
  TW,
  { type: 'CN' },
  { type: 'serialNumber', pattern: /^[0-9]{16}$/, patternDescription: '16 digits' },
];

/** The SIGN key pair's certificate: signatures with non-repudiation. */
export const citizenSignatureProfile: CertificateProfile = {
  name: 'citizenSignature',
  subject: citizenSubject,
  subjectKeys: [{ type: 'RSA', bits: 2048 }],
  maxValidity: { years: 5 },
  keyUsage: { usages: ['digitalSignature', 'nonRepudiation'], critical: false },
  certificatePolicies: { policies: [id_tw_gpki_certpolicy_class3Assurance], critical: false },
  crlDistributionPoint: true,
  authorityInfoAccess: { ocsp: true, caIssuers: true },
  ocspNoCheck: false,
  allowsNationalIdLastFour: true,
  allowsEmail: true,
  allowsDnsNames: false,
  deviations: [KEY_USAGE_NOT_CRITICAL_AS_OBSERVED],
};

/** The KEYX key pair's certificate: key transport and data encryption. */
export const citizenEncryptionProfile: CertificateProfile = {
  ...citizenSignatureProfile,
  name: 'citizenEncryption',
  keyUsage: { usages: ['keyEncipherment', 'dataEncipherment'], critical: false },
};

/**
 * A mobile credential (domain.md: a key pair generated on the phone, bound to the person through
 * the physical card, up to 3 devices): the citizen's subject, a P-256 key from the phone's
 * keystore, signatures only, and a shorter life than the card's (a phone is replaced sooner).
 */
export const citizenMobileProfile: CertificateProfile = {
  ...citizenSignatureProfile,
  name: 'citizenMobile',
  subjectKeys: [{ type: 'EC', curve: 'P-256' }],
  maxValidity: { years: 2 },
  // A new kind of certificate: no field software depends on the card certificates' non-critical
  // keyUsage here, so RFC 5280 §4.2.1.3's SHOULD holds.
  keyUsage: { usages: ['digitalSignature'], critical: true },
  allowsEmail: false,
  deviations: [],
};

/**
 * A delegated OCSP responder of an issuing CA generation (RFC 6960 §4.2.2.2): the CA certifies the
 * responder key with id-kp-OCSPSigning, so responses need not be signed by the CA key itself.
 * id-pkix-ocsp-nocheck (§4.2.2.2.1) spares clients a revocation check of the responder, which is
 * why the certificate is short-lived and carries no CRL DP or AIA OCSP pointer; caIssuers stays so
 * clients can build the path to the CA.
 */
export const ocspResponderProfile: CertificateProfile = {
  name: 'ocspResponder',
  subject: [TW, { type: 'O' }, { type: 'CN' }],
  subjectKeys: SERVICE_KEYS,
  maxValidity: { years: 1 },
  // RFC 5280 §4.2.1.12: id-kp-OCSPSigning goes with digitalSignature and/or nonRepudiation.
  keyUsage: { usages: ['digitalSignature'], critical: true },
  extendedKeyUsage: { purposes: [id_kp_OCSPSigning], critical: false },
  crlDistributionPoint: false,
  authorityInfoAccess: { ocsp: false, caIssuers: true },
  ocspNoCheck: true,
  allowsNationalIdLastFour: false,
  allowsEmail: false,
  allowsDnsNames: false,
  deviations: [],
};

/**
 * The key that signs audit checkpoints (architecture.md: the audit service has ca-signer sign the
 * chain head). digitalSignature plus nonRepudiation (contentCommitment): a checkpoint is evidence
 * that the CA attested a chain head, kept and verified for years by auditors, which is the
 * non-repudiation service RFC 5280 §4.2.1.3 describes. The EKU id-kp-documentSigning (RFC 9336)
 * restricts the key to signed documents: without any EKU, TLS stacks that treat a missing EKU as
 * "any purpose" would accept the certificate as a TLS client certificate.
 */
export const auditCheckpointSignerProfile: CertificateProfile = {
  name: 'auditCheckpointSigner',
  subject: [TW, { type: 'O' }, { type: 'CN' }],
  subjectKeys: SERVICE_KEYS,
  maxValidity: { years: 5 },
  keyUsage: { usages: ['digitalSignature', 'nonRepudiation'], critical: true },
  extendedKeyUsage: { purposes: [id_kp_documentSigning], critical: false },
  crlDistributionPoint: true,
  authorityInfoAccess: { ocsp: true, caIssuers: true },
  ocspNoCheck: false,
  allowsNationalIdLastFour: false,
  allowsEmail: false,
  allowsDnsNames: false,
  deviations: [],
};

/**
 * The key that signs certificate validation receipts: ra's validation API answers agencies with
 * a signed statement (valid or not, why, status, times) that they keep as evidence. The same
 * shape as the audit checkpoint key, for the same reason (long-lived evidence: nonRepudiation;
 * id-kp-documentSigning so it is never taken for a TLS client), but a key of its own: a receipt
 * and a checkpoint must never be interchangeable, and each key can be rotated on its own cycle.
 */
export const validationReceiptSignerProfile: CertificateProfile = {
  ...auditCheckpointSignerProfile,
  name: 'validationReceiptSigner',
};

/**
 * A registered agency application system calling the validation APIs (identity confirmation,
 * certificate validation): TLS client authentication, and the same key signs its request batches
 * (domain.md), which digitalSignature covers. Subject `C=TW, O=<agency>, OU=<system>, CN=<system
 * id>`; the system id is the registry's ASCII identifier, so logs and allow-lists can quote it.
 */
export const agencyClientProfile: CertificateProfile = {
  name: 'agencyClient',
  subject: [
    TW,
    { type: 'O' },
    { type: 'OU' },
    { type: 'CN', pattern: /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, patternDescription: 'an application system id (ASCII letters, digits, . _ -)' },
  ],
  subjectKeys: SERVICE_KEYS,
  maxValidity: { years: 2 },
  keyUsage: { usages: ['digitalSignature'], critical: true },
  extendedKeyUsage: { purposes: [id_kp_clientAuth], critical: false },
  crlDistributionPoint: true,
  authorityInfoAccess: { ocsp: true, caIssuers: true },
  ocspNoCheck: false,
  allowsNationalIdLastFour: false,
  allowsEmail: false,
  allowsDnsNames: false,
  deviations: [],
};

/**
 * A service identity for internal mTLS (decision 0006), for a deployment that wants ca-signer to
 * issue them: TLS server and client, CN=<service>, subjectAltName with the single SPIFFE ID
 * `spiffe://pki.internal/<service>` and optional DNS names. keyUsage digitalSignature only, critical
 * (the X.509-SVID profile requires it; ECDHE key exchange needs no keyEncipherment); basicConstraints
 * cA FALSE, critical, as the internal CA writes it. 90 days: service credentials rotate often.
 * Never issued by the citizen issuing CA in the development setup.
 */
export const serviceMtlsProfile: CertificateProfile = {
  name: 'serviceMtls',
  subject: [{ type: 'CN', pattern: /^[a-z][a-z0-9-]{0,62}$/, patternDescription: 'a service name (lower-case letters, digits, -)' }],
  subjectKeys: [
    { type: 'EC', curve: 'P-256' },
    { type: 'EC', curve: 'P-384' },
    { type: 'RSA', bits: 2048 },
    { type: 'RSA', bits: 3072 },
  ],
  maxValidity: { days: 90 },
  keyUsage: { usages: ['digitalSignature'], critical: true },
  extendedKeyUsage: { purposes: [id_kp_serverAuth, id_kp_clientAuth], critical: false },
  basicConstraints: { critical: true },
  crlDistributionPoint: true,
  authorityInfoAccess: { ocsp: true, caIssuers: true },
  ocspNoCheck: false,
  allowsNationalIdLastFour: false,
  allowsEmail: false,
  allowsDnsNames: true,
  spiffeId: { trustDomain: 'pki.internal' },
  deviations: [],
};

export const certificateProfiles = {
  citizenSignature: citizenSignatureProfile,
  citizenEncryption: citizenEncryptionProfile,
  citizenMobile: citizenMobileProfile,
  ocspResponder: ocspResponderProfile,
  auditCheckpointSigner: auditCheckpointSignerProfile,
  validationReceiptSigner: validationReceiptSignerProfile,
  agencyClient: agencyClientProfile,
  serviceMtls: serviceMtlsProfile,
} as const satisfies Record<string, CertificateProfile>;

export type CertificateProfileName = keyof typeof certificateProfiles;

/** The profile of that name, or undefined. */
export function certificateProfile(name: string): CertificateProfile | undefined {
  return Object.hasOwn(certificateProfiles, name) ? certificateProfiles[name as CertificateProfileName] : undefined;
}

/** Longest validity a profile allows from `notBefore`, in UTC calendar terms. */
export function maxNotAfter(profile: Pick<CertificateProfile, 'maxValidity'>, notBefore: Date): Date {
  const limit = profile.maxValidity;
  if ('days' in limit) return new Date(notBefore.getTime() + limit.days * 86_400_000);
  const result = new Date(notBefore.getTime());
  result.setUTCFullYear(result.getUTCFullYear() + limit.years);
  return result;
}

/** "5 years" / "90 days", for messages. */
export function describeValidityLimit(limit: ValidityLimit): string {
  return 'days' in limit ? `${limit.days} days` : `${limit.years} years`;
}

/**
 * Key usages each key purpose can work with (RFC 5280 §4.2.1.12: "If a certificate contains both a
 * key usage extension and an extended key usage extension, then both extensions MUST be processed
 * independently and the certificate MUST only be used for a purpose consistent with both"). The
 * sets follow the notes of §4.2.1.12 for the RFC 5280 purposes, RFC 6960 §4.2.2.2 for OCSP signing
 * and RFC 9336 §3 for document signing.
 */
const USAGES_FOR_PURPOSE: Record<string, readonly KeyUsageType[]> = {
  [id_kp_serverAuth]: ['digitalSignature', 'keyEncipherment', 'keyAgreement'],
  [id_kp_clientAuth]: ['digitalSignature', 'keyAgreement'],
  [id_kp_emailProtection]: ['digitalSignature', 'nonRepudiation', 'keyEncipherment', 'keyAgreement'],
  [id_kp_OCSPSigning]: ['digitalSignature', 'nonRepudiation'],
  [id_kp_documentSigning]: ['digitalSignature', 'nonRepudiation'],
};

const OID = /^[0-2](\.(0|[1-9][0-9]*))+$/;
const RSA_SIZES = new Set([2048, 3072, 4096]);
/** Domain rule (domain.md): a private key is not used beyond 10 years. */
const LONGEST_PROFILE_VALIDITY_DAYS = 10 * 366;

/**
 * The problems of a profile as RFC 5280 (and the standards named below) sees them; empty when the
 * profile is sound. Run over every shipped profile by a test, so a profile edit that breaks a rule
 * fails the build rather than producing certificates.
 */
export function validateProfile(profile: CertificateProfile): string[] {
  const problems: string[] = [];
  const problem = (text: string) => problems.push(`${profile.name}: ${text}`);

  if (!/^[a-z][A-Za-z0-9]*$/.test(profile.name)) problem('name must be a camelCase identifier');

  // Subject: never empty (an empty subject would need a critical subjectAltName, §4.1.2.6), each
  // attribute once, anchored patterns.
  if (profile.subject.length === 0) problem('the subject must have at least one attribute');
  const types = profile.subject.map((rule) => rule.type);
  if (new Set(types).size !== types.length) problem('a subject attribute type appears twice');
  for (const rule of profile.subject) {
    if (rule.pattern !== undefined && (!rule.pattern.source.startsWith('^') || !rule.pattern.source.endsWith('$'))) {
      problem(`the pattern of subject ${rule.type} must be anchored with ^ and $`);
    }
    if (rule.pattern !== undefined && rule.pattern.flags !== '') problem(`the pattern of subject ${rule.type} must have no flags`);
  }
  if (types.includes('C') && profile.subject.find((rule) => rule.type === 'C')?.pattern === undefined) {
    problem('subject C must be fixed by a pattern (ISO 3166 code)');
  }

  // Keys: RSA of at least 2048 bits in the sizes HSMs and cards make; P-256 or P-384 (RFC 5480).
  if (profile.subjectKeys.length === 0) problem('at least one subject key type is required');
  for (const key of profile.subjectKeys) {
    if (key.type === 'RSA' && !RSA_SIZES.has(key.bits)) problem(`RSA-${key.bits} is not an accepted key size (2048, 3072, 4096)`);
    if (key.type === 'EC' && key.curve !== 'P-256' && key.curve !== 'P-384') problem(`curve ${String(key.curve)} is not accepted`);
  }
  const allowsEc = profile.subjectKeys.some((key) => key.type === 'EC');
  const allowsRsa = profile.subjectKeys.some((key) => key.type === 'RSA');

  // Validity: positive, whole, and within the 10-year key lifetime.
  const limit = profile.maxValidity;
  const amount = 'days' in limit ? limit.days : limit.years;
  if (!Number.isInteger(amount) || amount <= 0) problem('maxValidity must be a positive whole number');
  else if (('days' in limit ? limit.days : limit.years * 366) > LONGEST_PROFILE_VALIDITY_DAYS) problem('maxValidity exceeds 10 years');

  // keyUsage (§4.2.1.3): at least one bit, no repeats; end-entity profiles never sign certificates
  // or CRLs (keyCertSign needs cA TRUE, §4.2.1.9); encipherOnly/decipherOnly only with keyAgreement.
  const usages = profile.keyUsage.usages;
  if (usages.length === 0) problem('keyUsage must assert at least one bit');
  if (new Set(usages).size !== usages.length) problem('keyUsage repeats a bit');
  if (usages.includes('keyCertSign') || usages.includes('crlSign')) problem('an end-entity profile must not assert keyCertSign or cRLSign');
  if ((usages.includes('encipherOnly') || usages.includes('decipherOnly')) && !usages.includes('keyAgreement')) {
    problem('encipherOnly/decipherOnly are undefined without keyAgreement (RFC 5280 §4.2.1.3)');
  }
  // RFC 5480 §3: an id-ecPublicKey certificate MUST NOT assert keyEncipherment or dataEncipherment.
  if (allowsEc && (usages.includes('keyEncipherment') || usages.includes('dataEncipherment'))) {
    problem('EC keys cannot assert keyEncipherment or dataEncipherment (RFC 5480 §3)');
  }
  // RFC 8017 RSA keys do no key agreement.
  if (allowsRsa && !allowsEc && usages.includes('keyAgreement')) problem('RSA keys cannot assert keyAgreement');
  // §4.2.1.3: "conforming CAs SHOULD mark this extension as critical" - a non-critical keyUsage
  // must be a documented deviation.
  if (!profile.keyUsage.critical && !profile.deviations.some((d) => d.code === 'w_key_usage_not_critical')) {
    problem('keyUsage SHOULD be critical (RFC 5280 §4.2.1.3); document the deviation w_key_usage_not_critical if it is not');
  }

  // extKeyUsage (§4.2.1.12): known purposes, no anyExtendedKeyUsage, each consistent with keyUsage.
  if (profile.extendedKeyUsage !== undefined) {
    const purposes = profile.extendedKeyUsage.purposes;
    if (purposes.length === 0) problem('extKeyUsage must list at least one purpose');
    if (new Set(purposes).size !== purposes.length) problem('extKeyUsage repeats a purpose');
    for (const purpose of purposes) {
      if (purpose === id_ce_extKeyUsage_anyExtendedKeyUsage) {
        problem('anyExtendedKeyUsage defeats the purpose of a profile');
        continue;
      }
      const allowed = USAGES_FOR_PURPOSE[purpose];
      if (allowed === undefined) problem(`extKeyUsage purpose ${purpose} has no key usage rule here`);
      else if (!usages.some((usage) => allowed.includes(usage))) problem(`extKeyUsage ${purpose} is inconsistent with keyUsage ${usages.join(', ')}`);
      else if (usages.some((usage) => !allowed.includes(usage)) && purposes.length === 1) {
        problem(`keyUsage ${usages.filter((u) => !allowed.includes(u)).join(', ')} cannot be used for the only purpose ${purpose}`);
      }
    }
  }

  // id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1) belongs to OCSP signing certificates only, and makes
  // an OCSP pointer meaningless.
  const ocspSigning = profile.extendedKeyUsage?.purposes.includes(id_kp_OCSPSigning) ?? false;
  if (profile.ocspNoCheck && !ocspSigning) problem('id-pkix-ocsp-nocheck requires the id-kp-OCSPSigning purpose');
  if (profile.ocspNoCheck && profile.authorityInfoAccess.ocsp) problem('an id-pkix-ocsp-nocheck certificate carries no OCSP pointer');
  if (!profile.ocspNoCheck && !profile.crlDistributionPoint && !profile.authorityInfoAccess.ocsp) {
    problem('a certificate without id-pkix-ocsp-nocheck needs a CRL distribution point or an OCSP pointer');
  }

  // certificatePolicies (§4.2.1.4): OIDs, each once; non-critical so relying parties that do not
  // process policies still accept the certificate.
  if (profile.certificatePolicies !== undefined) {
    const policies = profile.certificatePolicies.policies;
    if (policies.length === 0) problem('certificatePolicies must list at least one policy');
    if (new Set(policies).size !== policies.length) problem('certificatePolicies repeats a policy (RFC 5280 §4.2.1.4)');
    for (const policy of policies) if (!OID.test(policy)) problem(`policy ${policy} is not an OID`);
    if (profile.certificatePolicies.critical) problem('certificatePolicies should not be critical in an end-entity profile');
  }

  // subjectAltName content.
  if (profile.spiffeId !== undefined) {
    if (!types.includes('CN')) problem('a SPIFFE ID is derived from the subject CN, which the profile lacks');
    if (!/^[a-z0-9.-]+$/.test(profile.spiffeId.trustDomain)) problem('the SPIFFE trust domain must be lower-case letters, digits, dots and dashes');
  }
  if (profile.allowsEmail && (profile.spiffeId !== undefined || profile.allowsDnsNames)) problem('e-mail addresses do not mix with service names');

  for (const deviation of profile.deviations) {
    if (!/^[nwe]_[a-z0-9_]+$/.test(deviation.code) || deviation.reason.trim().length === 0) problem(`deviation ${deviation.code} needs a lint code and a reason`);
  }
  return problems;
}
