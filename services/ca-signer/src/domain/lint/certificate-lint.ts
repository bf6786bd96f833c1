import {
  type DecodedExtension,
  type DecodedGeneralName,
  type DecodedNameAttribute,
  type DecodedTbsCertificate,
  type DecodedTime,
  decodeAuthorityInfoAccess,
  decodeAuthorityKeyIdentifier,
  decodeBasicConstraints,
  decodeCertificatePolicies,
  decodeCrlDistributionPoints,
  decodeExtendedKeyUsage,
  decodeKeyUsage,
  decodeSubjectAltName,
  decodeSubjectDirectoryAttributes,
  decodeSubjectKeyIdentifier,
  decodeTbsCertificate,
  describePublicKey,
  id_ad_caIssuers,
  id_ad_ocsp,
  id_ce_authorityKeyIdentifier,
  id_ce_basicConstraints,
  id_ce_certificatePolicies,
  id_ce_cRLDistributionPoints,
  id_ce_extKeyUsage,
  id_ce_keyUsage,
  id_ce_subjectAltName,
  id_ce_subjectDirectoryAttributes,
  id_ce_subjectKeyIdentifier,
  id_pe_authorityInfoAccess,
  id_pkix_ocsp_nocheck,
  id_tw_gca_nationalIdLastFour,
  isDerNull,
  nameAttributeLabel,
  type ParsedCertificate,
  type PublicKeyDescription,
  type SignatureAlgorithm,
  signatureAlgorithmOfDer,
  subjectKeyIdentifierOf,
} from '@pki/x509';
import { type CertificateProfile, describeValidityLimit, maxNotAfter } from '../certificate-profiles';
import { type LintFinding, type LintResult, sha256Hex } from './lint-result';

export interface CertificateLintContext {
  /** The profile the certificate is issued under. */
  profile: CertificateProfile;
  /** The issuing CA's certificate (its subject, key, key identifier and validity). */
  issuer: ParsedCertificate;
  /** The CA's current time. */
  now: Date;
  /** How far notBefore may lie after `now` (clock skew between hosts). Default 60 seconds. */
  allowedClockSkewSeconds?: number;
  /**
   * When given, the exact URIs the certificate must point to (the issuing CA generation's
   * publication points, the certificate's CRL partition), compared as sets.
   */
  publication?: { crlUrls?: readonly string[]; ocspUrls?: readonly string[]; caIssuersUrls?: readonly string[] };
}

/** RFC 5280 Appendix A upper bounds (ub-*), in characters, by attribute short name. */
const UPPER_BOUND: Record<string, number> = {
  C: 2,
  CN: 64, // ub-common-name
  O: 64, // ub-organization-name
  OU: 64, // ub-organizational-unit-name
  serialNumber: 64, // ub-serial-number
  L: 128, // ub-locality-name
  ST: 128, // ub-state-name
  givenName: 32768, // ub-name
  surname: 32768,
};

// RFC 5280 Appendix A: countryName and serialNumber are PrintableString by definition.
const PRINTABLE_ONLY = new Set(['C', 'serialNumber']);
// X.680 §41.4 PrintableString alphabet.
const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

/** How each extension is named in finding codes. */
const EXTENSION_SLUG: Record<string, string> = {
  [id_ce_authorityKeyIdentifier]: 'authority_key_identifier',
  [id_ce_subjectKeyIdentifier]: 'subject_key_identifier',
  [id_ce_keyUsage]: 'key_usage',
  [id_ce_extKeyUsage]: 'extended_key_usage',
  [id_ce_basicConstraints]: 'basic_constraints',
  [id_ce_certificatePolicies]: 'certificate_policies',
  [id_ce_cRLDistributionPoints]: 'crl_distribution_points',
  [id_pe_authorityInfoAccess]: 'authority_info_access',
  [id_pkix_ocsp_nocheck]: 'ocsp_nocheck',
  [id_ce_subjectAltName]: 'subject_alt_name',
  [id_ce_subjectDirectoryAttributes]: 'subject_directory_attributes',
};

type Presence = 'required' | 'optional' | 'forbidden';

interface ExtensionRule {
  presence: Presence;
  critical: boolean;
}

/**
 * Which extensions a certificate of `profile` carries and with which criticality. The fixed
 * criticalities are RFC 5280's: AKI and SKI MUST NOT be critical (§4.2.1.1, §4.2.1.2), AIA MUST
 * NOT be (§4.2.2.1), subjectDirectoryAttributes MUST NOT be (§4.2.1.8), CRL DP SHOULD NOT be
 * (§4.2.1.13), subjectAltName is critical only with an empty subject (§4.2.1.6; never here) and
 * id-pkix-ocsp-nocheck SHOULD NOT be (RFC 6960 §4.2.2.2.1).
 */
function extensionRules(profile: CertificateProfile): Map<string, ExtensionRule> {
  const rule = (present: boolean | Presence, critical = false): ExtensionRule => ({
    presence: typeof present === 'string' ? present : present ? 'required' : 'forbidden',
    critical,
  });
  const sanPresence: Presence = profile.spiffeId !== undefined ? 'required' : profile.allowsEmail || profile.allowsDnsNames ? 'optional' : 'forbidden';
  return new Map<string, ExtensionRule>([
    [id_ce_authorityKeyIdentifier, rule(true)],
    [id_ce_subjectKeyIdentifier, rule(true)],
    [id_ce_keyUsage, rule(true, profile.keyUsage.critical)],
    [id_ce_extKeyUsage, rule(profile.extendedKeyUsage !== undefined, profile.extendedKeyUsage?.critical)],
    [id_ce_basicConstraints, rule(profile.basicConstraints !== undefined, profile.basicConstraints?.critical)],
    [id_ce_certificatePolicies, rule(profile.certificatePolicies !== undefined, profile.certificatePolicies?.critical)],
    [id_ce_cRLDistributionPoints, rule(profile.crlDistributionPoint)],
    [id_pe_authorityInfoAccess, rule(profile.authorityInfoAccess.ocsp || profile.authorityInfoAccess.caIssuers)],
    [id_pkix_ocsp_nocheck, rule(profile.ocspNoCheck)],
    [id_ce_subjectAltName, rule(sanPresence)],
    [id_ce_subjectDirectoryAttributes, rule(profile.allowsNationalIdLastFour ? 'optional' : 'forbidden')],
  ]);
}

class Findings {
  readonly errors: LintFinding[] = [];
  readonly warnings: LintFinding[] = [];
  error(code: string, message: string): void {
    this.errors.push({ code, message });
  }
  warning(code: string, message: string): void {
    this.warnings.push({ code, message });
  }
}

/**
 * Lints the exact DER of a TBSCertificate before the CA key signs it: RFC 5280 rules and the
 * conformance of every field to the profile, read back from the bytes (never from the request
 * that produced them). Findings are collected, not thrown: `errors` refuse issuance (see
 * assertLintClean), `warnings` are recorded.
 */
export function lintTbsCertificate(tbsDer: Uint8Array, context: CertificateLintContext): LintResult {
  const findings = new Findings();
  const tbsSha256 = sha256Hex(tbsDer);
  let tbs: DecodedTbsCertificate;
  try {
    tbs = decodeTbsCertificate(tbsDer, 'lint TBS certificate');
  } catch (err) {
    findings.error('e_tbs_malformed', (err as Error).message);
    return { errors: findings.errors, warnings: findings.warnings, tbsSha256 };
  }
  // X.690 §10 / RFC 5280 §4.1: certificates are DER; a parse and re-encode must give the same bytes.
  if (!tbs.canonical) findings.error('e_tbs_not_der', 'the TBSCertificate is not canonical DER');
  // RFC 5280 §4.1.2.1: v3 when extensions are present (always, in these profiles).
  if (tbs.version !== 2) findings.error('e_invalid_certificate_version', `version is v${tbs.version + 1}, must be v3`);
  // RFC 5280 §4.1.2.8: conforming CAs MUST NOT generate certificates with unique identifiers.
  if (tbs.hasIssuerUniqueId || tbs.hasSubjectUniqueId) findings.error('e_cert_contains_unique_identifier', 'issuerUniqueID or subjectUniqueID is present');

  lintSerialNumber(tbs.serialNumber, findings);
  lintSignatureAlgorithm(tbs.signatureAlgorithm, context.issuer, findings);
  // RFC 5280 §4.1.2.4 / §7.1: path building compares the issuer field with the issuer's subject.
  if (!tbs.issuerDer.equals(context.issuer.subjectDer)) findings.error('e_issuer_dn_mismatch', "the issuer field is not byte-identical to the issuer certificate's subject");
  lintValidity(tbs, context, findings);
  lintSubject(tbs.subject, context.profile, findings);
  const key = lintSubjectPublicKey(tbs.subjectPublicKeyInfo, context, findings);
  lintExtensions(tbs, context, key, findings);
  return { errors: findings.errors, warnings: findings.warnings, tbsSha256 };
}

/** RFC 5280 §4.1.2.2: a positive INTEGER of at most 20 octets; 64 bits of randomness (domain: 128). */
function lintSerialNumber(serial: Buffer, findings: Findings): void {
  if (serial.length === 0) {
    findings.error('e_serial_number_not_positive', 'serialNumber has no content octets');
    return;
  }
  if (serial[0]! & 0x80) findings.error('e_serial_number_not_positive', 'serialNumber is negative');
  else if (serial.every((octet) => octet === 0)) findings.error('e_serial_number_not_positive', 'serialNumber is zero');
  // X.690 §8.3.2: no leading 0x00 unless the next octet's top bit is set.
  if (serial.length > 1 && serial[0] === 0 && (serial[1]! & 0x80) === 0) {
    findings.error('e_serial_number_not_minimally_encoded', 'serialNumber has a superfluous leading zero octet');
  }
  if (serial.length > 20) findings.error('e_serial_number_longer_than_20_octets', `serialNumber is ${serial.length} octets`);
  // At most 8n-1 value bits in n octets of a positive INTEGER (8(n-1) with a 0x00 pad): below 9
  // octets a serial cannot hold the 64 random bits the CA promises (CA/B Forum BR §7.1 practice).
  const valueBits = serial[0] === 0 ? 8 * (serial.length - 1) : 8 * serial.length - 1;
  if (valueBits < 64) findings.error('e_serial_number_low_entropy', `serialNumber has room for ${valueBits} bits, fewer than 64 random bits`);
}

/** The algorithms an issuer key may sign certificates with (RFC 5480 §4 pairs curve and hash). */
function allowedSignatureAlgorithms(key: PublicKeyDescription): readonly SignatureAlgorithm[] {
  if (key.type === 'RSA') return ['RSA-SHA256', 'RSA-PSS-SHA256'];
  return key.curve === 'P-384' ? ['ECDSA-SHA384'] : ['ECDSA-SHA256'];
}

function lintSignatureAlgorithm(algorithmDer: Buffer, issuer: ParsedCertificate, findings: Findings): void {
  const algorithm = signatureAlgorithmOfDer(algorithmDer);
  if (algorithm === undefined) {
    findings.error('e_signature_algorithm_not_allowed', 'the signature AlgorithmIdentifier is not one of the encodings the CA signs with');
    return;
  }
  let issuerKey: PublicKeyDescription;
  try {
    issuerKey = describePublicKey(issuer.subjectPublicKeyInfo, 'lint: issuer key');
  } catch (err) {
    findings.error('e_issuer_key_unusable', (err as Error).message);
    return;
  }
  if (!allowedSignatureAlgorithms(issuerKey).includes(algorithm)) {
    findings.error('e_signature_algorithm_mismatch_issuer_key', `${algorithm} does not fit the issuer's ${issuerKey.type === 'RSA' ? `RSA-${issuerKey.bits}` : `EC ${issuerKey.curve}`} key`);
  }
}

function lintValidity(tbs: DecodedTbsCertificate, context: CertificateLintContext, findings: Findings): void {
  const notBefore = lintTime('notBefore', tbs.notBefore, findings);
  const notAfter = lintTime('notAfter', tbs.notAfter, findings);
  if (notBefore === undefined || notAfter === undefined) return;
  if (notAfter <= notBefore) {
    findings.error('e_validity_not_after_before_not_before', 'notAfter is not after notBefore');
    return;
  }
  const skew = (context.allowedClockSkewSeconds ?? 60) * 1000;
  if (notBefore.getTime() > context.now.getTime() + skew) findings.error('e_validity_not_before_in_future', `notBefore ${notBefore.toISOString()} lies in the future`);
  const longest = maxNotAfter(context.profile, notBefore);
  if (notAfter > longest) {
    findings.error('e_validity_exceeds_profile', `validity is longer than the ${describeValidityLimit(context.profile.maxValidity)} profile ${context.profile.name} allows`);
  }
  // RFC 5280 §6.1.3 (a)(2): a certificate is only valid within its issuer's validity.
  if (notBefore < context.issuer.notBefore) findings.error('e_validity_before_issuer', "notBefore is before the issuer certificate's notBefore");
  if (notAfter > context.issuer.notAfter) findings.error('e_validity_exceeds_issuer', "notAfter is after the issuer certificate's notAfter");
}

/**
 * RFC 5280 §4.1.2.5: UTCTime for dates through 2049, GeneralizedTime from 2050; both in Zulu, with
 * seconds and without fractions (§4.1.2.5.1, §4.1.2.5.2).
 */
function lintTime(field: string, time: DecodedTime, findings: Findings): Date | undefined {
  if (time.date === undefined) {
    findings.error('e_validity_time_malformed', `${field} is not ${time.encoding === 'utcTime' ? 'YYMMDDHHMMSSZ' : 'YYYYMMDDHHMMSSZ'} (RFC 5280 §4.1.2.5)`);
    return undefined;
  }
  if (time.encoding === 'generalizedTime' && time.date.getUTCFullYear() < 2050) {
    findings.error('e_wrong_time_format_pre2050', `${field} before 2050 is encoded as GeneralizedTime instead of UTCTime`);
  }
  return time.date;
}

function lintSubject(subject: DecodedNameAttribute[][], profile: CertificateProfile, findings: Findings): void {
  if (subject.some((rdn) => rdn.length !== 1)) findings.error('e_subject_multi_valued_rdn', 'the subject has a multi-valued RDN');
  const attributes = subject.flat();
  const labels = attributes.map((attribute) => nameAttributeLabel(attribute.oid));
  const expected = profile.subject.map((rule) => rule.type);
  if (labels.join(',') !== expected.join(',')) {
    findings.error('e_subject_layout_mismatch', `the subject is ${labels.join(', ') || '(empty)'}, profile ${profile.name} requires ${expected.join(', ')}`);
  }
  attributes.forEach((attribute, i) => {
    const label = labels[i]!;
    const rule = expected[i] === label ? profile.subject[i] : undefined;
    // RFC 5280 §4.1.2.6 via §4.1.2.4: new certificates use PrintableString or UTF8String; this CA
    // writes UTF8String (its DNs are Chinese) except where the attribute is PrintableString by
    // definition.
    const wanted = PRINTABLE_ONLY.has(label) ? 'printableString' : 'utf8String';
    if (attribute.stringType !== wanted) findings.error('e_subject_attribute_string_type', `subject ${label} is a ${attribute.stringType}, must be a ${wanted}`);
    if (attribute.value === undefined) {
      findings.error('e_subject_attribute_encoding_invalid', `subject ${label} does not decode as a ${attribute.stringType}`);
      return;
    }
    if (attribute.value.length === 0) findings.error('e_subject_attribute_empty', `subject ${label} is empty`);
    if (attribute.stringType === 'printableString' && !PRINTABLE.test(attribute.value)) {
      findings.error('e_subject_printable_string_badalpha', `subject ${label} has characters outside the PrintableString alphabet`);
    }
    const bound = UPPER_BOUND[label];
    if (bound !== undefined && [...attribute.value].length > bound) findings.error('e_subject_attribute_too_long', `subject ${label} is longer than ${bound} characters (RFC 5280 Appendix A)`);
    if (label === 'C' && !/^[A-Z]{2}$/.test(attribute.value)) findings.error('e_subject_country_not_iso', 'subject C is not a two-letter ISO 3166 code');
    // The value itself is personal data: name the rule, never echo the value.
    if (rule?.pattern !== undefined && !rule.pattern.test(attribute.value)) {
      findings.error('e_subject_attribute_not_per_profile', `subject ${label} is not ${rule.patternDescription ?? rule.pattern.source}`);
    }
  });
}

function lintSubjectPublicKey(spki: Buffer, context: CertificateLintContext, findings: Findings): PublicKeyDescription | undefined {
  let key: PublicKeyDescription;
  try {
    key = describePublicKey(spki, 'lint: subject public key');
  } catch (err) {
    findings.error('e_spki_malformed', (err as Error).message);
    return undefined;
  }
  const accepted = context.profile.subjectKeys.some((rule) =>
    rule.type === 'RSA' ? key.type === 'RSA' && key.bits === rule.bits : key.type === 'EC' && key.curve === rule.curve,
  );
  if (!accepted) findings.error('e_spki_not_allowed_by_profile', `${key.type === 'RSA' ? `RSA-${key.bits}` : `EC ${key.curve}`} is not a key profile ${context.profile.name} accepts`);
  if (spki.equals(context.issuer.subjectPublicKeyInfo)) findings.error('e_spki_is_issuer_key', "the subject key is the issuer's own key");
  return key;
}

function lintExtensions(tbs: DecodedTbsCertificate, context: CertificateLintContext, key: PublicKeyDescription | undefined, findings: Findings): void {
  const { profile } = context;
  const extensions = tbs.extensions ?? [];
  if (extensions.length === 0) {
    // RFC 5280 §4.1: Extensions ::= SEQUENCE SIZE (1..MAX); and AKI/SKI/keyUsage are always required here.
    findings.error(tbs.extensions === undefined ? 'e_extensions_missing' : 'e_extensions_empty', 'the certificate has no extensions');
  }
  const byId = new Map<string, DecodedExtension>();
  for (const ext of extensions) {
    // RFC 5280 §4.2: a certificate MUST NOT include more than one instance of an extension.
    if (byId.has(ext.extnID)) findings.error('e_ext_duplicate', `extension ${EXTENSION_SLUG[ext.extnID] ?? ext.extnID} appears more than once`);
    else byId.set(ext.extnID, ext);
  }
  const rules = extensionRules(profile);
  for (const ext of byId.values()) {
    const slug = EXTENSION_SLUG[ext.extnID];
    const rule = rules.get(ext.extnID);
    if (slug === undefined || rule === undefined) {
      findings.error('e_ext_unknown', `extension ${ext.extnID} is not part of any profile`);
      continue;
    }
    if (rule.presence === 'forbidden') {
      findings.error(`e_ext_${slug}_not_allowed`, `profile ${profile.name} does not allow ${slug}`);
      continue;
    }
    if (ext.critical !== rule.critical) {
      findings.error(`e_ext_${slug}_criticality`, `${slug} is ${ext.critical ? '' : 'not '}critical, profile ${profile.name} says ${rule.critical ? '' : 'not '}critical`);
    }
  }
  for (const [extnID, rule] of rules) {
    if (rule.presence === 'required' && !byId.has(extnID)) findings.error(`e_ext_${EXTENSION_SLUG[extnID]!}_missing`, `profile ${profile.name} requires ${EXTENSION_SLUG[extnID]!}`);
  }

  const value = <T>(extnID: string, decode: (bytes: Buffer) => T): T | undefined => {
    const ext = byId.get(extnID);
    if (ext === undefined || rules.get(extnID)?.presence === 'forbidden') return undefined;
    try {
      return decodedValue(extnID, ext.value, decode);
    } catch (err) {
      findings.error(`e_ext_${EXTENSION_SLUG[extnID]!}_malformed`, (err as Error).message);
      return undefined;
    }
  };

  // keyUsage (§4.2.1.3): exactly the profile's bits. SHOULD be critical: a non-critical keyUsage
  // is a warning (documented as a deviation of the citizen profiles).
  const usages = value(id_ce_keyUsage, decodeKeyUsage);
  if (usages !== undefined) {
    if (!sameSet(usages, profile.keyUsage.usages)) findings.error('e_key_usage_mismatch', `keyUsage is ${usages.join(', ') || '(none)'}, profile ${profile.name} requires ${profile.keyUsage.usages.join(', ')}`);
    // RFC 5480 §3: keyEncipherment and dataEncipherment MUST NOT be asserted for EC keys.
    if (key?.type === 'EC' && (usages.includes('keyEncipherment') || usages.includes('dataEncipherment'))) {
      findings.error('e_key_usage_not_for_ec_key', 'keyEncipherment/dataEncipherment asserted for an EC key');
    }
    if (!byId.get(id_ce_keyUsage)!.critical) findings.warning('w_key_usage_not_critical', 'keyUsage SHOULD be critical (RFC 5280 §4.2.1.3)');
  }

  const purposes = value(id_ce_extKeyUsage, decodeExtendedKeyUsage);
  if (purposes !== undefined && !sameSet(purposes, profile.extendedKeyUsage?.purposes ?? [])) {
    findings.error('e_extended_key_usage_mismatch', `extKeyUsage is ${purposes.join(', ')}, profile ${profile.name} requires ${(profile.extendedKeyUsage?.purposes ?? []).join(', ')}`);
  }

  // basicConstraints (§4.2.1.9): these profiles are end entities, cA FALSE and no pathLenConstraint.
  const bc = value(id_ce_basicConstraints, decodeBasicConstraints);
  if (bc !== undefined && (bc.ca || bc.pathLenConstraint !== undefined)) findings.error('e_basic_constraints_ca_in_end_entity', 'an end-entity certificate asserts cA or a pathLenConstraint');

  // SKI (§4.2.1.2): method (1), the SHA-1 of the subjectPublicKey bits, as relying parties and the
  // CA's own key-identifier lookups expect.
  const ski = value(id_ce_subjectKeyIdentifier, decodeSubjectKeyIdentifier);
  if (ski !== undefined && key !== undefined && !ski.equals(subjectKeyIdentifierOf(tbs.subjectPublicKeyInfo))) {
    findings.error('e_subject_key_identifier_not_method_1', 'subjectKeyIdentifier is not the SHA-1 of the subject public key (RFC 5280 §4.2.1.2 method 1)');
  }

  // AKI (§4.2.1.1): keyIdentifier equal to the issuer's SKI - the only thing that tells the CA
  // generations apart, since they share one DN (domain.md).
  const aki = value(id_ce_authorityKeyIdentifier, decodeAuthorityKeyIdentifier);
  if (aki !== undefined) {
    const issuerKeyId = context.issuer.subjectKeyIdentifier ?? subjectKeyIdentifierOf(context.issuer.subjectPublicKeyInfo);
    if (aki.keyIdentifier === undefined) findings.error('e_authority_key_identifier_no_key_identifier', 'authorityKeyIdentifier has no keyIdentifier');
    else if (!aki.keyIdentifier.equals(issuerKeyId)) findings.error('e_authority_key_identifier_mismatch', "authorityKeyIdentifier is not the issuer's subjectKeyIdentifier");
    if (aki.hasIssuerAndSerial) findings.error('e_authority_key_identifier_issuer_serial', 'authorityKeyIdentifier carries authorityCertIssuer/SerialNumber, which the profile never writes');
  }

  // certificatePolicies (§4.2.1.4): exactly the profile's policies, without qualifiers.
  const policies = value(id_ce_certificatePolicies, decodeCertificatePolicies);
  if (policies !== undefined) {
    const ids = policies.map((p) => p.policyIdentifier);
    if (!sameSet(ids, profile.certificatePolicies?.policies ?? []) || new Set(ids).size !== ids.length) {
      findings.error('e_certificate_policies_mismatch', `certificatePolicies is ${ids.join(', ')}, profile ${profile.name} requires ${(profile.certificatePolicies?.policies ?? []).join(', ')}`);
    }
    if (policies.some((p) => p.qualifiers > 0)) findings.error('e_certificate_policies_qualifiers', 'policy qualifiers are present; the profile writes none');
  }

  // cRLDistributionPoints (§4.2.1.13): fullName URIs only, no reasons (the CA's CRLs cover every
  // reason) and no cRLIssuer (the CA signs its own CRLs); http(s) URIs.
  const points = value(id_ce_cRLDistributionPoints, decodeCrlDistributionPoints);
  if (points !== undefined) {
    const uris: string[] = [];
    for (const point of points) {
      if (point.hasReasons || point.hasCrlIssuer || point.relativeName || point.fullName.length === 0) {
        findings.error('e_crl_distribution_point_form', 'a distribution point is not a plain fullName (reasons, cRLIssuer or a relative name present)');
      }
      for (const name of point.fullName) {
        if (name.type !== 'uri') findings.error('e_crl_distribution_point_not_uri', `a distribution point name is a ${name.type}, not a URI`);
        else uris.push(name.value);
      }
    }
    lintUris('crl_distribution_point', uris, context.publication?.crlUrls, findings);
  }

  // authorityInfoAccess (§4.2.2.1): the OCSP and caIssuers pointers the profile asks for, http(s).
  const access = value(id_pe_authorityInfoAccess, decodeAuthorityInfoAccess);
  if (access !== undefined) {
    const ocsp: string[] = [];
    const caIssuers: string[] = [];
    for (const description of access) {
      const target = description.accessMethod === id_ad_ocsp ? ocsp : description.accessMethod === id_ad_caIssuers ? caIssuers : undefined;
      if (target === undefined) findings.error('e_authority_info_access_unknown_method', `access method ${description.accessMethod} is not OCSP or caIssuers`);
      else if (description.accessLocation.type !== 'uri') findings.error('e_authority_info_access_not_uri', 'an access location is not a URI');
      else target.push(description.accessLocation.value);
    }
    for (const [method, uris, wanted, expected] of [
      ['ocsp', ocsp, profile.authorityInfoAccess.ocsp, context.publication?.ocspUrls],
      ['ca_issuers', caIssuers, profile.authorityInfoAccess.caIssuers, context.publication?.caIssuersUrls],
    ] as const) {
      if (wanted && uris.length === 0) findings.error(`e_authority_info_access_${method}_missing`, `profile ${profile.name} requires an AIA ${method} URI`);
      if (!wanted && uris.length > 0) findings.error(`e_authority_info_access_${method}_not_allowed`, `profile ${profile.name} carries no AIA ${method} URI`);
      if (wanted) lintUris(`authority_info_access_${method}`, uris, expected, findings);
    }
  }

  // id-pkix-ocsp-nocheck: "the value of the extension SHALL be NULL" (RFC 6960 §4.2.2.2.1).
  const nocheck = byId.get(id_pkix_ocsp_nocheck);
  if (nocheck !== undefined && profile.ocspNoCheck && !isDerNull(nocheck.value)) findings.error('e_ext_ocsp_nocheck_malformed', 'id-pkix-ocsp-nocheck is not NULL');

  const names = value(id_ce_subjectAltName, decodeSubjectAltName);
  if (names !== undefined) lintSubjectAltName(names, tbs, profile, findings);

  // subjectDirectoryAttributes: only the last four digits of the national ID (domain.md).
  const attributes = value(id_ce_subjectDirectoryAttributes, decodeSubjectDirectoryAttributes);
  if (attributes !== undefined) {
    const ok =
      attributes.length === 1 &&
      attributes[0]!.type === id_tw_gca_nationalIdLastFour &&
      attributes[0]!.values.length === 1 &&
      attributes[0]!.values[0]!.stringType === 'printableString' &&
      /^[0-9]{4}$/.test(attributes[0]!.values[0]!.value ?? '');
    if (!ok) findings.error('e_subject_directory_attributes_content', 'subjectDirectoryAttributes must hold only the national ID last four digits, one PrintableString of 4 digits');
  }
}

/*
 * Decoded extension values by their exact bytes. Most of a certificate's extension values are the
 * same for every certificate of a profile and issuer generation (AKI, keyUsage, policies, AIA, the
 * CRL partition's DP), and each one's decoding through the schema layer cost as much as building
 * the whole TBS. A decoding is a function of the bytes alone, so reusing it for the same bytes
 * judges exactly what reading them again would; only values that decoded are kept, and the
 * linter only reads them.
 */
const decodedValues = new Map<string, unknown>();
const DECODED_VALUES_KEPT = 4096;

function decodedValue<T>(extnID: string, bytes: Buffer, decode: (bytes: Buffer) => T): T {
  const key = `${extnID} ${bytes.toString('latin1')}`;
  if (decodedValues.has(key)) return decodedValues.get(key) as T;
  const decoded = decode(bytes);
  // Oldest first out: the values that recur are met again long before they would leave.
  if (decodedValues.size >= DECODED_VALUES_KEPT) decodedValues.delete(decodedValues.keys().next().value!);
  decodedValues.set(key, decoded);
  return decoded;
}

function lintSubjectAltName(names: DecodedGeneralName[], tbs: DecodedTbsCertificate, profile: CertificateProfile, findings: Findings): void {
  if (names.length === 0) findings.error('e_ext_subject_alt_name_malformed', 'subjectAltName is empty');
  const uris: string[] = [];
  for (const name of names) {
    if (name.type === 'email' && profile.allowsEmail) {
      // RFC 5280 §4.2.1.6: an addr-spec without display name or angle brackets.
      if (!/^[^@\s<>]+@[A-Za-z0-9.-]+$/.test(name.value)) findings.error('e_subject_alt_name_email_invalid', 'an rfc822Name is not a plain mailbox address');
    } else if (name.type === 'dns' && profile.allowsDnsNames) {
      // RFC 5280 §4.2.1.6 preferred name syntax, fully qualified (at least two labels).
      if (!/^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$/.test(name.value)) {
        findings.error('e_subject_alt_name_dns_invalid', `dNSName '${name.value}' is not a fully qualified lower-case host name`);
      }
    } else if (name.type === 'uri' && profile.spiffeId !== undefined) {
      uris.push(name.value);
    } else {
      findings.error('e_subject_alt_name_type_not_allowed', `profile ${profile.name} allows no ${name.type} in subjectAltName`);
    }
  }
  if (profile.spiffeId !== undefined) {
    // Decision 0006: exactly one SPIFFE ID, spiffe://<trust domain>/<service>, the service being the CN.
    const cn = tbs.subject.flat().find((attribute) => nameAttributeLabel(attribute.oid) === 'CN')?.value;
    const expected = `spiffe://${profile.spiffeId.trustDomain}/${cn ?? ''}`;
    if (uris.length !== 1 || uris[0] !== expected) findings.error('e_subject_alt_name_spiffe_id_mismatch', `subjectAltName must carry exactly one URI, ${expected}`);
  }
}

/** URIs of CRL DP / AIA: http or https (RFC 5280 §4.2.1.13, §4.2.2.1), and the expected ones when known. */
function lintUris(what: string, uris: readonly string[], expected: readonly string[] | undefined, findings: Findings): void {
  for (const uri of uris) {
    let url: URL | undefined;
    try {
      url = new URL(uri);
    } catch {
      url = undefined;
    }
    if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:') || !/^[\x21-\x7e]+$/.test(uri)) {
      findings.error(`e_${what}_uri_invalid`, `'${uri}' is not an ASCII http(s) URI`);
    }
  }
  if (expected !== undefined && !sameSet(uris, expected)) findings.error(`e_${what}_uri_mismatch`, `the ${what} URIs are ${uris.join(' ') || '(none)'}, expected ${expected.join(' ')}`);
}

function sameSet(actual: readonly string[], expected: readonly string[]): boolean {
  const a = new Set(actual);
  return a.size === actual.length && a.size === new Set(expected).size && expected.every((item) => a.has(item));
}
