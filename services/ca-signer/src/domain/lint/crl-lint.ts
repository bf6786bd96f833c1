import {
  CRLReasons,
  decodeAuthorityKeyIdentifierValue,
  decodeIssuingDistributionPointValue,
  decodeTbsCertList,
  type DecodedCrlEntry,
  type DecodedTbsCertList,
  type ParsedCertificate,
  signatureAlgorithmIdentifierDer,
  type SignatureAlgorithm,
} from '@pki/x509';
import { type LintFinding, type LintResult, sha256Hex } from './lint-result';

/**
 * The pre-signing lint of a CRL, like the pre-issuance lint of certificates: it decodes what the
 * signer built with the schema layer (code independent of the writer in @pki/x509) and checks it
 * against RFC 5280 §5 and the issuing generation. The frame (everything but the entries) is
 * linted whole; entries are linted one by one as they stream past ({@link CrlEntryLinter}), since a
 * complete CRL of a national CA is never held in memory.
 */
// RFC 5280 §5.2 and X.509 §9.6.2.10 extension identifiers.
const id_ce_authorityKeyIdentifier = '2.5.29.35';
const id_ce_cRLNumber = '2.5.29.20';
const id_ce_deltaCRLIndicator = '2.5.29.27';
const id_ce_issuingDistributionPoint = '2.5.29.28';
const id_ce_freshestCRL = '2.5.29.46';
const id_ce_expiredCertsOnCRL = '2.5.29.60';

export interface CrlLintContext {
  /** The CA certificate the CRL is signed under. */
  issuer: ParsedCertificate;
  signatureAlgorithm: SignatureAlgorithm;
  /** The URI the issuingDistributionPoint must name (a partition or an ARL), or none. */
  distributionPointUri?: string;
  /** ARL: CA certificates only; otherwise end-entity certificates only (when an IDP is present). */
  authorityRevocationList: boolean;
  delta: boolean;
  now: Date;
  /** How far thisUpdate may be from `now`. */
  allowedClockSkewSeconds: number;
}

/** Lints the TBSCertList of a CRL without its entries (the frame the entries stream into). */
export function lintCrlFrame(tbsWithoutEntries: Uint8Array, context: CrlLintContext): LintResult {
  const errors: LintFinding[] = [];
  const warnings: LintFinding[] = [];
  const error = (code: string, message: string) => errors.push({ code, message });
  let tbs: DecodedTbsCertList;
  try {
    tbs = decodeTbsCertList(tbsWithoutEntries, 'lint CRL');
  } catch (err) {
    return { errors: [{ code: 'e_crl_not_der', message: `the TBSCertList does not decode: ${(err as Error).message}` }], warnings, tbsSha256: sha256Hex(tbsWithoutEntries) };
  }
  // §5.1.2.1: version 2 whenever extensions are present (they always are: AKI and cRLNumber).
  if (tbs.version !== 1) error('e_crl_version_not_v2', 'version must be v2');
  if (!tbs.signatureDer.equals(signatureAlgorithmIdentifierDer(context.signatureAlgorithm))) {
    error('e_crl_signature_algorithm_mismatch', `signature algorithm is not the issuer key's ${context.signatureAlgorithm}`);
  }
  // §5.1.2.3: the issuer field is the issuing CA's subject, byte for byte (path validation compares them).
  if (!tbs.issuerDer.equals(context.issuer.subjectDer)) error('e_crl_issuer_mismatch', "issuer is not the CA certificate's subject");
  const thisUpdate = tbs.thisUpdate.getTime();
  const nextUpdate = tbs.nextUpdate?.getTime();
  // §5.1.2.5: conforming CAs MUST include nextUpdate.
  if (nextUpdate === undefined) error('e_crl_next_update_missing', 'nextUpdate must be present');
  else {
    if (nextUpdate <= thisUpdate) error('e_crl_next_update_not_after_this_update', 'nextUpdate must be after thisUpdate');
    if (nextUpdate > context.issuer.notAfter.getTime()) error('e_crl_next_update_after_issuer_expiry', 'nextUpdate must not be after the CA certificate expires');
  }
  if (Math.abs(thisUpdate - context.now.getTime()) > context.allowedClockSkewSeconds * 1000) error('e_crl_this_update_not_now', 'thisUpdate is not the current time');
  if (thisUpdate < context.issuer.notBefore.getTime()) error('e_crl_this_update_before_issuer_validity', 'thisUpdate is before the CA certificate is valid');

  const extensions = new Map<string, { critical: boolean; value: Buffer }>();
  for (const ext of tbs.extensions) {
    if (extensions.has(ext.oid)) error('e_crl_extension_repeated', `extension ${ext.oid} appears twice`);
    extensions.set(ext.oid, { critical: ext.critical, value: ext.value });
  }
  // §5.2.1 AKI, §5.2.3 cRLNumber: MUST be present, non-critical.
  const aki = extensions.get(id_ce_authorityKeyIdentifier);
  if (!aki) error('e_crl_authority_key_identifier_missing', 'authorityKeyIdentifier must be present');
  else {
    if (aki.critical) error('e_crl_authority_key_identifier_critical', 'authorityKeyIdentifier must not be critical');
    const keyId = decodeAuthorityKeyIdentifierValue(aki.value);
    if (!keyId || !context.issuer.subjectKeyIdentifier || !keyId.equals(context.issuer.subjectKeyIdentifier)) {
      error('e_crl_authority_key_identifier_mismatch', "authorityKeyIdentifier is not the CA certificate's subjectKeyIdentifier");
    }
  }
  const number = extensions.get(id_ce_cRLNumber);
  if (!number) error('e_crl_number_missing', 'cRLNumber must be present');
  else {
    if (number.critical) error('e_crl_number_critical', 'cRLNumber must not be critical');
    // The INTEGER's content octets: the value less its two header octets (short form below 128).
    if (number.value.byteLength - 2 > 20) error('e_crl_number_too_long', 'cRLNumber must fit in 20 octets');
  }
  // §5.2.4: a delta CRL's deltaCRLIndicator is critical; §5.2.6: freshestCRL never in a delta.
  const delta = extensions.get(id_ce_deltaCRLIndicator);
  if (context.delta !== (delta !== undefined)) error('e_crl_delta_indicator_unexpected', context.delta ? 'a delta CRL must carry deltaCRLIndicator' : 'only a delta CRL carries deltaCRLIndicator');
  if (delta && !delta.critical) error('e_crl_delta_indicator_not_critical', 'deltaCRLIndicator must be critical');
  const freshest = extensions.get(id_ce_freshestCRL);
  if (freshest && delta) error('e_crl_delta_with_freshest_crl', 'a delta CRL must not carry freshestCRL');
  if (freshest?.critical) error('e_crl_freshest_crl_critical', 'freshestCRL must not be critical');
  // §5.2.5: issuingDistributionPoint is critical, and names where this CRL is published.
  const idp = extensions.get(id_ce_issuingDistributionPoint);
  if ((idp !== undefined) !== (context.distributionPointUri !== undefined)) {
    error('e_crl_issuing_distribution_point_unexpected', context.distributionPointUri ? 'a partition or ARL must carry issuingDistributionPoint' : 'a complete CRL carries no issuingDistributionPoint');
  }
  if (idp) {
    if (!idp.critical) error('e_crl_issuing_distribution_point_not_critical', 'issuingDistributionPoint must be critical');
    const value = decodeIssuingDistributionPointValue(idp.value);
    const uris = value.uris;
    if (uris.length !== 1 || uris[0] !== context.distributionPointUri) error('e_crl_issuing_distribution_point_uri_mismatch', 'issuingDistributionPoint must name exactly the URI the CRL is published at');
    if (context.authorityRevocationList ? !value.onlyContainsCaCerts || value.onlyContainsUserCerts : !value.onlyContainsUserCerts || value.onlyContainsCaCerts) {
      error('e_crl_issuing_distribution_point_scope', context.authorityRevocationList ? 'an ARL must say onlyContainsCACerts' : 'a partition must say onlyContainsUserCerts');
    }
    if (value.unsupported) error('e_crl_issuing_distribution_point_unsupported', 'indirect, attribute-certificate and reason-partitioned CRLs are not issued');
  }
  const known = new Set([id_ce_authorityKeyIdentifier, id_ce_cRLNumber, id_ce_deltaCRLIndicator, id_ce_freshestCRL, id_ce_issuingDistributionPoint, id_ce_expiredCertsOnCRL]);
  for (const [oid, ext] of extensions) if (!known.has(oid)) (ext.critical ? errors : warnings).push({ code: ext.critical ? 'e_crl_unknown_critical_extension' : 'w_crl_unknown_extension', message: `extension ${oid} is not one this CA writes` });
  if (tbs.entryCount > 0) error('e_crl_frame_has_entries', 'the frame must not hold entries');
  return { errors, warnings, tbsSha256: sha256Hex(tbsWithoutEntries) };
}

/**
 * Checks entries in the order they stream past, in constant memory: ascending serials (which also
 * rules out duplicates), reasons a CRL of this kind may carry, and dates. Entries that break a
 * rule are the caller's fault: {@link check} returns the reason for an INVALID_ARGUMENT.
 */
export class CrlEntryLinter {
  readonly #delta: boolean;
  readonly #authorityRevocationList: boolean;
  readonly #thisUpdate: number;
  #previous: Buffer | undefined;

  constructor(options: { delta: boolean; authorityRevocationList: boolean; thisUpdate: Date }) {
    this.#delta = options.delta;
    this.#authorityRevocationList = options.authorityRevocationList;
    this.#thisUpdate = options.thisUpdate.getTime() / 1000;
  }

  check(entry: DecodedCrlEntry): string | undefined {
    const previous = this.#previous;
    const serial = entry.serial;
    if (previous !== undefined && (previous.length > serial.length || (previous.length === serial.length && Buffer.compare(previous, serial) >= 0))) {
      return `serial ${serial.toString('hex')} is not above the previous one (${previous.toString('hex')}): entries must be unique and in ascending serial order`;
    }
    this.#previous = serial;
    // RFC 5280 §5.3.1: removeFromCRL only in delta CRLs.
    if (entry.reason === CRLReasons.removeFromCRL && !this.#delta) return `removeFromCRL (${serial.toString('hex')}) is only allowed on a delta CRL`;
    if (this.#authorityRevocationList && entry.reason === CRLReasons.certificateHold) return `an ARL does not suspend CA certificates (${serial.toString('hex')})`;
    if (entry.revocationDate > this.#thisUpdate) return `revocation date of ${serial.toString('hex')} is after thisUpdate`;
    // §5.3.2: the invalidity date is when the key was compromised: not after the revocation.
    if (entry.invalidityDate !== undefined && entry.invalidityDate > entry.revocationDate) return `invalidity date of ${serial.toString('hex')} is after its revocation date`;
    return undefined;
  }
}
