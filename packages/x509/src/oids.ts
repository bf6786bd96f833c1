/**
 * Object identifiers used by the CA, named after the ASN.1 value names of their RFCs. Where a
 * @peculiar package already exports the constant it is re-exported, not re-declared, so there is
 * one spelling of each OID in the process.
 */
export {
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
  id_ad_ocsp,
  id_ad_caIssuers,
  id_kp_clientAuth,
  id_kp_emailProtection,
  id_kp_OCSPSigning,
  id_kp_serverAuth,
  id_ce_certificatePolicies_anyPolicy,
} from '@peculiar/asn1-x509';
/** RFC 5280 §4.2.1.12 anyExtendedKeyUsage (2.5.29.37.0). */
export { anyExtendedKeyUsage as id_ce_extKeyUsage_anyExtendedKeyUsage } from '@peculiar/asn1-x509';
export { id_pkix_ocsp_nocheck } from '@peculiar/asn1-ocsp';
export {
  id_rsaEncryption,
  id_RSASSA_PSS,
  id_sha256WithRSAEncryption,
  id_sha256,
  id_sha384,
  id_sha512,
  id_mgf1,
} from '@peculiar/asn1-rsa';
export { id_ecPublicKey, id_ecdsaWithSHA256, id_ecdsaWithSHA384, id_secp256r1, id_secp384r1 } from '@peculiar/asn1-ecc';

// RFC 5280 Appendix A.1 (id-at = 2.5.4): the naming attributes the CA puts in DNs.
export const id_at_commonName = '2.5.4.3';
export const id_at_surname = '2.5.4.4';
export const id_at_serialNumber = '2.5.4.5';
export const id_at_countryName = '2.5.4.6';
export const id_at_localityName = '2.5.4.7';
export const id_at_stateOrProvinceName = '2.5.4.8';
export const id_at_organizationName = '2.5.4.10';
export const id_at_organizationalUnitName = '2.5.4.11';
export const id_at_givenName = '2.5.4.42';

/**
 * Taiwan government PKI arc (2.16.886 = ITU-T country arc for Taiwan). The values come from
 * observed citizen certificates (domain.md); a deployment can configure others.
 */
/** Subject Directory Attributes attribute carrying the last four digits of the national ID. */
export const id_tw_gca_nationalIdLastFour = '2.16.886.1.100.2.51';
/** Subject Directory Attributes attribute carrying the subject type (unconfirmed in detail). */
export const id_tw_gca_subjectType = '2.16.886.1.100.2.1';
/** Government PKI certificate policy, assurance class 3 (unconfirmed, domain.md). */
export const id_tw_gpki_certpolicy_class3Assurance = '2.16.886.101.0.3.3';

/**
 * RFC 9336 §3.1 id-kp-documentSigning (id-kp 36): a general-purpose document-signing key purpose.
 * The audit checkpoint signer's certificate carries it so that its key is usable for signed
 * documents (checkpoints) and for nothing TLS, e-mail or code signing software would accept.
 */
export const id_kp_documentSigning = '1.3.6.1.5.5.7.3.36';
