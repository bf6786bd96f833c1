import { AsnConvert } from '@peculiar/asn1-schema';
import {
  AuthorityKeyIdentifier,
  BaseCRLNumber,
  CertificateList,
  CRLNumber,
  CRLReason,
  CRLReasons,
  DistributionPointName,
  Extension,
  GeneralName,
  id_ce_authorityKeyIdentifier,
  id_ce_cRLNumber,
  id_ce_cRLReasons,
  id_ce_deltaCRLIndicator,
  id_ce_issuingDistributionPoint,
  IssuingDistributionPoint,
  KeyIdentifier,
  Name,
  RevokedCertificate,
  TBSCertList,
  Version,
} from '@peculiar/asn1-x509';
import { PkiError } from '@pki/kit';
import { timeOf } from './certificate';
import { toAsnExtension } from './extensions';
import { positiveInteger, toArrayBuffer } from './public-key';
import { signatureAlgorithmIdentifier, type SignatureAlgorithm } from './signature-algorithm';

export { CRLReasons };

/** One revoked certificate on a CRL (RFC 5280 §5.1.2.6). */
export interface CrlEntry {
  /** Serial number: the DER INTEGER content octets (positive). */
  serial: Uint8Array;
  revocationDate: Date;
  /** Omitted from the entry when undefined or unspecified (RFC 5280 §5.3.1 recommends that). */
  reason?: CRLReasons;
}

export interface TbsCertListSpec {
  signatureAlgorithm: SignatureAlgorithm;
  /** The issuer certificate's subject, byte for byte (RFC 5280 §5.1.2.3). */
  issuerDer: Uint8Array;
  /** The issuer's subjectKeyIdentifier: generations sharing one DN are told apart by it. */
  authorityKeyIdentifier: Uint8Array;
  thisUpdate: Date;
  nextUpdate: Date;
  /** cRLNumber (RFC 5280 §5.2.3). */
  crlNumber: number;
  /** Set for a delta CRL: the cRLNumber of its base CRL (§5.2.4). */
  deltaBaseCrlNumber?: number;
  /** For a partitioned CRL: the URI of this partition (issuingDistributionPoint, §5.2.5). */
  partitionUri?: string;
  entries: readonly CrlEntry[];
}

function extension(extnID: string, critical: boolean, value: object): Extension {
  return toAsnExtension({ extnID, critical, value: Buffer.from(AsnConvert.serialize(value)) });
}

function wholeSecond(date: Date, field: string, operation: string): void {
  if (Number.isNaN(date.getTime())) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} is not a valid date`);
  if (date.getUTCMilliseconds() !== 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} must be a whole second`);
}

/**
 * Builds the DER of a TBSCertList (RFC 5280 §5.1.2), version 2, with the CRL extensions a CA
 * must write: authorityKeyIdentifier and cRLNumber (§5.2.1, §5.2.3; non-critical), a critical
 * deltaCRLIndicator for a delta CRL (§5.2.4) and a critical issuingDistributionPoint for a
 * partition (§5.2.5). Entries are written in serial order so that the same input always gives
 * the same bytes.
 */
export function buildTbsCertList(spec: TbsCertListSpec): Buffer {
  const operation = 'build CRL';
  wholeSecond(spec.thisUpdate, 'thisUpdate', operation);
  wholeSecond(spec.nextUpdate, 'nextUpdate', operation);
  if (spec.nextUpdate <= spec.thisUpdate) throw new PkiError('INVALID_ARGUMENT', `${operation}: nextUpdate must be after thisUpdate`);
  for (const n of [spec.crlNumber, spec.deltaBaseCrlNumber]) {
    if (n !== undefined && (!Number.isSafeInteger(n) || n < 0)) throw new PkiError('INVALID_ARGUMENT', `${operation}: CRL numbers must be non-negative integers below 2^53`);
  }
  if (spec.deltaBaseCrlNumber !== undefined && spec.deltaBaseCrlNumber >= spec.crlNumber) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: a delta CRL's base number must be lower than its own number`);
  }
  let issuer: Name;
  try {
    issuer = AsnConvert.parse(spec.issuerDer, Name);
  } catch (err) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: issuer is not a DER Name`, { cause: err });
  }
  const seen = new Set<string>();
  const entries = [...spec.entries]
    .map((e) => {
      const serial = Buffer.from(e.serial);
      if (serial.length === 0 || serial.length > 20 || (serial[0]! & 0x80) !== 0) {
        throw new PkiError('INVALID_ARGUMENT', `${operation}: serial ${serial.toString('hex') || '(empty)'} is not a positive integer of at most 20 octets`);
      }
      const key = serial.toString('hex');
      if (seen.has(key)) throw new PkiError('INVALID_ARGUMENT', `${operation}: serial ${key} is listed twice`);
      seen.add(key);
      wholeSecond(e.revocationDate, `revocation date of ${key}`, operation);
      return { serial, entry: e };
    })
    .sort((a, b) => (a.serial.length - b.serial.length) || Buffer.compare(a.serial, b.serial))
    .map(({ serial, entry }) =>
      new RevokedCertificate({
        userCertificate: positiveInteger(serial),
        revocationDate: timeOf(entry.revocationDate),
        crlEntryExtensions:
          entry.reason === undefined || entry.reason === CRLReasons.unspecified ? undefined : [extension(id_ce_cRLReasons, false, new CRLReason(entry.reason))],
      }),
    );

  const extensions = [
    extension(id_ce_authorityKeyIdentifier, false, new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(toArrayBuffer(spec.authorityKeyIdentifier)) })),
    extension(id_ce_cRLNumber, false, new CRLNumber(spec.crlNumber)),
  ];
  if (spec.deltaBaseCrlNumber !== undefined) extensions.push(extension(id_ce_deltaCRLIndicator, true, new BaseCRLNumber(spec.deltaBaseCrlNumber)));
  if (spec.partitionUri !== undefined) {
    const idp = new IssuingDistributionPoint({
      distributionPoint: new DistributionPointName({ fullName: [new GeneralName({ uniformResourceIdentifier: spec.partitionUri })] }),
      // The citizen CA's CRLs list end-entity certificates only.
      onlyContainsUserCerts: true,
    });
    extensions.push(extension(id_ce_issuingDistributionPoint, true, idp));
  }
  const tbs = new TBSCertList({
    version: Version.v2,
    signature: signatureAlgorithmIdentifier(spec.signatureAlgorithm),
    issuer,
    thisUpdate: timeOf(spec.thisUpdate),
    nextUpdate: timeOf(spec.nextUpdate),
    revokedCertificates: entries.length > 0 ? entries : undefined,
    crlExtensions: extensions,
  });
  return Buffer.from(AsnConvert.serialize(tbs));
}

/** The CertificateList (RFC 5280 §5.1) from a TBSCertList and its signature; the TBS bytes are kept exactly. */
export function assembleCrl(tbsDer: Uint8Array, signatureAlgorithm: SignatureAlgorithm, signature: Uint8Array): Buffer {
  const operation = 'assemble CRL';
  const tbs = AsnConvert.parse(tbsDer, TBSCertList);
  if (signature.length === 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: signature is empty`);
  const der = Buffer.from(
    AsnConvert.serialize(new CertificateList({ tbsCertList: tbs, signatureAlgorithm: signatureAlgorithmIdentifier(signatureAlgorithm), signature: toArrayBuffer(signature) })),
  );
  const raw = AsnConvert.parse(der, CertificateList).tbsCertListRaw;
  if (raw === undefined || !Buffer.from(raw).equals(Buffer.from(tbsDer))) {
    throw new PkiError('INTERNAL', `${operation}: the signed TBS bytes do not re-encode identically`);
  }
  return der;
}
