/** What ra needs of ca-signer, in the domain's terms (adapters/grpc wraps the gRPC client). */
export type CitizenProfile = 'citizen-signature' | 'citizen-encryption' | 'citizen-mobile';
/** Profiles ra asks ca-signer for: the citizen's, and agency application systems' client certificates. */
export type IssuableProfile = CitizenProfile | 'agency-client';

export interface IssueRequest {
  /** Unique per intended certificate: `ra/<application id>/<SIGN|KEYX>`, `ra/agency/<system id>/<request id>`. */
  idempotencyKey: string;
  profile: IssuableProfile;
  publicKeySpki: Buffer;
  subject: Array<{ type: 'C' | 'O' | 'OU' | 'CN' | 'serialNumber'; value: string }>;
  nationalIdLastFour?: string;
  email?: string;
  notAfter?: Date;
}

export interface SignedCertificate {
  serialHex: string;
  issuerKeyId: string;
  certificateDer: Buffer;
  notBefore: Date;
  notAfter: Date;
}

export interface IssuanceEntry {
  idempotencyKey: string;
  profile: string;
  serialHex: string;
  issuerKeyId: string;
  state: 'RESERVED' | 'ISSUED';
  certificateDer?: Buffer;
  notBefore: Date;
  notAfter: Date;
  reservedAt: Date;
}

export interface IssuerGeneration {
  keyId: string;
  certificateDer: Buffer;
  active: boolean;
}

export interface CertificateSigner {
  issue(request: IssueRequest, deadline?: Date): Promise<SignedCertificate>;
  /**
   * Several certificates in one call (a card's pair), each as `issue` makes it, answered in request
   * order. If one fails the call fails; the others are kept, and a retry with the same keys answers
   * them again.
   */
  issueMany(requests: readonly IssueRequest[], deadline?: Date): Promise<SignedCertificate[]>;
  /** ra's own issuances at ca-signer, oldest first. */
  listIssuances(pageToken: string, pageSize: number): Promise<{ issuances: IssuanceEntry[]; nextPageToken: string }>;
  /** The issuing CA generations and the chain above them (root first), with each root's ARL. */
  issuers(): Promise<{ issuers: IssuerGeneration[]; chain: Buffer[]; roots?: RootCa[] }>;
  /** Signs a certificate validation receipt with the validation receipt key. */
  signValidationReceipt(receipt: Buffer): Promise<{ signature: Buffer; signerCertificateDer: Buffer; signatureAlgorithm: string }>;
}

export interface RootCa {
  keyId: string;
  certificateDer: Buffer;
  /** The root's latest authority revocation list (DER), if a ceremony signed one. */
  authorityRevocationListDer?: Buffer;
}

/** Named points of the issuance where tests kill the process (crash consistency); no-ops in production. */
export interface FaultPoints {
  reach(point: 'issuance.before-signer' | 'issuance.after-signature' | 'issuance.before-commit'): void;
}

export const NO_FAULTS: FaultPoints = { reach: () => undefined };
