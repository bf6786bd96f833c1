import { PkiError } from '@pki/kit';

/**
 * CRL partitioning, shared by the CA (which writes a certificate's partition into its
 * cRLDistributionPoints, RFC 5280 §4.2.1.13) and the CRL service (which publishes one CRL per
 * partition whose issuingDistributionPoint names the same URI, RFC 5280 §5.2.5). Both must compute
 * the same answer from the serial alone, forever: changing either function moves certificates to
 * other CRLs, so a CA generation's partition count is fixed when it starts issuing.
 */

/** Upper bound on partitions per CA generation: enough for tens of millions of certificates. */
export const MAX_CRL_PARTITIONS = 4096;

/**
 * The partition of a certificate: its serial number, as the non-negative integer RFC 5280 §4.1.2.2
 * makes it, modulo `count`. Serials are random (randomSerial), so partitions fill evenly; the
 * integer value (not a particular byte) is used so that any encoding of the same serial — the
 * DER content octets, hex with or without a leading 00 — lands in the same partition.
 *
 * @param serial the serial's content octets (big-endian, as in the certificate) or their hex.
 */
export function crlPartitionOf(serial: Uint8Array | string, count: number): number {
  const operation = 'compute CRL partition';
  assertPartitionCount(count, operation);
  const hex = typeof serial === 'string' ? serial : Buffer.from(serial).toString('hex');
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(hex)) throw new PkiError('INVALID_ARGUMENT', `${operation}: serial must be non-empty bytes or even-length hex`);
  // A positive INTEGER's content octets (the CA writes only positive serials, §4.1.2.2).
  if (Number.parseInt(hex.slice(0, 2), 16) & 0x80) throw new PkiError('INVALID_ARGUMENT', `${operation}: serial is negative`);
  return Number(BigInt(`0x${hex}`) % BigInt(count));
}

/**
 * Where partition `partition` of the CRL of the CA generation `issuerKeyId` is published:
 * `<baseUrl>/<issuerKeyId>/p<partition>.crl`. The key identifier (the issuing CA certificate's
 * subjectKeyIdentifier, lower-case hex) tells the generations apart, since they share one DN.
 */
export function crlPartitionUrl(baseUrl: string, issuerKeyId: string, partition: number): string {
  const operation = 'build CRL partition URL';
  checkedKeyId(issuerKeyId, operation);
  if (!Number.isInteger(partition) || partition < 0 || partition >= MAX_CRL_PARTITIONS) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: partition must be an integer from 0 to ${MAX_CRL_PARTITIONS - 1}`);
  }
  // RFC 5280 §4.2.1.13 / §8: CRLs are fetched over HTTP without TLS (which would need revocation
  // checking of its own); HTTPS is accepted for deployments that want it.
  return `${checkedBase(baseUrl, operation)}/${issuerKeyId}/p${partition}.crl`;
}

function assertPartitionCount(count: number, operation: string): void {
  if (!Number.isInteger(count) || count < 1 || count > MAX_CRL_PARTITIONS) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: partition count must be an integer from 1 to ${MAX_CRL_PARTITIONS}`);
  }
}

function checkedBase(baseUrl: string, operation: string): string {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: base URL is not an absolute URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new PkiError('INVALID_ARGUMENT', `${operation}: base URL must be http or https`);
  if (url.search !== '' || url.hash !== '') throw new PkiError('INVALID_ARGUMENT', `${operation}: base URL must not have a query or fragment`);
  return baseUrl.replace(/\/+$/, '');
}

function checkedKeyId(keyId: string, operation: string): string {
  if (!/^(?:[0-9a-f]{2}){1,64}$/.test(keyId)) throw new PkiError('INVALID_ARGUMENT', `${operation}: key identifier must be lower-case hex`);
  return keyId;
}

/**
 * Where the complete CRL of a CA generation (or the ARL of a root) is published:
 * `<baseUrl>/<keyId>.crl`, named by the CA certificate's subjectKeyIdentifier.
 */
export function fullCrlUrl(baseUrl: string, keyId: string): string {
  const operation = 'build CRL URL';
  return `${checkedBase(baseUrl, operation)}/${checkedKeyId(keyId, operation)}.crl`;
}

/** Where the latest delta CRL of a CA generation is published (its full CRL's freshestCRL). */
export function deltaCrlUrl(baseUrl: string, keyId: string): string {
  const operation = 'build delta CRL URL';
  return `${checkedBase(baseUrl, operation)}/${checkedKeyId(keyId, operation)}/delta.crl`;
}

/** The partition's name as CRL scopes and URLs spell it: `p<number>`. */
export function crlPartitionName(partition: number): string {
  if (!Number.isInteger(partition) || partition < 0 || partition >= MAX_CRL_PARTITIONS) {
    throw new PkiError('INVALID_ARGUMENT', `name CRL partition: partition must be an integer from 0 to ${MAX_CRL_PARTITIONS - 1}`);
  }
  return `p${partition}`;
}

/** The partition number of a name `p<number>` (no leading zeros), or undefined. */
export function parseCrlPartitionName(name: string): number | undefined {
  const match = /^p(0|[1-9][0-9]{0,3})$/.exec(name);
  if (!match) return undefined;
  const n = Number(match[1]);
  return n < MAX_CRL_PARTITIONS ? n : undefined;
}
