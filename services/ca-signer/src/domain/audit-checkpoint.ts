import type { Pool } from 'pg';
import { PkiError, type Clock, type Logger } from '@pki/kit';
import { withTransaction, type Tx } from '@pki/db';
import { HASH_SIZE, verifyConsistency } from '@pki/merkle';
import { signatureAlgorithmIdentifier, verifySignature } from '@pki/x509';
import type { KeyManager } from '../ports/key-manager';
import { appendAuditEvent, assertHsmAvailable, AuditOutcome, serviceActor, type AuditChannel } from './audit';
import { signatureAlgorithmForIssuerSpki, wholeSecond } from './certificate-signing';
import { sha256Hex } from './digest';
import type { IssuerRegistry } from './issuer-registry';

export interface ProducerHead {
  producer: string;
  sequence: bigint;
}

export interface AuditCheckpointRequest {
  caller: string;
  /** Names the log (the checkpoint's first line). */
  origin: string;
  treeSize: bigint;
  /** RFC 9162 Merkle tree hash of the log's first treeSize leaves. */
  rootHash: Uint8Array;
  /** The tree size of the last checkpoint signed for this origin, as the caller knows it (0 for none). */
  previousTreeSize: bigint;
  /** RFC 9162 §2.1.4 consistency proof from previousTreeSize to treeSize. */
  consistencyProof: readonly Uint8Array[];
  /** The last sequence number of each producer the tree holds: the audit log's confirmations. */
  producerHeads: readonly ProducerHead[];
}

export interface SignedCheckpoint {
  /** The exact bytes signed: see {@link encodeCheckpoint}. */
  checkpoint: Buffer;
  signature: Buffer;
  signerCertificateDer: Buffer;
  /** OpenSSL's name of the signature algorithm, for `openssl dgst -verify`. */
  signatureAlgorithm: 'sha256WithRSAEncryption' | 'ecdsa-with-SHA256';
  signedAt: Date;
}

const PRODUCER = /^[a-z0-9][a-z0-9._-]{0,99}$/;
// C2SP tlog-checkpoint: the origin is one line; a schema-less URL by convention.
const ORIGIN = /^[A-Za-z0-9][A-Za-z0-9._/:-]{0,199}$/;
const MAX_PRODUCERS = 1000;
/** A tree can have at most 2^53 - 1 leaves here (sizes are JavaScript safe integers in the proofs). */
const MAX_TREE_SIZE = BigInt(Number.MAX_SAFE_INTEGER);

export const CHECKPOINT_FORMAT = 'pki-audit-checkpoint v2';

/**
 * The checkpoint text: a C2SP tlog-checkpoint body (origin, tree size, base64 root, each on its
 * own line) followed by extension lines: the format tag, the signing time, the signer's key id
 * and one `producer <name> <last sequence>` line per producer, sorted by name. Plain text on
 * purpose: an auditor reads what was attested and verifies it with nothing but OpenSSL
 * (`openssl dgst -sha256 -verify signer.pub -signature sig checkpoint.txt`). No field can contain
 * a newline; every line ends with one.
 */
export function encodeCheckpoint(c: { origin: string; treeSize: bigint; rootHash: Uint8Array; signedAt: Date; signerKeyId: string; producerHeads: readonly ProducerHead[] }): Buffer {
  const heads = [...c.producerHeads].sort((a, b) => (a.producer < b.producer ? -1 : a.producer > b.producer ? 1 : 0));
  return Buffer.from(
    [
      c.origin,
      c.treeSize.toString(),
      Buffer.from(c.rootHash).toString('base64'),
      CHECKPOINT_FORMAT,
      `signed-at ${c.signedAt.toISOString()}`,
      `signer-key-id ${c.signerKeyId}`,
      ...heads.map((h) => `producer ${h.producer} ${h.sequence.toString()}`),
      '',
    ].join('\n'),
    'utf8',
  );
}

interface LogHead {
  treeSize: bigint;
  rootHash: Buffer;
}

/**
 * Signs checkpoints of the audit log's Merkle tree with the audit checkpoint key (a delegated
 * signer certified by the CA, its key in the HSM). The signer itself keeps the last checkpoint it
 * signed for each log and signs a new one only when the caller proves, with an RFC 9162
 * consistency proof, that the new tree extends it: whoever controls the audit service's database
 * cannot have a rewritten history signed. The producer heads of each signed checkpoint are
 * recorded as the audit log's confirmations, which {@link AuditConfirmationGate} reads to stop
 * issuance when they fall behind. Each checkpoint signature is itself an audited action.
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
    validate(request, operation);
    const signer = this.#deps.registry.delegated(operation, 'AUDIT_CHECKPOINT');
    const algorithm = signatureAlgorithmForIssuerSpki(signer.certificate.subjectPublicKeyInfo);
    if (algorithm !== 'RSA-SHA256' && algorithm !== 'ECDSA-SHA256') {
      throw new PkiError('FAILED_PRECONDITION', `${operation}: the audit checkpoint key must be RSA or P-256 (SHA-256 signatures)`);
    }
    await assertHsmAvailable(this.#deps.keyManager, operation);

    // One signing at a time per log: two concurrent requests could both extend the same head and
    // leave it at the smaller tree. A session advisory lock spans the intent, the HSM and the result.
    const lockClient = await this.#deps.pool.connect();
    const lockKey = `pki.audit-checkpoint:${request.origin}`;
    try {
      await lockClient.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', [lockKey]);
      const head = await this.#head(request.origin);
      this.#checkConsistency(request, head, operation);

      const signedAt = wholeSecond(this.#deps.clock.now());
      const checkpoint = encodeCheckpoint({ ...request, signedAt, signerKeyId: signer.keyId });
      const attributes = {
        origin: request.origin,
        treeSize: request.treeSize.toString(),
        rootHash: Buffer.from(request.rootHash).toString('hex'),
        previousTreeSize: request.previousTreeSize.toString(),
        signerKeyId: signer.keyId,
        checkpointSha256: sha256Hex(checkpoint),
      };
      const objects = [{ type: 'checkpoint', id: `${request.origin}/${request.treeSize.toString()}` }];
      const actor = serviceActor(request.caller);
      await withTransaction(this.#deps.pool, (tx) => appendAuditEvent(tx, this.#audit, { action: 'audit-checkpoint.sign.intent', outcome: AuditOutcome.INTENT, actor, objects, attributes }));
      let signature: Buffer;
      try {
        ({ signature } = await this.#deps.keyManager.sign({ keyId: signer.hsmKeyId, algorithm, data: checkpoint }));
        if (!verifySignature({ publicKeySpki: signer.certificate.subjectPublicKeyInfo, algorithm: signatureAlgorithmIdentifier(algorithm), data: checkpoint, signature }, operation)) {
          throw new PkiError('INTERNAL', `${operation}: the HSM key does not match the checkpoint certificate`);
        }
      } catch (err) {
        const failure = PkiError.from(err, operation);
        await withTransaction(this.#deps.pool, (tx) =>
          appendAuditEvent(tx, this.#audit, { action: 'audit-checkpoint.sign.result', outcome: AuditOutcome.FAILURE, actor, objects, reason: failure.code, attributes: { ...attributes, errorCode: failure.code } }),
        ).catch((auditErr: unknown) => this.#deps.logger.error({ err: auditErr }, 'could not record a checkpoint signing failure'));
        throw failure;
      }
      await withTransaction(this.#deps.pool, async (tx) => {
        await recordHead(tx, request, signedAt);
        await recordConfirmations(tx, request, signedAt);
        await appendAuditEvent(tx, this.#audit, { action: 'audit-checkpoint.sign.result', outcome: AuditOutcome.SUCCESS, actor, objects, attributes });
      });
      return {
        checkpoint,
        signature,
        signerCertificateDer: signer.certificateDer,
        signatureAlgorithm: algorithm === 'RSA-SHA256' ? 'sha256WithRSAEncryption' : 'ecdsa-with-SHA256',
        signedAt,
      };
    } finally {
      await lockClient.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [lockKey]).catch(() => undefined);
      lockClient.release();
    }
  }

  async #head(origin: string): Promise<LogHead | undefined> {
    const { rows } = await this.#deps.pool.query<{ tree_size: string; root_hash: Buffer }>('SELECT tree_size, root_hash FROM audit_log_heads WHERE origin = $1', [origin]);
    const row = rows[0];
    return row && { treeSize: BigInt(row.tree_size), rootHash: row.root_hash };
  }

  /** Refuses a tree that does not provably extend the last one signed for the log (RFC 9162 §2.1.4.2). */
  #checkConsistency(request: AuditCheckpointRequest, head: LogHead | undefined, operation: string): void {
    const signedSize = head?.treeSize ?? 0n;
    if (request.previousTreeSize !== signedSize) {
      throw new PkiError('FAILED_PRECONDITION', `${operation}: the last checkpoint signed for ${request.origin} has tree size ${signedSize}, not ${request.previousTreeSize}: prove consistency from ${signedSize}`, {
        details: { signed_tree_size: signedSize.toString() },
      });
    }
    if (request.treeSize < signedSize) {
      throw new PkiError('FAILED_PRECONDITION', `${operation}: tree size ${request.treeSize} is smaller than the last checkpoint signed for ${request.origin} (${signedSize}): a log only grows`);
    }
    const consistent = head === undefined || verifyConsistency(Number(signedSize), Number(request.treeSize), head.rootHash, request.rootHash, request.consistencyProof);
    if (!consistent) {
      throw new PkiError('FAILED_PRECONDITION', `${operation}: the tree of size ${request.treeSize} is not consistent with the checkpoint signed for ${request.origin} at size ${signedSize}: the history was rewritten or the proof is wrong`);
    }
  }
}

function validate(request: AuditCheckpointRequest, operation: string): void {
  const bad = (reason: string) => new PkiError('INVALID_ARGUMENT', `${operation}: ${reason}`);
  if (!ORIGIN.test(request.origin)) throw bad(`origin '${request.origin.slice(0, 200)}' must be one line of letters, digits and . _ / : - (at most 200)`);
  if (request.treeSize < 1n || request.treeSize > MAX_TREE_SIZE) throw bad('tree_size must be at least 1');
  if (request.rootHash.length !== HASH_SIZE) throw bad(`root_hash must be ${HASH_SIZE} bytes, got ${request.rootHash.length}`);
  if (request.previousTreeSize > request.treeSize) throw bad(`previous_tree_size ${request.previousTreeSize} exceeds tree_size ${request.treeSize}`);
  if (request.consistencyProof.length > 128) throw bad('consistency_proof has more than 128 hashes');
  request.consistencyProof.forEach((p, i) => {
    if (p.length !== HASH_SIZE) throw bad(`consistency_proof[${i}] must be ${HASH_SIZE} bytes, got ${p.length}`);
  });
  if (request.producerHeads.length > MAX_PRODUCERS) throw bad(`more than ${MAX_PRODUCERS} producer heads`);
  const seen = new Set<string>();
  for (const head of request.producerHeads) {
    if (!PRODUCER.test(head.producer)) throw bad(`producer '${head.producer.slice(0, 100)}' must be a lower-case producer name`);
    if (seen.has(head.producer)) throw bad(`producer ${head.producer} is listed twice`);
    seen.add(head.producer);
    if (head.sequence < 1n) throw bad(`producer ${head.producer}: sequence must be at least 1`);
  }
}

async function recordHead(tx: Tx, request: AuditCheckpointRequest, signedAt: Date): Promise<void> {
  await tx.query(
    `INSERT INTO audit_log_heads (origin, tree_size, root_hash, signed_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (origin) DO UPDATE SET tree_size = EXCLUDED.tree_size, root_hash = EXCLUDED.root_hash, signed_at = EXCLUDED.signed_at`,
    [request.origin, request.treeSize.toString(), Buffer.from(request.rootHash), signedAt],
  );
}

async function recordConfirmations(tx: Tx, request: AuditCheckpointRequest, signedAt: Date): Promise<void> {
  if (request.producerHeads.length === 0) return;
  // GREATEST: a head never moves back (a consistent tree cannot lose a producer's events).
  await tx.query(
    `INSERT INTO audit_confirmations (producer, sequence, origin, tree_size, confirmed_at)
     SELECT p, s, $3, $4, $5 FROM unnest($1::text[], $2::bigint[]) AS h(p, s)
     ON CONFLICT (producer) DO UPDATE SET sequence = GREATEST(audit_confirmations.sequence, EXCLUDED.sequence),
       origin = EXCLUDED.origin, tree_size = EXCLUDED.tree_size, confirmed_at = EXCLUDED.confirmed_at`,
    [request.producerHeads.map((h) => h.producer), request.producerHeads.map((h) => h.sequence.toString()), request.origin, request.treeSize.toString(), signedAt],
  );
}
