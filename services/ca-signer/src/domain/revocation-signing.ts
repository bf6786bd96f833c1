import { createHash } from 'node:crypto';
import type { Pool } from 'pg';
import { PkiError, type Clock, type Logger } from '@pki/kit';
import { withTransaction } from '@pki/db';
import {
  assembleOcspResponse,
  buildResponseData,
  CRLReasons,
  verifySignatureAsync,
  signatureAlgorithmIdentifier,
  type CertIdHash,
  type OcspSingleResponseSpec,
  type SignatureAlgorithm,
} from '@pki/x509';
import type { KeyManager } from '../ports/key-manager';
import { appendAuditEvent, assertHsmAvailable, AuditOutcome, serviceActor, type AuditChannel } from './audit';
import { signatureAlgorithmForIssuerSpki, wholeSecond } from './certificate-signing';
import { sha256Hex } from './digest';
import type { IssuerRecord, IssuerRegistry } from './issuer-registry';

export interface RevocationSigningDeps {
  pool: Pool;
  registry: IssuerRegistry;
  keyManager: KeyManager;
  clock: Clock;
  logger: Logger;
  producer: string;
}

export interface OcspRequestItem {
  issuerKeyId: string;
  serialHex: string;
  certIdHash: CertIdHash | undefined;
  status: 'good' | 'revoked' | 'unknown' | undefined;
  revocationTime?: Date;
  revocationReason: number;
  thisUpdate?: Date;
  nextUpdate?: Date;
}

/** At most this many responses in one SignOcspResponses call. */
export const MAX_OCSP_BATCH = 1000;

/** Serial hex as used across the project: DER INTEGER content octets, positive, 1 to 20 octets. */
export function parseSerialHex(serialHex: string, operation: string): Buffer {
  if (!/^(?:[0-9a-f]{2}){1,20}$/.test(serialHex)) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: serial '${serialHex.slice(0, 64)}' must be lower-case hex of 1 to 20 octets`);
  }
  const serial = Buffer.from(serialHex, 'hex');
  if ((serial[0]! & 0x80) !== 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: serial ${serialHex} is negative`);
  return serial;
}

function requireWholeSecond(date: Date | undefined, field: string, operation: string): Date {
  if (!date || Number.isNaN(date.getTime())) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} is required`);
  if (date.getUTCMilliseconds() !== 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} must be a whole second`);
  return date;
}

function crlReason(value: number, operation: string, serialHex: string, delta: boolean): CRLReasons | undefined {
  if (value === 0) return undefined;
  if (!Object.values(CRLReasons).includes(value)) throw new PkiError('INVALID_ARGUMENT', `${operation}: unknown revocation reason ${value} for ${serialHex}`);
  // RFC 5280 §5.3.1: removeFromCRL only appears in delta CRLs.
  if (value === CRLReasons.removeFromCRL && !delta) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: removeFromCRL (${serialHex}) is only allowed on a delta CRL`);
  }
  return value as CRLReasons;
}

/**
 * Signs OCSP responses (CRLs: crl-signing.ts). The signer builds every structure itself from the facts it is
 * given (it never signs caller-supplied TBS bytes), checks the signature it got from the HSM
 * against the certificate relying parties will use, and audits each signing.
 */
export class RevocationSigner {
  readonly #deps: RevocationSigningDeps;
  readonly #audit: AuditChannel;

  constructor(deps: RevocationSigningDeps) {
    this.#deps = deps;
    this.#audit = { producer: deps.producer, clock: deps.clock };
  }

  /**
   * Signs a batch of pre-produced OCSP responses (RFC 5019: no nonce, so they can be cached and
   * served many times) with each issuer's delegated responder key. The whole batch is checked
   * before anything is signed; it is audited as one event with the hash of every response.
   */
  async signOcspResponses(caller: string, items: readonly OcspRequestItem[]): Promise<Buffer[]> {
    const operation = 'sign OCSP responses';
    if (items.length === 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: the batch is empty`);
    if (items.length > MAX_OCSP_BATCH) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${items.length} responses in one batch; at most ${MAX_OCSP_BATCH}`);
    const producedAt = wholeSecond(this.#deps.clock.now());
    const prepared = items.map((item, index) => {
      const at = `${operation}: response ${index}`;
      if (!item.issuerKeyId) throw new PkiError('INVALID_ARGUMENT', `${at}: issuer_key_id is required`);
      const issuer = this.#deps.registry.issuing(at, item.issuerKeyId);
      const responder = this.#deps.registry.delegated(at, 'OCSP_RESPONDER', issuer.keyId);
      if (!item.certIdHash) throw new PkiError('INVALID_ARGUMENT', `${at}: cert_id_hash must be SHA1 or SHA256`);
      if (!item.status) throw new PkiError('INVALID_ARGUMENT', `${at}: status must be GOOD, REVOKED or UNKNOWN`);
      const thisUpdate = requireWholeSecond(item.thisUpdate, 'this_update', at);
      const nextUpdate = requireWholeSecond(item.nextUpdate, 'next_update', at);
      if (nextUpdate <= thisUpdate) throw new PkiError('INVALID_ARGUMENT', `${at}: next_update must be after this_update`);
      if (nextUpdate > responder.certificate.notAfter) throw new PkiError('INVALID_ARGUMENT', `${at}: next_update is after the responder certificate expires`);
      let status: OcspSingleResponseSpec['status'];
      if (item.status === 'revoked') {
        const revocationTime = requireWholeSecond(item.revocationTime, 'revocation_time', at);
        status = { kind: 'revoked', revocationTime, reason: crlReason(item.revocationReason, at, item.serialHex, false) };
      } else {
        status = { kind: item.status };
      }
      const single: OcspSingleResponseSpec = { certIdHash: item.certIdHash, serial: parseSerialHex(item.serialHex, at), status, thisUpdate, nextUpdate };
      const responseData = buildResponseData({
        issuer: { subjectDer: issuer.certificate.subjectDer, subjectPublicKeyInfo: issuer.certificate.subjectPublicKeyInfo },
        responderSpki: responder.certificate.subjectPublicKeyInfo,
        producedAt,
        responses: [single],
      });
      return { issuer, responder, responseData, algorithm: signatureAlgorithmForIssuerSpki(responder.certificate.subjectPublicKeyInfo) };
    });

    await assertHsmAvailable(this.#deps.keyManager, operation);
    const issuers = [...new Set(prepared.map((p) => p.issuer.keyId))];
    const attributes = {
      responses: String(items.length),
      issuerKeyIds: issuers.join(','),
      responderKeyIds: [...new Set(prepared.map((p) => p.responder.keyId))].join(','),
      responseDataSha256: sha256Hex(Buffer.concat(prepared.map((p) => createHash('sha256').update(p.responseData).digest()))),
    };
    await withTransaction(this.#deps.pool, (tx) => appendAuditEvent(tx, this.#audit, { action: 'ocsp.sign-batch.intent', outcome: AuditOutcome.INTENT, actor: serviceActor(caller), attributes }));
    // The key manager's session pool bounds how many of these run in the HSM at once.
    const settled = await Promise.allSettled(
      prepared.map(async (p) =>
        assembleOcspResponse(p.responseData, p.algorithm, await this.#signAndCheck(operation, p.responder.hsmKeyId, p.algorithm, p.responseData, p.responder.certificate.subjectPublicKeyInfo), p.responder.certificateDer),
      ),
    );
    const failed = settled.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length > 0) {
      throw await this.#auditFailure('ocsp.sign-batch.result', caller, { ...attributes, failed: String(failed.length) }, failed[0]!.reason, operation);
    }
    const responses = settled.map((r) => (r as PromiseFulfilledResult<Buffer>).value);
    await withTransaction(this.#deps.pool, (tx) =>
      appendAuditEvent(tx, this.#audit, {
        action: 'ocsp.sign-batch.result',
        outcome: AuditOutcome.SUCCESS,
        actor: serviceActor(caller),
        attributes: { ...attributes, responsesSha256: sha256Hex(Buffer.concat(responses.map((r) => createHash('sha256').update(r).digest()))) },
      }),
    );
    return responses;
  }

  /** Signs in the HSM and checks the signature with the public key relying parties will use. */
  async #signAndCheck(operation: string, hsmKeyId: string, algorithm: SignatureAlgorithm, data: Buffer, spki: Uint8Array): Promise<Buffer> {
    const { signature } = await this.#deps.keyManager.sign({ keyId: hsmKeyId, algorithm, data });
    // On a worker thread: for a batch of OCSP responses this check is most of the event loop's work.
    if (!(await verifySignatureAsync({ publicKeySpki: spki, algorithm: signatureAlgorithmIdentifier(algorithm), data, signature }, operation))) {
      throw new PkiError('INTERNAL', `${operation}: the HSM key ${hsmKeyId} does not match the certificate it signs for`);
    }
    return signature;
  }

  /** Records one failed signing operation (however many signatures it held) and returns the error to throw. */
  async #auditFailure(action: string, caller: string, attributes: Record<string, string>, err: unknown, operation: string): Promise<PkiError> {
    const failure = PkiError.from(err, operation);
    await withTransaction(this.#deps.pool, (tx) =>
      appendAuditEvent(tx, this.#audit, { action, outcome: AuditOutcome.FAILURE, actor: serviceActor(caller), attributes: { ...attributes, errorCode: failure.code, error: failure.message } }),
    ).catch((auditErr: unknown) => this.#deps.logger.error({ err: auditErr }, 'could not record a signing failure in the audit outbox'));
    return failure;
  }
}

export type { IssuerRecord };
