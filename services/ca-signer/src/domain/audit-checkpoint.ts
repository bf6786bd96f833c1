import type { Pool } from 'pg';
import { PkiError, type Clock, type Logger } from '@pki/kit';
import { withTransaction } from '@pki/db';
import { signatureAlgorithmIdentifier, verifySignature } from '@pki/x509';
import type { KeyManager } from '../ports/key-manager';
import { appendAuditEvent, assertHsmAvailable, AuditOutcome, serviceActor, type AuditChannel } from './audit';
import { signatureAlgorithmForIssuerSpki, wholeSecond } from './certificate-signing';
import { sha256Hex } from './digest';
import type { IssuerRegistry } from './issuer-registry';

export interface AuditCheckpointRequest {
  caller: string;
  producer: string;
  sequence: bigint;
  chainHeadSha256: Uint8Array;
}

export interface SignedCheckpoint {
  /** The exact bytes signed: see {@link encodeCheckpoint}. */
  checkpoint: Buffer;
  signature: Buffer;
  signerCertificateDer: Buffer;
  /** OpenSSL's name of the signature algorithm, for `openssl dgst -verify`. */
  signatureAlgorithm: 'sha256WithRSAEncryption' | 'ecdsa-with-SHA256';
}

const PRODUCER = /^[a-z0-9][a-z0-9._-]{0,99}$/;

/**
 * The canonical checkpoint text. Plain text on purpose: an auditor verifies it with nothing but
 * OpenSSL (`openssl dgst -sha256 -verify signer.pub -signature sig checkpoint.txt`) and can read
 * what was attested. Field order and line endings are fixed; no field can contain a newline.
 */
export function encodeCheckpoint(c: { producer: string; sequence: bigint; chainHeadSha256: Uint8Array; signedAt: Date; signerKeyId: string }): Buffer {
  return Buffer.from(
    [
      'pki-audit-checkpoint v1',
      `producer: ${c.producer}`,
      `sequence: ${c.sequence.toString()}`,
      `chain-head-sha256: ${Buffer.from(c.chainHeadSha256).toString('hex')}`,
      `signed-at: ${c.signedAt.toISOString()}`,
      `signer-key-id: ${c.signerKeyId}`,
      '',
    ].join('\n'),
    'utf8',
  );
}

/**
 * Signs checkpoints over the head of a producer's audit hash chain, with the audit checkpoint key
 * (a delegated signer certified by the CA, its key in the HSM). Each checkpoint signature is
 * itself an audited action of ca-signer.
 */
export class AuditCheckpointSigner {
  readonly #deps: { pool: Pool; registry: IssuerRegistry; keyManager: KeyManager; clock: Clock; logger: Logger };
  readonly #audit: AuditChannel;

  constructor(deps: { pool: Pool; registry: IssuerRegistry; keyManager: KeyManager; clock: Clock; logger: Logger; producer: string }) {
    this.#deps = deps;
    this.#audit = { producer: deps.producer, clock: deps.clock };
  }

  async sign(request: AuditCheckpointRequest): Promise<SignedCheckpoint> {
    const operation = 'sign audit checkpoint';
    if (!PRODUCER.test(request.producer)) throw new PkiError('INVALID_ARGUMENT', `${operation}: producer '${request.producer.slice(0, 100)}' must be a lower-case producer name`);
    if (request.sequence < 1n) throw new PkiError('INVALID_ARGUMENT', `${operation}: sequence must be at least 1`);
    if (request.chainHeadSha256.length !== 32) throw new PkiError('INVALID_ARGUMENT', `${operation}: chain_head_sha256 must be 32 bytes, got ${request.chainHeadSha256.length}`);
    const signer = this.#deps.registry.delegated(operation, 'AUDIT_CHECKPOINT');
    const signedAt = wholeSecond(this.#deps.clock.now());
    const checkpoint = encodeCheckpoint({ ...request, signedAt, signerKeyId: signer.keyId });
    const algorithm = signatureAlgorithmForIssuerSpki(signer.certificate.subjectPublicKeyInfo);
    if (algorithm !== 'RSA-SHA256' && algorithm !== 'ECDSA-SHA256') {
      throw new PkiError('FAILED_PRECONDITION', `${operation}: the audit checkpoint key must be RSA or P-256 (SHA-256 signatures)`);
    }
    const attributes = {
      producer: request.producer,
      sequence: request.sequence.toString(),
      chainHeadSha256: Buffer.from(request.chainHeadSha256).toString('hex'),
      signerKeyId: signer.keyId,
      checkpointSha256: sha256Hex(checkpoint),
    };
    await assertHsmAvailable(this.#deps.keyManager, operation);
    await withTransaction(this.#deps.pool, (tx) => appendAuditEvent(tx, this.#audit, { action: 'audit-checkpoint.sign.intent', outcome: AuditOutcome.INTENT, actor: serviceActor(request.caller), attributes }));
    let signature: Buffer;
    try {
      ({ signature } = await this.#deps.keyManager.sign({ keyId: signer.hsmKeyId, algorithm, data: checkpoint }));
      if (!verifySignature({ publicKeySpki: signer.certificate.subjectPublicKeyInfo, algorithm: signatureAlgorithmIdentifier(algorithm), data: checkpoint, signature }, operation)) {
        throw new PkiError('INTERNAL', `${operation}: the HSM key does not match the checkpoint certificate`);
      }
    } catch (err) {
      const failure = PkiError.from(err, operation);
      await withTransaction(this.#deps.pool, (tx) =>
        appendAuditEvent(tx, this.#audit, { action: 'audit-checkpoint.sign.result', outcome: AuditOutcome.FAILURE, actor: serviceActor(request.caller), attributes: { ...attributes, errorCode: failure.code } }),
      ).catch((auditErr: unknown) => this.#deps.logger.error({ err: auditErr }, 'could not record a checkpoint signing failure'));
      throw failure;
    }
    await withTransaction(this.#deps.pool, (tx) => appendAuditEvent(tx, this.#audit, { action: 'audit-checkpoint.sign.result', outcome: AuditOutcome.SUCCESS, actor: serviceActor(request.caller), attributes }));
    return {
      checkpoint,
      signature,
      signerCertificateDer: signer.certificateDer,
      signatureAlgorithm: algorithm === 'RSA-SHA256' ? 'sha256WithRSAEncryption' : 'ecdsa-with-SHA256',
    };
  }
}
