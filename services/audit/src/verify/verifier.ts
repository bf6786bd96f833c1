import type { X509Certificate } from 'node:crypto';
import { CompactRange, hashLeaf, verifyConsistency } from '@pki/merkle';
import { CheckpointError, verifyCheckpointSignature, type CheckpointBody } from '../domain/checkpoint';
import { EXPORT_FORMAT } from '../domain/export';
import { EVENT_FIELDS, EVENT_PREFIX, type HashedBlock } from './leaf-hasher';

/** A checkpoint line of an export (also what an auditor keeps between audits). */
export interface CheckpointLine {
  type: 'checkpoint';
  treeSize: number;
  checkpoint: string;
  signature: string;
  signatureAlgorithm: string;
  signerCertificate: string;
}

export interface BreakFinding {
  index: number;
  kind: string;
  producer: string;
  detail: string;
}

export interface VerificationReport {
  /** True when nothing failed: every leaf, root, signature and sequence checked out. */
  verified: boolean;
  failures: string[];
  /** Breaks the log itself recorded (evidence of a producer-side problem, not of tampering). */
  breaks: BreakFinding[];
  origin?: string;
  from?: number;
  to?: number;
  leaves: number;
  checkpointsVerified: number;
  /** Last sequence number per producer at the end of the export. */
  producerHeads: Record<string, number>;
  /** The export's last checkpoint, to keep for the next audit (only when verified). */
  finalCheckpoint?: CheckpointLine;
}

export interface VerifierOptions {
  /** CA certificates (root and issuing) the checkpoint key must chain to. */
  trustAnchors: readonly X509Certificate[];
  /** A checkpoint kept from an earlier audit: the export must be consistent with it. */
  kept?: CheckpointLine;
  onProgress?: (leaves: number, total: number) => void;
  progressEvery?: number;
}

const MAX_FAILURES = 20;


/**
 * Verifies an export line by line, holding only the tree's compact range and the producers'
 * heads: sequence continuity of every producer, each leaf's place, every checkpoint's signature
 * (chained to the given CA certificates), the root at every checkpoint against the leaves, the
 * producer heads each checkpoint attests, and consistency with a checkpoint kept from an earlier
 * audit. Feed it lines with {@link line}, then call {@link finish}.
 */
export class ExportVerifier {
  readonly #o: VerifierOptions;
  readonly #report: VerificationReport = { verified: false, failures: [], breaks: [], leaves: 0, checkpointsVerified: 0, producerHeads: {} };
  #range?: CompactRange;
  #heads = new Map<string, number>();
  #lineNo = 0;
  #header?: { origin: string; from: number; to: number; consistency?: { from: number; to: number; proof: Buffer[] } };
  #expectStartCheckpoint = false;
  #lastSignedAt?: Date;
  #lastCheckpointAt = -1;
  #ended = false;
  #kept?: CheckpointBody;
  #keptChecked = false;

  constructor(options: VerifierOptions) {
    this.#o = options;
  }

  #fail(message: string): void {
    if (this.#report.failures.length < MAX_FAILURES) this.#report.failures.push(`line ${this.#lineNo}: ${message}`);
  }

  /** One line of the export, without its newline. */
  line(bytes: Buffer): void {
    this.#lineNo++;
    if (this.#report.failures.length >= MAX_FAILURES) return;
    if (this.#ended) return this.#fail('content after the end line');
    // Fast path for event leaves, which the audit service writes with a fixed key order: the
    // fields the checks need are read from the line's start. The rest of the line is covered by
    // the leaf hash and the signed root, not by parsing (a line the service wrote is in the tree
    // as written). Anything else is parsed in full.
    if (this.#header && bytes[1] === 0x22 && bytes[9] === 0x65 && bytes.subarray(0, EVENT_PREFIX.length).equals(EVENT_PREFIX)) {
      const m = EVENT_FIELDS.exec(bytes.toString('latin1', 0, 200));
      if (m) return this.#onLeaf(bytes, { type: 'event', index: Number(m[1]), producer: m[2], seq: Number(m[3]) });
    }
    let value: Record<string, unknown>;
    try {
      value = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
    } catch {
      return this.#fail('not a JSON line');
    }
    if (value === null || typeof value !== 'object') return this.#fail('not a JSON object');
    if (!this.#header) return this.#onHeader(value);
    switch (value.type) {
      case 'event':
      case 'break':
        return this.#onLeaf(bytes, value);
      case 'checkpoint':
        return this.#onCheckpoint(value as unknown as CheckpointLine);
      case 'end':
        return this.#onEnd(value);
      default:
        return this.#fail(`unknown line type ${JSON.stringify(value.type)}`);
    }
  }

  #onHeader(value: Record<string, unknown>): void {
    if (value.type !== 'export' || value.format !== EXPORT_FORMAT) return this.#fail(`the first line is not a '${EXPORT_FORMAT}' header`);
    const { origin, from, to, frontier } = value as { origin: unknown; from: unknown; to: unknown; frontier: unknown };
    if (typeof origin !== 'string' || !isSize(from) || !isSize(to) || from > to || !Array.isArray(frontier)) return this.#fail('malformed header');
    try {
      this.#range = CompactRange.fromNodes(from, frontier.map((h) => Buffer.from(String(h), 'base64')));
    } catch (err) {
      return this.#fail(`malformed header frontier (${(err as Error).message})`);
    }
    const c = value.consistency as { from?: unknown; to?: unknown; proof?: unknown } | undefined;
    this.#header = { origin, from, to };
    if (c !== undefined) {
      if (!isSize(c.from) || c.to !== to || !Array.isArray(c.proof)) return this.#fail('malformed consistency proof in the header');
      this.#header.consistency = { from: c.from, to, proof: c.proof.map((h) => Buffer.from(String(h), 'base64')) };
    }
    Object.assign(this.#report, { origin, from, to });
    this.#expectStartCheckpoint = from > 0;
    if (this.#o.kept) {
      try {
        this.#kept = this.#checkSignature(this.#o.kept);
      } catch (err) {
        return this.#fail(`the kept checkpoint: ${(err as Error).message}`);
      }
      if (this.#kept.origin !== origin) this.#fail(`the kept checkpoint is of log '${this.#kept.origin}', the export of '${origin}'`);
      if (this.#kept.treeSize > to) this.#fail(`the export ends at tree size ${to}, before the checkpoint you kept (${this.#kept.treeSize}): it cannot show consistency with it`);
      if (this.#kept.treeSize < from && this.#header.consistency?.from !== this.#kept.treeSize) {
        this.#fail(`the export starts at ${from}, after the checkpoint you kept (${this.#kept.treeSize}), and carries no consistency proof from it (export with consistencyFrom=${this.#kept.treeSize})`);
      }
    }
  }

  #checkSignature(line: CheckpointLine): CheckpointBody {
    if (typeof line.checkpoint !== 'string' || typeof line.signature !== 'string' || typeof line.signerCertificate !== 'string' || typeof line.signatureAlgorithm !== 'string') {
      throw new CheckpointError('malformed checkpoint line');
    }
    const body = verifyCheckpointSignature(
      {
        checkpoint: Buffer.from(line.checkpoint, 'base64'),
        signature: Buffer.from(line.signature, 'base64'),
        signatureAlgorithm: line.signatureAlgorithm,
        signerCertificate: Buffer.from(line.signerCertificate, 'base64'),
      },
      this.#o.trustAnchors,
    );
    if (line.treeSize !== body.treeSize) throw new CheckpointError(`the line says tree size ${line.treeSize}, the signed checkpoint ${body.treeSize}`);
    return body;
  }

  #onCheckpoint(line: CheckpointLine): void {
    const range = this.#range!;
    let body: CheckpointBody;
    try {
      body = this.#checkSignature(line);
    } catch (err) {
      return this.#fail(`forged checkpoint: ${(err as Error).message}`);
    }
    if (body.origin !== this.#header!.origin) return this.#fail(`checkpoint of another log ('${body.origin}', the export is of '${this.#header!.origin}')`);
    if (body.treeSize !== range.size) return this.#fail(`checkpoint for tree size ${body.treeSize} appears after ${range.size} leaves (replayed or moved)`);
    if (this.#lastSignedAt && body.signedAt < this.#lastSignedAt) return this.#fail(`checkpoint at ${body.treeSize} was signed before the previous one (replayed)`);
    if (!body.rootHash.equals(range.root())) {
      return this.#fail(`the leaves do not hash to the root signed at tree size ${body.treeSize}: a leaf before it was changed, removed, inserted or reordered`);
    }
    if (this.#expectStartCheckpoint) {
      // The signed starting point: its producer heads are where every sequence resumes.
      this.#expectStartCheckpoint = false;
      this.#heads = new Map(body.producerHeads);
    } else {
      for (const producer of new Set([...body.producerHeads.keys(), ...this.#heads.keys()])) {
        if (body.producerHeads.get(producer) !== this.#heads.get(producer)) {
          this.#fail(`checkpoint at ${body.treeSize} attests ${producer} up to ${body.producerHeads.get(producer) ?? 'nothing'}, the leaves show ${this.#heads.get(producer) ?? 'nothing'}`);
        }
      }
    }
    this.#lastSignedAt = body.signedAt;
    this.#lastCheckpointAt = body.treeSize;
    this.#report.checkpointsVerified++;
    this.#report.finalCheckpoint = line;
    this.#checkKeptAt(range.size, range.root());
  }

  #checkKeptAt(size: number, root: Buffer): void {
    if (!this.#kept || this.#keptChecked || this.#kept.treeSize !== size) return;
    this.#keptChecked = true;
    if (!this.#kept.rootHash.equals(root)) this.#fail(`the tree at size ${size} is not the one you kept a checkpoint of: the history was rewritten`);
  }

  /** An event leaf a worker already hashed and read (see leaf-hasher.ts). */
  hashedEvent(hash: Uint8Array, index: number, producer: string, seq: number): void {
    this.#lineNo++;
    if (this.#report.failures.length >= MAX_FAILURES) return;
    if (this.#ended) return this.#fail('content after the end line');
    if (!this.#header) return this.#fail('the first line is not an export header');
    this.#appendLeaf(hash, { type: 'event', index, producer, seq });
  }

  /** A block of lines as a worker returned it, in order. */
  block(hashed: HashedBlock): void {
    let other = 0;
    for (let i = 0; i < hashed.kinds.length; i++) {
      if (hashed.kinds[i] === 1) this.hashedEvent(hashed.hashes.subarray(32 * i, 32 * i + 32), hashed.numbers[2 * i]!, hashed.producerNames[hashed.producerIds[i]!]!, hashed.numbers[2 * i + 1]!);
      else {
        const line = hashed.others[other++]!;
        this.line(Buffer.from(line.buffer, line.byteOffset, line.byteLength));
      }
    }
  }

  #onLeaf(bytes: Buffer, leaf: Record<string, unknown>): void {
    this.#appendLeaf(hashLeaf(bytes), leaf);
  }

  #appendLeaf(hash: Uint8Array, leaf: Record<string, unknown>): void {
    const range = this.#range!;
    if (this.#expectStartCheckpoint) {
      this.#expectStartCheckpoint = false;
      this.#fail(`the export starts at ${this.#header!.from} without the checkpoint at that size`);
    }
    if (leaf.index !== range.size) this.#fail(`leaf says index ${String(leaf.index)}, its place is ${range.size} (inserted, removed or swapped)`);
    this.#checkSequence(leaf);
    range.append(hash);
    this.#report.leaves++;
    if (this.#kept && !this.#keptChecked && this.#kept.treeSize === range.size) this.#checkKeptAt(range.size, range.root());
    const every = this.#o.progressEvery ?? 100_000;
    if (this.#o.onProgress && this.#report.leaves % every === 0) this.#o.onProgress(this.#report.leaves, this.#header!.to - this.#header!.from);
  }

  /** Each producer's sequence: one event per number, in order; the log's own breaks explain the rest. */
  #checkSequence(leaf: Record<string, unknown>): void {
    const producer = leaf.producer;
    if (typeof producer !== 'string') return this.#fail('leaf without producer');
    const head = this.#heads.get(producer) ?? 0;
    if (leaf.type === 'event') {
      if (leaf.seq !== head + 1) return this.#fail(`${producer} sequence ${String(leaf.seq)} follows ${head} (an event is missing, repeated or out of order)`);
      this.#heads.set(producer, head + 1);
      return;
    }
    const { kind, expectedSeq, receivedSeq, detail, index } = leaf as { kind: unknown; expectedSeq: unknown; receivedSeq: unknown; detail: unknown; index: unknown };
    this.#report.breaks.push({ index: Number(index), kind: String(kind), producer, detail: String(detail) });
    if (kind === 'sequence-gap') {
      if (expectedSeq !== head + 1 || typeof receivedSeq !== 'number' || receivedSeq <= head + 1) return this.#fail(`${producer}: a gap break that does not follow sequence ${head}`);
      this.#heads.set(producer, receivedSeq - 1);
    } else if (kind === 'undecodable-event') {
      if (receivedSeq !== head + 1) return this.#fail(`${producer} sequence ${String(receivedSeq)} follows ${head}`);
      this.#heads.set(producer, head + 1);
    } else if (kind === 'sequence-conflict' || kind === 'sequence-out-of-order') {
      if (typeof receivedSeq !== 'number' || receivedSeq > head) this.#fail(`${producer}: a ${kind} break for sequence ${String(receivedSeq)} beyond its head ${head}`);
    } else if (kind !== 'unattributable-message') {
      this.#fail(`unknown break kind ${JSON.stringify(kind)}`);
    }
  }

  #onEnd(value: Record<string, unknown>): void {
    this.#ended = true;
    if (value.leaves !== this.#report.leaves) this.#fail(`the end line counts ${String(value.leaves)} leaves, the export has ${this.#report.leaves}`);
  }

  finish(): VerificationReport {
    const header = this.#header;
    if (!header) this.#fail('empty export');
    else {
      const size = this.#range!.size;
      if (size !== header.to) this.#fail(`truncated: the header announces leaves up to ${header.to}, the export has ${size}`);
      if (!this.#ended) this.#fail('truncated: no end line');
      if (this.#lastCheckpointAt !== header.to) this.#fail(`no signed checkpoint covers the end of the export (tree size ${header.to})`);
      if (this.#kept && this.#kept.treeSize < header.from) {
        const c = header.consistency;
        const final = this.#report.finalCheckpoint;
        const ok = c !== undefined && final !== undefined && this.#lastCheckpointAt === header.to && verifyConsistency(this.#kept.treeSize, header.to, this.#kept.rootHash, this.#range!.root(), c.proof);
        if (!ok) this.#fail(`the export is not consistent with the checkpoint you kept at tree size ${this.#kept.treeSize}: the history was rewritten`);
      }
      if (this.#kept && this.#kept.treeSize >= header.from && this.#kept.treeSize <= header.to && !this.#keptChecked) this.#fail('the kept checkpoint was not reached');
    }
    this.#report.producerHeads = Object.fromEntries([...this.#heads].sort(([a], [b]) => (a < b ? -1 : 1)));
    this.#report.verified = this.#report.failures.length === 0;
    if (!this.#report.verified) delete this.#report.finalCheckpoint;
    return this.#report;
  }
}

function isSize(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Splits a byte stream into lines (LF) and feeds them to the verifier. */
export async function verifyStream(stream: AsyncIterable<Buffer>, verifier: ExportVerifier): Promise<VerificationReport> {
  let carry: Buffer | undefined;
  for await (const chunk of stream) {
    const data = carry ? Buffer.concat([carry, chunk]) : chunk;
    let start = 0;
    for (let nl = data.indexOf(10, start); nl !== -1; nl = data.indexOf(10, start)) {
      verifier.line(data.subarray(start, nl));
      start = nl + 1;
    }
    carry = start < data.length ? Buffer.from(data.subarray(start)) : undefined;
  }
  if (carry && carry.length > 0) verifier.line(carry);
  return verifier.finish();
}

/**
 * Verifies a file with worker threads hashing blocks of lines in parallel (one per core by
 * default), feeding the results to the verifier in file order.
 */
export async function verifyFileParallel(file: string, verifier: ExportVerifier, options: { workers?: number; blockBytes?: number } = {}): Promise<VerificationReport> {
  const { createReadStream } = await import('node:fs');
  const { Worker } = await import('node:worker_threads');
  const { availableParallelism } = await import('node:os');
  const { join } = await import('node:path');
  const count = Math.max(1, options.workers ?? availableParallelism());
  const workers = Array.from({ length: count }, () => new Worker(join(__dirname, 'hash-worker.js')));
  const pending = new Map<number, (r: HashedBlock) => void>();
  for (const w of workers) w.on('message', ({ id, result }: { id: number; result: HashedBlock }) => pending.get(id)?.(result));
  const failed = new Promise<never>((_, reject) => workers.forEach((w) => w.once('error', reject)));
  let next = 0;
  const send = (block: Buffer): Promise<HashedBlock> => {
    const id = next++;
    const copy = new Uint8Array(block.length);
    copy.set(block);
    return new Promise<HashedBlock>((resolve) => {
      pending.set(id, (r) => {
        pending.delete(id);
        resolve(r);
      });
      workers[id % count]!.postMessage({ id, block: copy }, [copy.buffer]);
    });
  };
  const inFlight: Array<Promise<HashedBlock>> = [];
  const maxInFlight = 2 * count + 2;
  try {
    let carry: Buffer | undefined;
    for await (const chunk of createReadStream(file, { highWaterMark: options.blockBytes ?? 2 * 1024 * 1024 })) {
      const data: Buffer = carry ? Buffer.concat([carry, chunk as Buffer]) : (chunk as Buffer);
      const lastNewline = data.lastIndexOf(10);
      if (lastNewline === -1) {
        carry = data;
        continue;
      }
      inFlight.push(send(data.subarray(0, lastNewline + 1)));
      carry = lastNewline + 1 < data.length ? Buffer.from(data.subarray(lastNewline + 1)) : undefined;
      while (inFlight.length >= maxInFlight) verifier.block(await Promise.race([inFlight.shift()!, failed]));
    }
    if (carry && carry.length > 0) inFlight.push(send(carry));
    while (inFlight.length > 0) verifier.block(await Promise.race([inFlight.shift()!, failed]));
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return verifier.finish();
}
