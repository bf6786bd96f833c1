import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { PkiError } from '@pki/kit';
import type { ServiceHandlers } from '@pki/grpc';
import { eventsV1, raV1 } from '@pki/proto';
import { fromPem } from '@pki/x509';
import type { Principal } from '../domain/access';
import type { RegistrationAuthority } from '../domain/registration-authority';
import type { Command } from '../domain/shared';
import type { PrincipalDirectory } from '../http/auth';
import type { RegistryReads } from '../ports/registry';

const SHA256_HEX = /^[0-9a-f]{64}$/;
const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{8,128}$/;

const CARD_STATUS: Record<string, raV1.CardStatus> = {
  ISSUED: raV1.CardStatus.ISSUED,
  ACTIVE: raV1.CardStatus.ACTIVE,
  SUSPENDED: raV1.CardStatus.SUSPENDED,
  REVOKED: raV1.CardStatus.REVOKED,
};

export interface CounterOperationDeps {
  ra: RegistrationAuthority;
  principals: PrincipalDirectory;
  reads: RegistryReads;
  /** Keyed hash of a request (the same as the REST API's idempotency fingerprints). */
  fingerprint: (data: string) => Buffer;
  /** The calling service's identity, for the audit records of code checks. */
  callerName: string;
}

type CounterRpcs = 'resolveOfficer' | 'issueCardCertificates' | 'changeCardStatus' | 'verifySubscriberCode' | 'issueMobileCertificate' | 'changeMobileCertificateStatus';

/**
 * The RPCs card-mgmt calls on behalf of the officer at its counter. The officer is named by the
 * SHA-256 of the client certificate they presented to card-mgmt; ra resolves it in its own
 * directory and runs the same use cases, with the same role and office checks and the same
 * idempotency, as its REST API (decision 0023). Only card-mgmt's identity is on these RPCs'
 * allow-lists.
 */
export function counterOperationHandlers(deps: CounterOperationDeps): Pick<ServiceHandlers<typeof raV1.RaService>, CounterRpcs> {
  const officer = async (sha256: string, operation: string): Promise<Extract<Principal, { kind: 'officer' }>> => {
    if (!SHA256_HEX.test(sha256)) throw new PkiError('INVALID_ARGUMENT', `${operation}: officer_certificate_sha256 must be 64 lower-case hex digits`);
    const record = await deps.principals.principalByCertificate(sha256);
    if (!record || record.status !== 'ACTIVE' || record.kind !== 'officer') throw new PkiError('UNAUTHENTICATED', `${operation}: the certificate is not registered to an active officer`);
    return { kind: 'officer', id: record.id, office: record.office!, role: record.role! };
  };
  const command = (principal: Principal, key: string, step: string, operation: string, request: Record<string, unknown>): Command => {
    if (!IDEMPOTENCY_KEY.test(key)) throw new PkiError('INVALID_ARGUMENT', `${operation}: idempotency_key must be 8-128 letters, digits, . _ : -`);
    // Namespaced so that a key card-mgmt chose never meets one the officer used on ra's REST API.
    return { principal, idempotencyKey: `card-mgmt:${key}:${step}`, fingerprint: deps.fingerprint(`${operation}\n${JSON.stringify(request)}`) };
  };

  return {
    resolveOfficer: async (request) => {
      const principal = await officer(request.certificateSha256, 'resolve officer');
      return { officerId: principal.id, office: principal.office, role: principal.role };
    },

    issueCardCertificates: async (request) => {
      const operation = 'issue card certificates';
      const principal = await officer(request.officerCertificateSha256, operation);
      if (request.kind !== 'NEW' && request.kind !== 'REPLACEMENT') throw new PkiError('INVALID_ARGUMENT', `${operation}: kind must be NEW or REPLACEMENT`);
      const body = {
        subscriberId: request.subscriberId,
        cardNumber: request.cardNumber,
        kind: request.kind,
        ...(request.replacesCard ? { replacesCard: request.replacesCard } : {}),
        signingCsr: request.signingCsr,
        encryptionCsr: request.encryptionCsr,
      } as const;
      const application = await deps.ra.issuance.createApplication(command(principal, request.idempotencyKey, 'application', operation, body), body);
      const issued = await deps.ra.issuance.approve(command(principal, request.idempotencyKey, 'approval', operation, { applicationId: application.id }), application.id);
      const current = issued.card.certificates.filter((c) => c.status !== 'REVOKED').slice(0, 2);
      return {
        applicationId: application.id,
        subjectSerialNumber: issued.card.subjectSerialNumber,
        certificates: current.map((c) => ({
          serialHex: c.serialHex,
          keySlot: c.keySlot,
          certificate: fromPem(c.certificate, 'CERTIFICATE'),
          chain: (c.chain ?? []).map((pem) => fromPem(pem, 'CERTIFICATE')),
          notAfter: timestampFromDate(new Date(c.notAfter)),
        })),
      };
    },

    changeCardStatus: async (request) => {
      const operationName = { [raV1.CardStatusOperation.ACTIVATE]: 'activate', [raV1.CardStatusOperation.SUSPEND]: 'suspend', [raV1.CardStatusOperation.RESUME]: 'resume' }[request.operation as number] as
        | 'activate'
        | 'suspend'
        | 'resume'
        | undefined;
      if (!operationName) throw new PkiError('INVALID_ARGUMENT', 'change card status: operation must be ACTIVATE, SUSPEND or RESUME');
      const operation = `${operationName} card`;
      const before = await deps.reads.certificatesOfCard(request.cardNumber);
      let card;
      if (request.officerCertificateSha256 === '' && request.subscriberCode !== '') {
        // The citizen's own request, relayed by card-mgmt: ra's self-service, code and lock included.
        const citizen = command({ kind: 'citizen' }, request.idempotencyKey, operationName, `self-service ${operationName}`, { cardNumber: request.cardNumber, code: deps.fingerprint(request.subscriberCode).toString('hex') });
        card = await deps.ra.cards.bySelfService(citizen, operationName, request.cardNumber, request.subscriberCode);
      } else {
        const principal = await officer(request.officerCertificateSha256, operation);
        card = await deps.ra.cards.byOfficer(command(principal, request.idempotencyKey, operationName, operation, { cardNumber: request.cardNumber }), request.cardNumber, operationName);
      }
      const changed = card.certificates.filter((c) => before.find((b) => b.serialHex === c.serialHex)?.status !== c.status).map((c) => c.serialHex);
      return { status: CARD_STATUS[card.status] ?? raV1.CardStatus.UNSPECIFIED, changedSerials: changed };
    },

    issueMobileCertificate: async (request) => {
      const c = await deps.ra.mobile.issue({ cardNumber: request.cardNumber, deviceId: request.deviceId, publicKeySpki: Buffer.from(request.publicKeySpki) });
      const der = fromPem(c.certificate, 'CERTIFICATE');
      const issuer = (await deps.ra.queries.issuers()).find((i) => i.keyId === c.issuerKeyId);
      return {
        certificate: {
          serialHex: c.serialHex,
          keySlot: c.keySlot,
          certificate: der,
          chain: (issuer?.chainPem ?? []).map((pem) => fromPem(pem, 'CERTIFICATE')),
          notAfter: timestampFromDate(new Date(c.notAfter)),
        },
      };
    },

    changeMobileCertificateStatus: async (request) => {
      const op = { [raV1.MobileCertificateOperation.SUSPEND]: 'suspend', [raV1.MobileCertificateOperation.RESUME]: 'resume', [raV1.MobileCertificateOperation.REVOKE]: 'revoke' }[request.operation as number] as
        | 'suspend'
        | 'resume'
        | 'revoke'
        | undefined;
      if (!op) throw new PkiError('INVALID_ARGUMENT', 'change mobile certificate status: operation must be SUSPEND, RESUME or REVOKE');
      const operation = `${op} mobile certificate`;
      const serial = request.serialHex.toLowerCase();
      if (!/^[0-9a-f]{1,40}$/.test(serial)) throw new PkiError('INVALID_ARGUMENT', `${operation}: serial_hex must be hex of at most 20 octets`);
      const principal = await officer(request.officerCertificateSha256, operation);
      const view = await deps.ra.mobile.changeStatus(command(principal, request.idempotencyKey, op, operation, { serial, reason: request.reason }), serial, op, request.reason || undefined);
      return { status: { VALID: eventsV1.CertificateStatus.VALID, SUSPENDED: eventsV1.CertificateStatus.SUSPENDED, REVOKED: eventsV1.CertificateStatus.REVOKED }[view.status] };
    },

    verifySubscriberCode: async (request) => {
      if (!/^[a-z][a-z-]{0,31}$/.test(request.purpose)) throw new PkiError('INVALID_ARGUMENT', 'verify subscriber code: purpose must be 1-32 lower-case letters and -');
      return deps.ra.cards.confirmSubscriberCode(request.cardNumber, request.subscriberCode, request.purpose, deps.callerName);
    },
  };
}
