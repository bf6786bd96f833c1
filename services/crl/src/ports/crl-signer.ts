import type { SignatureAlgorithm } from '@pki/x509';
import type { KnownIssuer } from './crl-store';

/** The header of a CRL to sign; its entries follow as DER chunks (ca-signer SignCrlStream). */
export interface CrlSigningHeader {
  idempotencyKey: string;
  issuerKeyId: string;
  /** '' for the complete CRL and its deltas, 'p<N>' for a partition. */
  partition: string;
  crlNumber: bigint;
  deltaBaseCrlNumber?: bigint;
  thisUpdate: Date;
  nextUpdate: Date;
  expiredCertsOnCrl?: Date;
  announceDeltaCrl: boolean;
  entryCount: number;
  entriesLength: number;
}

export interface CrlSigningResult {
  signature: Buffer;
  signatureAlgorithm: SignatureAlgorithm;
  tbsSha256: Buffer;
  tbsLength: number;
}

/** ca-signer as the crl service uses it. */
export interface CrlSigningClient {
  /** The generations (with their recorded CRL publication) and the roots with their latest ARL. */
  getIssuers(): Promise<{ issuers: KnownIssuer[]; arls: Map<string, Buffer> }>;
  signCrl(header: CrlSigningHeader, entries: AsyncIterable<Buffer>, deadline: Date): Promise<CrlSigningResult>;
}
