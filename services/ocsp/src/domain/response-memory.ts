import { createHash } from 'node:crypto';
import { PkiError, type Logger } from '@pki/kit';
import { publicKeyBits, readOcspResponse, readResponseData, type CertIdHash, type OcspSingleResponseSpec } from '@pki/x509';
import { HASH_INDEX, STATUS_CODE, type ResponseStoreWriter } from '../store/shared-response-store';
import { singleStatusOf, type CertificateState } from './certificate-status';
import type { IssuerDirectory } from './issuer-directory';

const NODE_HASH: Record<CertIdHash, string> = { SHA1: 'sha1', SHA256: 'sha256' };

/**
 * The main thread's view of the shared store: it turns stored and freshly signed OCSPResponses
 * into store records, after checking that each says what it is filed under (serial, CertID hash,
 * issuer name and key hash: a response filed under the wrong certificate would be a lie served
 * a million times), and keeps newer statuses from being overwritten by older ones.
 */
export class ResponseMemory {
  /** Statuses changed but not yet signed (the store marks them STALE): live answers use these. */
  readonly #pending = new Map<string, CertificateState>();

  constructor(
    readonly writer: ResponseStoreWriter,
    private readonly directory: IssuerDirectory,
    private readonly onDirectoryChange: () => void,
    private readonly logger: Logger,
  ) {}

  /** A certificate exists (an issuance event, or a row read from the store). */
  markKnown(serialHex: string): void {
    this.writer.setKnown(Buffer.from(serialHex, 'hex'), true);
  }

  /**
   * A status changed and its responses are being signed: until they are, the certificate is
   * answered tryLater rather than with its previous status.
   */
  markPending(state: CertificateState): void {
    const serial = Buffer.from(state.serialHex, 'hex');
    const resident = Math.max(this.writer.residentSeq(serial, 0) ?? -1, this.writer.residentSeq(serial, 1) ?? -1);
    if (resident >= versionOf(state)) return;
    this.writer.setKnown(serial, true);
    this.#pending.set(state.serialHex, state);
    this.writer.setStale(serial, true);
  }

  pending(serialHex: string): CertificateState | undefined {
    return this.#pending.get(serialHex);
  }

  /** The certificate is past the expired-certificate policy: its responses leave memory (it stays known). */
  forget(serialHex: string): void {
    const serial = Buffer.from(serialHex, 'hex');
    this.#pending.delete(serialHex);
    this.writer.dropResponses(serial);
  }

  /**
   * Files a signed response for `state` (its serial, issuer and status sequence). Refuses one that
   * does not answer for exactly that certificate. Returns false when memory is full (the
   * response stays in PostgreSQL and is read from there).
   */
  put(state: Pick<CertificateState, 'serialHex' | 'issuerKeyId' | 'statusSeq' | 'changedAt'>, responseDer: Uint8Array, hash: CertIdHash): boolean {
    const serial = Buffer.from(state.serialHex, 'hex');
    const existing = this.writer.residentSeq(serial, HASH_INDEX[hash]);
    if (existing !== undefined && existing > versionOf(state)) return true;
    const issuer = this.directory.issuer(state.issuerKeyId);
    if (!issuer) throw new PkiError('FAILED_PRECONDITION', `file OCSP response: issuer ${state.issuerKeyId} is not in the directory`);
    const read = readOcspResponse(responseDer);
    const single = read.singles[0];
    const bits = publicKeyBits(issuer.certificate.subjectPublicKeyInfo);
    const digest = (data: Uint8Array) => createHash(NODE_HASH[hash]).update(data).digest();
    if (
      read.singles.length !== 1 ||
      single!.serialHex !== state.serialHex ||
      single!.hash !== hash ||
      !single!.issuerNameHash.equals(digest(issuer.certificate.subjectDer)) ||
      !single!.issuerKeyHash.equals(digest(bits)) ||
      read.nonce !== undefined ||
      !single!.nextUpdate ||
      read.certificates.length !== 1
    ) {
      throw new PkiError('INTERNAL', `file OCSP response: the response signed for ${state.serialHex} (${hash}) does not answer for that certificate`);
    }
    const responder = this.directory.responderIndex(read.certificates[0]!, read.signatureAlgorithm);
    if (responder.added) this.onDirectoryChange();
    const stored = this.writer.put({
      serial,
      hash: HASH_INDEX[hash],
      issuerIndex: issuer.index,
      responderIndex: responder.index,
      status: STATUS_CODE[single!.status.kind],
      producedAt: Math.floor(read.producedAt.getTime() / 1000),
      nextUpdate: Math.floor(single!.nextUpdate.getTime() / 1000),
      statusSeq: versionOf(state),
      responseData: read.responseData,
      signature: read.signature,
    });
    const pending = this.#pending.get(state.serialHex);
    if (pending && versionOf(pending) <= versionOf(state)) {
      this.#pending.delete(state.serialHex);
      this.writer.setStale(serial, false);
    }
    return stored;
  }

  /**
   * The status to put in a live answer: the pending one if a change is being signed, else what the
   * resident response says. Undefined when memory cannot tell (not resident).
   */
  statusOf(serialHex: string, issuerIndex: number): { status: OcspSingleResponseSpec['status']; issuerKeyId: string } | 'other-issuer' | undefined {
    const pending = this.#pending.get(serialHex);
    const serial = Buffer.from(serialHex, 'hex');
    if (pending) {
      const issuer = this.directory.issuer(pending.issuerKeyId);
      if (issuer?.index !== issuerIndex) return 'other-issuer';
      return { status: singleStatusOf(pending), issuerKeyId: pending.issuerKeyId };
    }
    for (const hash of [0, 1] as const) {
      const found = this.writer.lookup(serial, hash);
      if (found.kind !== 'resident') continue;
      if (found.record.issuerIndex !== issuerIndex) return 'other-issuer';
      const data = Buffer.from(found.record.responseData);
      const single = readResponseData(data).singles[0];
      const issuer = this.directory.issuerByIndex(issuerIndex);
      if (single && issuer) return { status: single.status, issuerKeyId: issuer.keyId };
    }
    return undefined;
  }
}

/**
 * The order of two statuses of one certificate in memory: the time ra committed the change. The
 * store orders by the producer's sequence within a producer and by this time across producers (a
 * new ra deployment); memory only ever compares statuses of one certificate, seconds apart at least.
 */
function versionOf(state: Pick<CertificateState, 'changedAt'>): number {
  return state.changedAt.getTime();
}
