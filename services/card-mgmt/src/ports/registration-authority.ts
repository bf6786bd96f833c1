import type { OfficerRole } from '../domain/access';

/**
 * What card-mgmt needs from ra (pki.ra.v1.RaService over mTLS): the officer directory, issuance of
 * a card's certificates, card status changes and the subscriber-code check. The officer acting is
 * always named by their certificate's SHA-256, so that ra authorises them itself.
 */
export interface RegistrationAuthority {
  resolveOfficer(certificateSha256: string): Promise<{ id: string; office: string; role: OfficerRole } | undefined>;
  issueCardCertificates(request: IssueCardCertificatesRequest): Promise<IssuedCardCertificates>;
  /** For an officer (officerCertificateSha256), or for the citizen themselves (subscriberCode). */
  changeCardStatus(request: { officerCertificateSha256?: string; subscriberCode?: string; idempotencyKey: string; cardNumber: string; operation: 'activate' | 'suspend' | 'resume' }): Promise<{ changedSerials: string[] }>;
  verifySubscriberCode(request: { cardNumber: string; subscriberCode: string; purpose: string }): Promise<{ subscriberId: string }>;
  issueMobileCertificate(request: { cardNumber: string; deviceId: string; publicKeySpki: Buffer }): Promise<IssuedCertificate>;
  changeMobileCertificateStatus(request: { officerCertificateSha256: string; idempotencyKey: string; serialHex: string; operation: 'suspend' | 'resume' | 'revoke'; reason?: string }): Promise<void>;
}

export interface IssueCardCertificatesRequest {
  officerCertificateSha256: string;
  idempotencyKey: string;
  subscriberId: string;
  cardNumber: string;
  kind: 'NEW' | 'REPLACEMENT';
  replacesCard?: string;
  signingCsr: string;
  encryptionCsr: string;
}

export interface IssuedCertificate {
  serialHex: string;
  keySlot: 'SIGN' | 'KEYX' | 'MOBILE';
  certificateDer: Buffer;
  chainDer: Buffer[];
  notAfter: Date;
}

export interface IssuedCardCertificates {
  applicationId: string;
  subjectSerialNumber: string;
  certificates: IssuedCertificate[];
}
