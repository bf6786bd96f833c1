import { timestampDate } from '@bufbuild/protobuf/wkt';
import { eventsV1 } from '@pki/proto';
import { CRLReasons, crlPartitionOf, encodeRevokedCertificate } from '@pki/x509';

/** What a status event means for the CRLs of the certificate's generation. */
export type RevocationChange =
  | {
      kind: 'listed';
      issuerKeyId: string;
      serial: Buffer;
      status: 'SUSPENDED' | 'REVOKED';
      revocationTime: Date;
      reason: CRLReasons;
      invalidityDate?: Date;
      notAfter: Date;
      changedAt: Date;
      /** The RevokedCertificate DER the CRLs carry while listed. */
      entryDer: Buffer;
    }
  /** Resumed (or otherwise VALID again): off the CRLs; the next delta says removeFromCRL. */
  | { kind: 'unlisted'; issuerKeyId: string; serial: Buffer; notAfter: Date; changedAt: Date }
  /** Issuance (VALID, no previous status): nothing for the CRLs. */
  | { kind: 'ignored'; why: string }
  /** An event the CRLs cannot represent: logged and counted, never retried (it would fail again). */
  | { kind: 'rejected'; why: string };

const { CertificateStatus, RevocationReason } = eventsV1;

const wholeSecond = (date: Date) => new Date(Math.floor(date.getTime() / 1000) * 1000);

/**
 * Maps a CertificateStatusChanged event (producer ra) to its CRL effect. Suspension is listed
 * with certificateHold (RFC 5280 §5.3.1), revocation with the reason recorded (unspecified is
 * left out of the entry, §5.3.1), resumption removes the entry (the next delta says removeFromCRL).
 * Times are cut to whole seconds: CRL times have no fractions (§5.1.2.4).
 */
export function revocationChangeOf(event: eventsV1.CertificateStatusChanged): RevocationChange {
  if (!/^(?:[0-9a-f]{2}){1,20}$/.test(event.serialHex) || Number.parseInt(event.serialHex.slice(0, 2), 16) & 0x80) {
    return { kind: 'rejected', why: `serial '${event.serialHex.slice(0, 48)}' is not a positive serial in lower-case hex` };
  }
  if (!/^(?:[0-9a-f]{2}){1,64}$/.test(event.issuerKeyId)) return { kind: 'rejected', why: 'issuer_key_id is not lower-case hex' };
  if (!event.notAfter || !event.changedAt) return { kind: 'rejected', why: 'not_after and changed_at are required' };
  const serial = Buffer.from(event.serialHex, 'hex');
  if (serial[0] === 0 && (serial.length === 1 || (serial[1]! & 0x80) === 0)) return { kind: 'rejected', why: 'serial is not minimally encoded' };
  const notAfter = timestampDate(event.notAfter);
  const changedAt = timestampDate(event.changedAt);
  const base = { issuerKeyId: event.issuerKeyId, serial, notAfter, changedAt };
  switch (event.status) {
    case CertificateStatus.VALID:
      return event.previousStatus === CertificateStatus.UNSPECIFIED || event.previousStatus === CertificateStatus.VALID
        ? { kind: 'ignored', why: 'issuance: not on any CRL' }
        : { kind: 'unlisted', ...base };
    case CertificateStatus.SUSPENDED:
    case CertificateStatus.REVOKED: {
      const suspended = event.status === CertificateStatus.SUSPENDED;
      if (!event.revocationTime) return { kind: 'rejected', why: 'revocation_time is required for SUSPENDED and REVOKED' };
      const reason = suspended ? CRLReasons.certificateHold : (event.reason as number as CRLReasons);
      if (!suspended && (event.reason === RevocationReason.REMOVE_FROM_CRL || !(event.reason in RevocationReason))) {
        return { kind: 'rejected', why: `reason ${event.reason} cannot revoke a certificate` };
      }
      const revocationTime = wholeSecond(timestampDate(event.revocationTime));
      const invalidityDate = event.invalidityDate ? wholeSecond(timestampDate(event.invalidityDate)) : undefined;
      if (revocationTime.getUTCFullYear() < 1950 || (invalidityDate && invalidityDate > revocationTime)) {
        return { kind: 'rejected', why: 'revocation_time or invalidity_date out of range (an invalidity date is not after the revocation)' };
      }
      const entryDer = encodeRevokedCertificate({ serial, revocationDate: revocationTime, reason, ...(invalidityDate ? { invalidityDate } : {}) });
      return { kind: 'listed', ...base, status: suspended ? 'SUSPENDED' : 'REVOKED', revocationTime, reason, ...(invalidityDate ? { invalidityDate } : {}), entryDer };
    }
    default:
      return { kind: 'rejected', why: `unknown status ${event.status}` };
  }
}

/** The partition of a serial in a generation of `partitions` partitions (fixed at issuance). */
export function partitionOf(serial: Buffer, partitions: number): number {
  return crlPartitionOf(serial, partitions);
}
