import { createHash } from 'node:crypto';
import type { Pool } from 'pg';
import { PkiError, type Clock, type Logger } from '@pki/kit';
import {
  assembleOcspResponse,
  buildResponseData,
  MAX_NONCE_LENGTH,
  signatureAlgorithmIdentifier,
  verifySignatureAsync,
  type CertIdHash,
  type OcspSingleResponseSpec,
  type SignatureAlgorithm,
} from '@pki/x509';
import type { KeyManager } from '../ports/key-manager';
import { assertHsmAvailable, AuditOutcome, auditOutboxEvent, serviceActor, type AuditChannel, type NewAuditEvent } from './audit';
import { signatureAlgorithmForIssuerSpki, wholeSecond } from './certificate-signing';
import { BatchCommit } from '@pki/db';
import { appendEvents, type NewEvent } from '@pki/outbox';
import { sha256Hex } from './digest';
import type { DelegatedSigner, IssuerRecord, IssuerRegistry } from './issuer-registry';
import { crlReason, parseSerialHex, requireWholeSecond } from './revocation-signing';

export interface OcspSigningDeps {
  pool: Pool;
  registry: IssuerRegistry;
  keyManager: KeyManager;
  clock: Clock;
  logger: Logger;
  producer: string;
}

/** One SingleResponse to sign, as the responder asks for it. */
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

/** One live answer: the SingleResponses of one relying party's request. */
export interface LiveOcspRequestItem {
  responses: readonly OcspRequestItem[];
  /** The request's nonce extnValue contents, echoed as they are (RFC 8954 §2.1). */
  nonce?: Uint8Array;
  /** Adds id-pkix-ocsp-extended-revoke (RFC 6960 §4.4.8). */
  extendedRevoke: boolean;
}

/** At most this many responses in one SignOcspResponses call, and live requests in one SignLiveOcspResponses call. */
export const MAX_OCSP_BATCH = 1000;
/** At most this many SingleResponses in one live answer. */
export const MAX_LIVE_SINGLE_RESPONSES = 20;
// An OCTET STRING of at most 32 octets, with its two header octets (RFC 8954 §2.1).
const MAX_NONCE_EXTN_VALUE = MAX_NONCE_LENGTH + 2;

interface PreparedResponse {
  responder: DelegatedSigner;
  responseData: Buffer;
  algorithm: SignatureAlgorithm;
  issuerKeyId: string;
}

/**
 * Signs OCSP responses with each CA generation's delegated responder key (RFC 6960 §4.2.2.2):
 * batches of pre-produced responses (RFC 5019: no nonce, cached and served many times) and live
 * answers to single requests (a nonce to echo, several CertIDs, extended revoke). The signer
 * builds every ResponseData itself from the facts it is given, checks each whole batch before
 * anything is signed, checks every signature against the responder certificate relying parties
 * will use, and audits each batch as one event (intent before the HSM, result after).
 */
export class OcspSigner {
  readonly #deps: OcspSigningDeps;
  readonly #audit: AuditChannel;
  /**
   * The audit events (intent, result) of the batches in flight at once are appended together, in
   * one statement that is its own transaction (decisions 0019, 0041), rather than in a transaction
   * each: under load several batches overlap, and a lone event costs one round trip, not a BEGIN,
   * the append and a COMMIT. Each batch still waits for its intent to commit before the HSM signs,
   * and for its result before it answers.
   */
  readonly #auditEvents: BatchCommit<NewEvent, void>;

  constructor(deps: OcspSigningDeps) {
    this.#deps = deps;
    this.#audit = { producer: deps.producer, clock: deps.clock };
    this.#auditEvents = new BatchCommit(
      deps.pool,
      async (db, events) => {
        await appendEvents(db, events);
        return events.map(() => undefined);
      },
      { singleStatement: true },
    );
  }

  /** Appends `event` to the audit outbox (with those of the batches alongside); resolves once committed. */
  #audited(event: NewAuditEvent): Promise<void> {
    return this.#auditEvents.submit(auditOutboxEvent(this.#audit, event).event);
  }

  /** Pre-produced responses, one SingleResponse each. */
  async signOcspResponses(caller: string, items: readonly OcspRequestItem[]): Promise<Buffer[]> {
    const operation = 'sign OCSP responses';
    if (items.length === 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: the batch is empty`);
    if (items.length > MAX_OCSP_BATCH) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${items.length} responses in one batch; at most ${MAX_OCSP_BATCH}`);
    const producedAt = wholeSecond(this.#deps.clock.now());
    const prepared = items.map((item, index) => this.#prepare(`${operation}: response ${index}`, [item], producedAt, {}));
    return this.#signBatch(operation, 'ocsp.sign-batch', caller, prepared, {});
  }

  /** Live answers: one response per request, each echoing its nonce; the batch is audited as one event. */
  async signLiveOcspResponses(caller: string, requests: readonly LiveOcspRequestItem[]): Promise<Buffer[]> {
    const operation = 'sign live OCSP responses';
    if (requests.length === 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: the batch is empty`);
    if (requests.length > MAX_OCSP_BATCH) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${requests.length} requests in one batch; at most ${MAX_OCSP_BATCH}`);
    const producedAt = wholeSecond(this.#deps.clock.now());
    let nonces = 0;
    const prepared = requests.map((request, index) => {
      const at = `${operation}: request ${index}`;
      if (request.responses.length === 0) throw new PkiError('INVALID_ARGUMENT', `${at}: no responses`);
      if (request.responses.length > MAX_LIVE_SINGLE_RESPONSES) throw new PkiError('INVALID_ARGUMENT', `${at}: ${request.responses.length} responses; at most ${MAX_LIVE_SINGLE_RESPONSES}`);
      if (request.nonce !== undefined && request.nonce.length > MAX_NONCE_EXTN_VALUE) throw new PkiError('INVALID_ARGUMENT', `${at}: nonce of ${request.nonce.length} octets; at most ${MAX_NONCE_EXTN_VALUE} (RFC 8954)`);
      if (request.nonce !== undefined && request.nonce.length > 0) nonces++;
      return this.#prepare(at, request.responses, producedAt, { nonce: request.nonce?.length ? request.nonce : undefined, extendedRevoke: request.extendedRevoke });
    });
    return this.#signBatch(operation, 'ocsp.sign-live', caller, prepared, { nonces: String(nonces) });
  }

  /** Checks one answer's items and builds its ResponseData; every item must be of the same issuer. */
  #prepare(at: string, items: readonly OcspRequestItem[], producedAt: Date, extensions: { nonce?: Uint8Array; extendedRevoke?: boolean }): PreparedResponse {
    let issuer: IssuerRecord | undefined;
    let responder: DelegatedSigner | undefined;
    const singles = items.map((item, index) => {
      const where = items.length === 1 ? at : `${at}, response ${index}`;
      if (!item.issuerKeyId) throw new PkiError('INVALID_ARGUMENT', `${where}: issuer_key_id is required`);
      if (issuer === undefined) {
        issuer = this.#deps.registry.issuing(where, item.issuerKeyId);
        responder = this.#deps.registry.delegated(where, 'OCSP_RESPONDER', issuer.keyId);
      } else if (item.issuerKeyId !== issuer.keyId) {
        // One ResponseData has one responder, and a delegated responder answers for its own CA only (RFC 6960 §4.2.2.2).
        throw new PkiError('INVALID_ARGUMENT', `${where}: every response of one answer must be of the same issuer`);
      }
      if (!item.certIdHash) throw new PkiError('INVALID_ARGUMENT', `${where}: cert_id_hash must be SHA1 or SHA256`);
      if (!item.status) throw new PkiError('INVALID_ARGUMENT', `${where}: status must be GOOD, REVOKED or UNKNOWN`);
      const thisUpdate = requireWholeSecond(item.thisUpdate, 'this_update', where);
      const nextUpdate = requireWholeSecond(item.nextUpdate, 'next_update', where);
      if (nextUpdate <= thisUpdate) throw new PkiError('INVALID_ARGUMENT', `${where}: next_update must be after this_update`);
      if (nextUpdate > responder!.certificate.notAfter) throw new PkiError('INVALID_ARGUMENT', `${where}: next_update is after the responder certificate expires`);
      let status: OcspSingleResponseSpec['status'];
      if (item.status === 'revoked') {
        const revocationTime = requireWholeSecond(item.revocationTime, 'revocation_time', where);
        status = { kind: 'revoked', revocationTime, reason: crlReason(item.revocationReason, where, item.serialHex, false) };
      } else {
        status = { kind: item.status };
      }
      return { certIdHash: item.certIdHash, serial: parseSerialHex(item.serialHex, where), status, thisUpdate, nextUpdate } satisfies OcspSingleResponseSpec;
    });
    const responseData = buildResponseData({
      issuer: { subjectDer: issuer!.certificate.subjectDer, subjectPublicKeyInfo: issuer!.certificate.subjectPublicKeyInfo },
      responderSpki: responder!.certificate.subjectPublicKeyInfo,
      producedAt,
      responses: singles,
      ...extensions,
    });
    return { responder: responder!, responseData, algorithm: signatureAlgorithmForIssuerSpki(responder!.certificate.subjectPublicKeyInfo), issuerKeyId: issuer!.keyId };
  }

  async #signBatch(operation: string, action: string, caller: string, prepared: readonly PreparedResponse[], extra: Record<string, string>): Promise<Buffer[]> {
    await assertHsmAvailable(this.#deps.keyManager, operation);
    const attributes = {
      responses: String(prepared.length),
      issuerKeyIds: [...new Set(prepared.map((p) => p.issuerKeyId))].join(','),
      responderKeyIds: [...new Set(prepared.map((p) => p.responder.keyId))].join(','),
      responseDataSha256: sha256Hex(Buffer.concat(prepared.map((p) => createHash('sha256').update(p.responseData).digest()))),
      ...extra,
    };
    const actor = serviceActor(caller);
    await this.#audited({ action: `${action}.intent`, outcome: AuditOutcome.INTENT, actor, attributes });
    // The key manager's session pool bounds how many of these run in the HSM at once.
    const settled = await Promise.allSettled(
      prepared.map(async (p) =>
        assembleOcspResponse(p.responseData, p.algorithm, await this.#signAndCheck(operation, p.responder, p.algorithm, p.responseData), p.responder.certificateDer),
      ),
    );
    const failed = settled.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length > 0) {
      const failure = PkiError.from(failed[0]!.reason, operation);
      await this.#audited({ action: `${action}.result`, outcome: AuditOutcome.FAILURE, actor, attributes: { ...attributes, failed: String(failed.length), errorCode: failure.code, error: failure.message } }).catch((auditErr: unknown) => this.#deps.logger.error({ err: auditErr }, 'could not record a signing failure in the audit outbox'));
      throw failure;
    }
    const responses = settled.map((r) => (r as PromiseFulfilledResult<Buffer>).value);
    await this.#audited({
      action: `${action}.result`,
      outcome: AuditOutcome.SUCCESS,
      actor,
      attributes: { ...attributes, responsesSha256: sha256Hex(Buffer.concat(responses.map((r) => createHash('sha256').update(r).digest()))) },
    });
    return responses;
  }

  /** Signs in the HSM and checks the signature with the responder certificate's key. */
  async #signAndCheck(operation: string, responder: DelegatedSigner, algorithm: SignatureAlgorithm, data: Buffer): Promise<Buffer> {
    const { signature } = await this.#deps.keyManager.sign({ keyId: responder.hsmKeyId, algorithm, data });
    // On a worker thread: for a batch of OCSP responses this check is most of the event loop's work.
    const check = { publicKeySpki: responder.certificate.subjectPublicKeyInfo, algorithm: signatureAlgorithmIdentifier(algorithm), data, signature };
    if (!(await verifySignatureAsync(check, operation))) {
      throw new PkiError('INTERNAL', `${operation}: the HSM key ${responder.hsmKeyId} does not match the certificate it signs for`);
    }
    return signature;
  }
}
