import { createHash } from 'node:crypto';
import type { Pool } from 'pg';
import { PkiError, type Clock, type Logger } from '@pki/kit';
import { withTransaction } from '@pki/db';
import {
  assembleCrl,
  assembleOcspResponse,
  buildResponseData,
  buildTbsCertList,
  CRLReasons,
  verifySignatureAsync,
  signatureAlgorithmIdentifier,
  type CertIdHash,
  type CrlEntry,
  type OcspSingleResponseSpec,
  type SignatureAlgorithm,
} from '@pki/x509';
import type { KeyManager } from '../ports/key-manager';
import { appendAuditEvent, assertHsmAvailable, AuditOutcome, serviceActor, type AuditChannel } from './audit';
import { signatureAlgorithmForIssuerSpki, wholeSecond } from './certificate-signing';
import { sha256Hex } from './digest';
import { assertIdempotencyKey } from './requests';
import type { IssuerRecord, IssuerRegistry } from './issuer-registry';

export interface RevocationSigningDeps {
  pool: Pool;
  registry: IssuerRegistry;
  keyManager: KeyManager;
  clock: Clock;
  logger: Logger;
  producer: string;
  /** Base URL of the CRLs: partitions are published at <base>/<issuer key id>/<partition>.crl. */
  crlBaseUrl: string;
}

export interface CrlRequest {
  caller: string;
  idempotencyKey: string;
  issuerKeyId: string;
  partition: string;
  crlNumber: string;
  deltaBaseCrlNumber?: string;
  thisUpdate?: Date;
  nextUpdate?: Date;
  entries: ReadonlyArray<{ serialHex: string; revocationDate?: Date; reason: number }>;
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
const PARTITION = /^[a-z0-9][a-z0-9-]{0,31}$/;
const CRL_NUMBER = /^[0-9]{1,15}$/;
// How far a CRL's thisUpdate may be from the signer's clock: the crl service stamps it just
// before calling, so anything further off is a bug or a replay.
const THIS_UPDATE_SKEW_MS = 10 * 60_000;

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
 * Signs CRLs and OCSP responses. The signer builds every structure itself from the facts it is
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

  crlUrl(issuerKeyId: string, partition: string): string {
    const base = this.#deps.crlBaseUrl.replace(/\/$/, '');
    return partition === '' ? `${base}/${issuerKeyId}.crl` : `${base}/${issuerKeyId}/${partition}.crl`;
  }

  async signCrl(request: CrlRequest): Promise<Buffer> {
    const operation = 'sign CRL';
    assertIdempotencyKey(request.idempotencyKey, operation);
    if (!request.issuerKeyId) throw new PkiError('INVALID_ARGUMENT', `${operation}: issuer_key_id is required (one CRL per CA generation)`);
    const issuer = this.#deps.registry.issuing(operation, request.issuerKeyId);
    if (request.partition !== '' && !PARTITION.test(request.partition)) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: partition '${request.partition.slice(0, 40)}' must be 1 to 32 lower-case letters, digits or dashes`);
    }
    const crlNumber = this.#crlNumber(request.crlNumber, 'crl_number', operation);
    const deltaBase = request.deltaBaseCrlNumber ? this.#crlNumber(request.deltaBaseCrlNumber, 'delta_base_crl_number', operation) : undefined;
    if (deltaBase !== undefined && deltaBase >= crlNumber) throw new PkiError('INVALID_ARGUMENT', `${operation}: delta_base_crl_number must be lower than crl_number`);
    const thisUpdate = requireWholeSecond(request.thisUpdate, 'this_update', operation);
    const nextUpdate = requireWholeSecond(request.nextUpdate, 'next_update', operation);
    if (Math.abs(thisUpdate.getTime() - this.#deps.clock.now().getTime()) > THIS_UPDATE_SKEW_MS) {
      throw new PkiError('INVALID_ARGUMENT', `${operation}: this_update ${thisUpdate.toISOString()} is more than 10 minutes from the signer's clock`);
    }
    if (nextUpdate <= thisUpdate) throw new PkiError('INVALID_ARGUMENT', `${operation}: next_update must be after this_update`);
    if (nextUpdate > issuer.certificate.notAfter) throw new PkiError('INVALID_ARGUMENT', `${operation}: next_update is after the issuer certificate expires`);
    const entries: CrlEntry[] = request.entries.map((e) => ({
      serial: parseSerialHex(e.serialHex, operation),
      revocationDate: requireWholeSecond(e.revocationDate, `revocation_date of ${e.serialHex}`, operation),
      reason: crlReason(e.reason, operation, e.serialHex, deltaBase !== undefined),
    }));
    const algorithm = signatureAlgorithmForIssuerSpki(issuer.certificate.subjectPublicKeyInfo);
    // Building the TBS also checks the entries (duplicates, serial form) before anything is recorded.
    const tbsDer = buildTbsCertList({
      signatureAlgorithm: algorithm,
      issuerDer: issuer.certificate.subjectDer,
      authorityKeyIdentifier: Buffer.from(issuer.keyId, 'hex'),
      thisUpdate,
      nextUpdate,
      crlNumber,
      deltaBaseCrlNumber: deltaBase,
      partitionUri: request.partition === '' ? undefined : this.crlUrl(issuer.keyId, request.partition),
      entries,
    });
    const requestHash = createHash('sha256').update(tbsDer).digest();

    const previous = await this.#deps.pool.query(`SELECT request_sha256, crl_der FROM signed_crls WHERE caller = $1 AND idempotency_key = $2`, [request.caller, request.idempotencyKey]);
    if (previous.rows[0]) {
      if (!previous.rows[0].request_sha256.equals(requestHash)) {
        throw new PkiError('CONFLICT', `${operation}: idempotency key '${request.idempotencyKey}' was already used with a different request`);
      }
      return previous.rows[0].crl_der;
    }

    await assertHsmAvailable(this.#deps.keyManager, operation);
    const attributes = {
      issuerKeyId: issuer.keyId,
      partition: request.partition,
      crlNumber: String(crlNumber),
      ...(deltaBase !== undefined ? { deltaBaseCrlNumber: String(deltaBase) } : {}),
      entries: String(entries.length),
      tbsSha256: sha256Hex(tbsDer),
    };
    await withTransaction(this.#deps.pool, async (tx) => {
      // Numbers only increase (RFC 5280 §5.2.3), across full and delta CRLs of one partition; the
      // row lock makes two concurrent requests for one number impossible.
      const { rows } = await tx.query(`SELECT last_number FROM crl_numbers WHERE issuer_key_id = $1 AND partition = $2 FOR UPDATE`, [issuer.keyId, request.partition]);
      const last = rows[0] ? Number(rows[0].last_number) : undefined;
      if (last !== undefined && crlNumber <= last) {
        throw new PkiError('FAILED_PRECONDITION', `${operation}: CRL number ${crlNumber} does not exceed the last one signed for this issuer and partition (${last})`);
      }
      await tx.query(
        `INSERT INTO crl_numbers (issuer_key_id, partition, last_number, last_this_update) VALUES ($1, $2, $3, $4)
         ON CONFLICT (issuer_key_id, partition) DO UPDATE SET last_number = EXCLUDED.last_number, last_this_update = EXCLUDED.last_this_update`,
        [issuer.keyId, request.partition, crlNumber, thisUpdate],
      );
      await appendAuditEvent(tx, this.#audit, { action: 'crl.sign.intent', outcome: AuditOutcome.INTENT, actor: serviceActor(request.caller), attributes });
    });

    let crlDer: Buffer;
    try {
      crlDer = assembleCrl(tbsDer, algorithm, await this.#signAndCheck(operation, issuer.hsmKeyId, algorithm, tbsDer, issuer.certificate.subjectPublicKeyInfo));
    } catch (err) {
      throw await this.#auditFailure('crl.sign.result', request.caller, attributes, err, operation);
    }
    await withTransaction(this.#deps.pool, async (tx) => {
      await tx.query(
        `INSERT INTO signed_crls (caller, idempotency_key, request_sha256, issuer_key_id, partition, crl_number, crl_der) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        [request.caller, request.idempotencyKey, requestHash, issuer.keyId, request.partition, crlNumber, crlDer],
      );
      await appendAuditEvent(tx, this.#audit, { action: 'crl.sign.result', outcome: AuditOutcome.SUCCESS, actor: serviceActor(request.caller), attributes: { ...attributes, crlSha256: sha256Hex(crlDer) } });
    });
    this.#deps.logger.info({ issuerKeyId: issuer.keyId, partition: request.partition, crlNumber, entries: entries.length }, 'CRL signed');
    return crlDer;
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

  #crlNumber(value: string, field: string, operation: string): number {
    if (!CRL_NUMBER.test(value)) throw new PkiError('INVALID_ARGUMENT', `${operation}: ${field} must be a decimal number of at most 15 digits (e.g. YYYYMMDDnn)`);
    return Number(value);
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
