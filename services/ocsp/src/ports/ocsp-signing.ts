import type { CertIdHash, OcspSingleResponseSpec } from '@pki/x509';

/** One SingleResponse the responder wants signed. */
export interface ResponseToSign {
  issuerKeyId: string;
  serialHex: string;
  certIdHash: CertIdHash;
  status: OcspSingleResponseSpec['status'];
  thisUpdate: Date;
  nextUpdate: Date;
}

/** One live answer: the SingleResponses of one request, a nonce to echo, extended revoke. */
export interface LiveRequestToSign {
  responses: ResponseToSign[];
  nonce?: Uint8Array;
  extendedRevoke: boolean;
}

export interface SignerIssuer {
  keyId: string;
  certificateDer: Buffer;
  responderCertificateDer?: Buffer;
}

/** The signer of OCSP responses (ca-signer); every method fails with PkiError UNAVAILABLE when it cannot be reached. */
export interface OcspSigningPort {
  /** Pre-produced responses (no nonce), one OCSPResponse DER per item, in order. */
  signPreProduced(responses: readonly ResponseToSign[]): Promise<Uint8Array[]>;
  /** Live answers, one OCSPResponse DER per request, in order. */
  signLive(requests: readonly LiveRequestToSign[], deadline?: Date): Promise<Uint8Array[]>;
  /** The CA generations and their active responder certificates. */
  issuers(): Promise<SignerIssuer[]>;
  close(): void;
}
