import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { PkiError } from '@pki/kit';
import type { ServiceHandlers } from '@pki/grpc';
import { eventsV1, raV1 } from '@pki/proto';
import type { CertificateRecord, CardRecord } from '../domain/model';
import type { RegistryReads } from '../ports/registry';
import { CARD_NUMBER } from '../domain/issuance';

const STATUS: Record<CertificateRecord['status'], eventsV1.CertificateStatus> = {
  VALID: eventsV1.CertificateStatus.VALID,
  SUSPENDED: eventsV1.CertificateStatus.SUSPENDED,
  REVOKED: eventsV1.CertificateStatus.REVOKED,
};
const REASON: Record<string, eventsV1.RevocationReason> = {
  unspecified: eventsV1.RevocationReason.UNSPECIFIED,
  keyCompromise: eventsV1.RevocationReason.KEY_COMPROMISE,
  cACompromise: eventsV1.RevocationReason.CA_COMPROMISE,
  affiliationChanged: eventsV1.RevocationReason.AFFILIATION_CHANGED,
  superseded: eventsV1.RevocationReason.SUPERSEDED,
  cessationOfOperation: eventsV1.RevocationReason.CESSATION_OF_OPERATION,
  certificateHold: eventsV1.RevocationReason.CERTIFICATE_HOLD,
  removeFromCRL: eventsV1.RevocationReason.REMOVE_FROM_CRL,
  privilegeWithdrawn: eventsV1.RevocationReason.PRIVILEGE_WITHDRAWN,
};
const CARD_STATUS: Record<CardRecord['status'], raV1.CardStatus> = {
  ISSUED: raV1.CardStatus.ISSUED,
  ACTIVE: raV1.CardStatus.ACTIVE,
  SUSPENDED: raV1.CardStatus.SUSPENDED,
  REVOKED: raV1.CardStatus.REVOKED,
};

function statusOf(c: CertificateRecord): eventsV1.CertificateStatusChanged {
  const ts = (d: Date | undefined) => (d ? timestampFromDate(d) : undefined);
  return create(eventsV1.CertificateStatusChangedSchema, {
    serialHex: c.serialHex,
    issuerKeyId: c.issuerKeyId,
    status: STATUS[c.status],
    changedAt: ts(c.updatedAt),
    notBefore: ts(c.notBefore),
    notAfter: ts(c.notAfter),
    revocationTime: ts(c.revocationTime),
    reason: c.reason ? REASON[c.reason] : eventsV1.RevocationReason.UNSPECIFIED,
    invalidityDate: ts(c.invalidityDate),
    profile: c.profile,
  });
}

function recordOf(c: CertificateRecord): raV1.CertificateRecord {
  return create(raV1.CertificateRecordSchema, { status: statusOf(c), cardNumber: c.cardNumber ?? '', keySlot: c.keySlot, certificate: c.certificateDer });
}

/** The gRPC face of the registry for other services: translation only, no personal data. */
export function raServiceHandlers(reads: RegistryReads, clock: { now(): Date }): Pick<ServiceHandlers<typeof raV1.RaService>, 'getCertificate' | 'listCertificateStatuses' | 'getCard'> {
  return {
    getCertificate: async (request) => {
      const serial = request.serialHex.toLowerCase();
      if (!/^[0-9a-f]{1,40}$/.test(serial)) throw new PkiError('INVALID_ARGUMENT', 'get certificate: serial_hex must be hex of at most 20 octets');
      const certificate = await reads.getCertificate(serial);
      if (!certificate) throw new PkiError('NOT_FOUND', `get certificate: no certificate with serial ${serial}`);
      return { certificate: recordOf(certificate) };
    },

    listCertificateStatuses: async (request) => {
      const size = request.pageSize === 0 ? 1000 : request.pageSize;
      if (size < 1 || size > 5000) throw new PkiError('INVALID_ARGUMENT', 'list certificate statuses: page_size must be 1-5000');
      if (request.issuerKeyId !== '' && !/^[0-9a-f]{2,128}$/.test(request.issuerKeyId)) throw new PkiError('INVALID_ARGUMENT', 'list certificate statuses: issuer_key_id must be lower-case hex');
      const readAt = clock.now();
      const page = await reads.listStatuses({ ...(request.pageToken ? { pageToken: request.pageToken } : {}), limit: size }, request.issuerKeyId || undefined);
      return { statuses: page.items.map(statusOf), nextPageToken: page.nextPageToken ?? '', readAt: timestampFromDate(readAt) };
    },

    getCard: async (request) => {
      if (!CARD_NUMBER.test(request.cardNumber)) throw new PkiError('INVALID_ARGUMENT', 'get card: card_number must be 8-20 upper-case letters and digits');
      const card = await reads.getCard(request.cardNumber);
      if (!card) throw new PkiError('NOT_FOUND', `get card: no card ${request.cardNumber}`);
      const certificates = await reads.certificatesOfCard(card.cardNumber);
      return {
        cardNumber: card.cardNumber,
        status: CARD_STATUS[card.status],
        subjectSerialNumber: card.subjectSerial,
        certificates: [...certificates].reverse().map(recordOf),
        ...(card.activatedAt ? { activatedAt: timestampFromDate(card.activatedAt) } : {}),
        extended: card.extended,
      };
    },
  };
}
