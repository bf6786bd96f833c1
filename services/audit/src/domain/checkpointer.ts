import type { X509Certificate } from 'node:crypto';
import { PkiError, type Logger } from '@pki/kit';
import { verifyConsistency } from '@pki/merkle';
import { CheckpointError, verifyCheckpointSignature, type SignedCheckpoint } from './checkpoint';
import type { PostgresAuditLog, StoredCheckpoint } from '../adapters/postgres/audit-log';

/** ca-signer's SignAuditCheckpoint, as the checkpointer needs it. */
export interface CheckpointSigner {
  sign(request: {
    origin: string;
    treeSize: number;
    rootHash: Buffer;
    previousTreeSize: number;
    consistencyProof: Buffer[];
    producerHeads: Array<{ producer: string; seq: number }>;
  }): Promise<SignedCheckpoint>;
}

export interface CheckpointerOptions {
  log: PostgresAuditLog;
  signer: CheckpointSigner;
  origin: string;
  /** The CA certificates the checkpoint key must chain to: every signature is checked before it is stored. */
  trustAnchors: readonly X509Certificate[];
  logger: Logger;
  onSigned?: (checkpoint: StoredCheckpoint) => void;
  onInconsistent?: () => void;
}

/**
 * Has ca-signer sign checkpoints of the tree: at a fixed interval when the tree grew, and on
 * demand. Before asking, the log proves to itself that the tree extends its last checkpoint
 * (RFC 9162 consistency proof) and refuses to go on if not; ca-signer checks the same proof
 * against the last checkpoint it signed. What comes back is verified (signature, signer chain,
 * the signed size and root are ours) before it is stored and published.
 */
export class Checkpointer {
  readonly #o: CheckpointerOptions;
  #queue: Promise<unknown> = Promise.resolve();
  #timer?: NodeJS.Timeout;
  #running?: Promise<unknown>;

  constructor(options: CheckpointerOptions) {
    this.#o = options;
  }

  /** Checkpoints every `intervalMs` (when the tree grew) until stopped. */
  start(intervalMs: number): void {
    const tick = () => {
      this.#running = this.checkpoint({ force: false })
        .catch((err: unknown) => this.#o.logger.warn({ err }, 'audit checkpoint failed; retrying at the next interval'))
        .finally(() => {
          if (this.#timer !== undefined) this.#timer = setTimeout(tick, intervalMs);
        });
    };
    this.#timer = setTimeout(tick, intervalMs);
  }

  async stop(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  /** One checkpoint now (queued behind one in progress). `force` signs even if the tree did not grow. */
  checkpoint(options: { force: boolean; request?: { auditorId: string; idempotencyKey: string } }): Promise<StoredCheckpoint | undefined> {
    const next = this.#queue.then(() => this.#checkpoint(options));
    this.#queue = next.catch(() => undefined);
    return next;
  }

  async #checkpoint(options: { force: boolean; request?: { auditorId: string; idempotencyKey: string } }): Promise<StoredCheckpoint | undefined> {
    const operation = 'audit checkpoint';
    const { log } = this.#o;
    const head = await log.treeHead();
    if (head.size === 0) {
      if (options.force) throw new PkiError('FAILED_PRECONDITION', `${operation}: the log is empty`);
      return undefined;
    }
    const last = await log.latestCheckpoint();
    if (last && last.treeSize === head.size && !options.force) return undefined;
    if (last && last.treeSize > head.size) {
      this.#o.onInconsistent?.();
      throw new PkiError('INTERNAL', `${operation}: the tree has ${head.size} leaves, fewer than the last checkpoint (${last.treeSize}): leaves were removed`);
    }
    const previous = last?.treeSize ?? 0;
    const proof = await log.consistencyProof(previous, head.size);
    if (last && !verifyConsistency(previous, head.size, last.rootHash, head.root, proof)) {
      this.#o.onInconsistent?.();
      throw new PkiError('INTERNAL', `${operation}: the tree of ${head.size} leaves is not consistent with the checkpoint at ${previous}: the stored history changed`);
    }
    const request = { origin: this.#o.origin, treeSize: head.size, rootHash: head.root, previousTreeSize: previous, consistencyProof: proof, producerHeads: head.heads };
    let signed: SignedCheckpoint;
    try {
      signed = await this.#o.signer.sign(request);
    } catch (err) {
      // ca-signer's last checkpoint for this log differs from ours (ours was lost after it signed,
      // or the database was restored): prove consistency from the one it holds instead.
      const signedSize = err instanceof PkiError && err.code === 'FAILED_PRECONDITION' ? Number(err.details.signed_tree_size) : NaN;
      if (!Number.isSafeInteger(signedSize) || signedSize === previous || signedSize > head.size) throw err;
      this.#o.logger.warn({ ours: previous, signers: signedSize }, `${operation}: ca-signer's last checkpoint differs from ours; proving from its size`);
      signed = await this.#o.signer.sign({ ...request, previousTreeSize: signedSize, consistencyProof: await log.consistencyProof(signedSize, head.size) });
    }
    let body;
    try {
      body = verifyCheckpointSignature(signed, this.#o.trustAnchors);
    } catch (err) {
      throw new PkiError('INTERNAL', `${operation}: ca-signer returned a checkpoint that does not verify (${(err as CheckpointError).message})`, { cause: err });
    }
    if (body.origin !== this.#o.origin || body.treeSize !== head.size || !body.rootHash.equals(head.root)) {
      throw new PkiError('INTERNAL', `${operation}: ca-signer signed another tree head than requested`);
    }
    const stored = await log.saveCheckpoint(signed, body, options.request);
    this.#o.logger.info({ treeSize: stored.treeSize, root: stored.rootHash.toString('hex') }, 'audit checkpoint signed');
    this.#o.onSigned?.(stored);
    return stored;
  }
}
