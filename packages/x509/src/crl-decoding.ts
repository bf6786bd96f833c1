import { AsnConvert } from '@peculiar/asn1-schema';
import { AuthorityKeyIdentifier, CertificateList, IssuingDistributionPoint, TBSCertList } from '@peculiar/asn1-x509';
import { PkiError } from '@pki/kit';

/**
 * A TBSCertList decoded by the schema layer, for the CA's pre-signing lint: code independent of
 * the writer in crl.ts, in plain values (the lint does not speak ASN.1 classes).
 */
export interface DecodedTbsCertList {
  /** 1 for v2 (RFC 5280 §5.1.2.1), undefined when absent. */
  version: number | undefined;
  signatureDer: Buffer;
  issuerDer: Buffer;
  thisUpdate: Date;
  nextUpdate: Date | undefined;
  entryCount: number;
  extensions: Array<{ oid: string; critical: boolean; value: Buffer }>;
}

export function decodeTbsCertList(der: Uint8Array, operation = 'decode CRL'): DecodedTbsCertList {
  let tbs: TBSCertList;
  try {
    tbs = AsnConvert.parse(der, TBSCertList);
  } catch (err) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: not a DER TBSCertList (${(err as Error).message})`, { cause: err });
  }
  return {
    version: tbs.version,
    signatureDer: Buffer.from(AsnConvert.serialize(tbs.signature)),
    issuerDer: Buffer.from(AsnConvert.serialize(tbs.issuer)),
    thisUpdate: tbs.thisUpdate.getTime(),
    nextUpdate: tbs.nextUpdate?.getTime(),
    entryCount: tbs.revokedCertificates?.length ?? 0,
    extensions: (tbs.crlExtensions ?? []).map((e) => ({ oid: e.extnID, critical: e.critical, value: Buffer.from(e.extnValue.buffer) })),
  };
}

/** The keyIdentifier of an AuthorityKeyIdentifier extension value, if any. */
export function decodeAuthorityKeyIdentifierValue(value: Uint8Array): Buffer | undefined {
  const keyId = AsnConvert.parse(value, AuthorityKeyIdentifier).keyIdentifier;
  return keyId ? Buffer.from(keyId.buffer) : undefined;
}

export interface DecodedIssuingDistributionPoint {
  uris: string[];
  onlyContainsUserCerts: boolean;
  onlyContainsCaCerts: boolean;
  /** indirectCRL, onlySomeReasons or onlyContainsAttributeCerts: kinds of CRL this CA does not issue. */
  unsupported: boolean;
}

export function decodeIssuingDistributionPointValue(value: Uint8Array): DecodedIssuingDistributionPoint {
  const idp = AsnConvert.parse(value, IssuingDistributionPoint);
  return {
    uris: (idp.distributionPoint?.fullName ?? []).map((n) => n.uniformResourceIdentifier ?? ''),
    onlyContainsUserCerts: idp.onlyContainsUserCerts === true,
    onlyContainsCaCerts: idp.onlyContainsCACerts === true,
    unsupported: idp.indirectCRL === true || idp.onlySomeReasons !== undefined || idp.onlyContainsAttributeCerts === true,
  };
}

/**
 * The serials (hex, lower case, as encoded) a small CRL lists, such as a root's authority
 * revocation list over its CA certificates. Reads the whole list into memory: not for the
 * citizen CRLs, which crl.ts streams.
 */
export function revokedSerialsOfCrl(der: Uint8Array, operation = 'read CRL'): string[] {
  let list: CertificateList;
  try {
    list = AsnConvert.parse(der, CertificateList);
  } catch (err) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: not a DER CertificateList (${(err as Error).message})`, { cause: err });
  }
  return (list.tbsCertList.revokedCertificates ?? []).map((entry) => Buffer.from(entry.userCertificate).toString('hex'));
}
