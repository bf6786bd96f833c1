import { timestampDate } from '@bufbuild/protobuf/wkt';
import { PkiError } from '@pki/kit';
import type { ServiceClient } from '@pki/grpc';
import { raV1 } from '@pki/proto';
import { OFFICER_ROLES, type OfficerRole } from '../../domain/access';
import type { IssueCardCertificatesRequest, IssuedCardCertificates, IssuedCertificate, RegistrationAuthority } from '../../ports/registration-authority';

export type RaClient = Pick<ServiceClient<typeof raV1.RaService>, 'resolveOfficer' | 'issueCardCertificates' | 'changeCardStatus' | 'verifySubscriberCode' | 'issueMobileCertificate' | 'changeMobileCertificateStatus'>;

const MOBILE_OPERATION = { suspend: raV1.MobileCertificateOperation.SUSPEND, resume: raV1.MobileCertificateOperation.RESUME, revoke: raV1.MobileCertificateOperation.REVOKE } as const;
const OPERATION = { activate: raV1.CardStatusOperation.ACTIVATE, suspend: raV1.CardStatusOperation.SUSPEND, resume: raV1.CardStatusOperation.RESUME } as const;

/** ra over gRPC (mTLS, allow-listed for card-mgmt), in the domain's terms; ra's refusals keep their code and message. */
export class GrpcRegistrationAuthority implements RegistrationAuthority {
  constructor(
    private readonly client: RaClient,
    private readonly deadlineMs: number,
  ) {}

  #deadline(): { deadline: Date } {
    return { deadline: new Date(Date.now() + this.deadlineMs) };
  }

  async resolveOfficer(certificateSha256: string): Promise<{ id: string; office: string; role: OfficerRole } | undefined> {
    try {
      const r = await named(this.client.resolveOfficer({ certificateSha256 }, this.#deadline()));
      if (!(OFFICER_ROLES as readonly string[]).includes(r.role)) return undefined;
      return { id: r.officerId, office: r.office, role: r.role as OfficerRole };
    } catch (err) {
      if (err instanceof PkiError && err.code === 'UNAUTHENTICATED') return undefined;
      throw err;
    }
  }

  async issueCardCertificates(request: IssueCardCertificatesRequest): Promise<IssuedCardCertificates> {
    const r = await named(this.client.issueCardCertificates({ ...request, replacesCard: request.replacesCard ?? '' }, this.#deadline()));
    return {
      applicationId: r.applicationId,
      subjectSerialNumber: r.subjectSerialNumber,
      certificates: r.certificates.map((c) => ({
        serialHex: c.serialHex,
        keySlot: c.keySlot as 'SIGN' | 'KEYX',
        certificateDer: Buffer.from(c.certificate),
        chainDer: c.chain.map((d) => Buffer.from(d)),
        notAfter: timestampDate(c.notAfter!),
      })),
    };
  }

  async changeCardStatus(request: { officerCertificateSha256?: string; subscriberCode?: string; idempotencyKey: string; cardNumber: string; operation: 'activate' | 'suspend' | 'resume' }): Promise<{ changedSerials: string[] }> {
    const r = await named(
      this.client.changeCardStatus(
        { officerCertificateSha256: request.officerCertificateSha256 ?? '', subscriberCode: request.subscriberCode ?? '', idempotencyKey: request.idempotencyKey, cardNumber: request.cardNumber, operation: OPERATION[request.operation] },
        this.#deadline(),
      ),
    );
    return { changedSerials: r.changedSerials };
  }

  async issueMobileCertificate(request: { cardNumber: string; deviceId: string; publicKeySpki: Buffer }): Promise<IssuedCertificate> {
    const r = await named(this.client.issueMobileCertificate(request, this.#deadline()));
    const c = r.certificate!;
    return { serialHex: c.serialHex, keySlot: 'MOBILE', certificateDer: Buffer.from(c.certificate), chainDer: c.chain.map((d) => Buffer.from(d)), notAfter: timestampDate(c.notAfter!) };
  }

  async changeMobileCertificateStatus(request: { officerCertificateSha256: string; idempotencyKey: string; serialHex: string; operation: 'suspend' | 'resume' | 'revoke'; reason?: string }): Promise<void> {
    await named(this.client.changeMobileCertificateStatus({ ...request, reason: request.reason ?? '', operation: MOBILE_OPERATION[request.operation] }, this.#deadline()));
  }

  async verifySubscriberCode(request: { cardNumber: string; subscriberCode: string; purpose: string }): Promise<{ subscriberId: string }> {
    return named(this.client.verifySubscriberCode(request, this.#deadline()));
  }
}

/** ra unreachable: the caller answers 503 naming ra, never its address or the transport's message. */
async function named<T>(call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (err) {
    if (err instanceof PkiError && (err.code === 'UNAVAILABLE' || err.code === 'DEADLINE_EXCEEDED')) {
      throw new PkiError(err.code, 'ra is unavailable', { cause: err, details: { dependency: 'ra' } });
    }
    throw err;
  }
}
