import { Pool as PgPool, type Pool } from 'pg';
import { create, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { PkiError, type Clock } from '@pki/kit';
import { assertSchemaName, withTransaction, type Tx } from '@pki/db';
import { appendEvent } from '@pki/outbox';
import { appendAuditEvent, AuditOutcome, serviceActor } from '@pki/audit-events';
import { CompactRange, consistencyProofRanges, inclusionProofRanges, nodeKey, nodesOfRanges, perfectSubtrees, rangeHash, type LeafRange, type NodeAddress } from '@pki/merkle';
import { eventsV1, Topics } from '@pki/proto';
import { planAppend, recordedKey, type IncomingEvent } from '../../domain/ingest';
import type { BreakLeaf, Leaf } from '../../domain/record';
import type { CheckpointBody, SignedCheckpoint } from '../../domain/checkpoint';

/** The role every record-pool connection takes: INSERT and SELECT on the append-only tables only. */
export const APPENDER_ROLE = 'pki_audit_appender';

/**
 * A pool whose connections append as {@link APPENDER_ROLE}, not as the owner that ran the
 * migrations: the service itself cannot update or delete what it recorded.
 */
export function createRecordPool(options: { url: string; schema: string; maxConnections: number; statementTimeoutMs: number }): Pool {
  assertSchemaName(options.schema);
  // The role travels in the startup packet like the search_path (see @pki/db createPool), so it
  // holds from the first statement of every connection.
  const pool = new PgPool({
    connectionString: options.url,
    max: options.maxConnections,
    application_name: 'audit-records',
    connectionTimeoutMillis: 10_000,
    idleTimeoutMillis: 30_000,
    options: `-c search_path=${options.schema} -c statement_timeout=${Math.floor(options.statementTimeoutMs)} -c role=${APPENDER_ROLE}`,
  });
  pool.on('error', () => undefined);
  return pool;
}

export interface AuditChannels {
  /** Outbox producer of the audit service's own audit events (alerts, exports, auditor changes). */
  producer: string;
  /** Outbox producer of published checkpoints. */
  checkpointProducer: string;
  /** The service's own identity, the actor of its alerts. */
  identity: string;
  clock: Clock;
}

export interface AppendResult {
  appended: number;
  duplicates: number;
  breaks: BreakLeaf[];
  treeSize: number;
  /** Per producer: its last event recorded in this batch. */
  heads: Map<string, { seq: number; committedAt: Date }>;
  /** Per producer: event leaves appended. */
  recorded: Map<string, number>;
}

export interface TreeHead {
  size: number;
  root: Buffer;
  heads: Array<{ producer: string; seq: number }>;
}

export interface StoredCheckpoint extends SignedCheckpoint {
  id: number;
  treeSize: number;
  rootHash: Buffer;
  signedAt: Date;
}

export interface RecordQuery {
  producer?: string;
  actorType?: string;
  actorId?: string;
  action?: string;
  objectType?: string;
  objectId?: string;
  from?: Date;
  to?: Date;
  afterIndex?: number;
  limit: number;
}

export interface StoredRecord {
  index: number;
  leaf: Buffer;
  leafHash: Buffer;
  recordedAt: Date;
}

export interface Auditor {
  id: string;
  active: boolean;
}

/**
 * The audit log in PostgreSQL: leaves, tree nodes, the tree head and checkpoints. Appends are
 * serialised by the log_state row lock: one writer at a time, in the order batches arrive.
 */
export class PostgresAuditLog {
  constructor(
    private readonly pool: Pool,
    private readonly channels: AuditChannels,
  ) {}

  /**
   * Records a batch in one transaction: its leaves, the tree nodes they complete, the new head,
   * and for every break an alert event in the service's own outbox. A redelivered batch (the
   * transport resent after a crash) finds its events recorded and adds nothing.
   */
  async append(events: readonly IncomingEvent[]): Promise<AppendResult> {
    if (events.length === 0) return { appended: 0, duplicates: 0, breaks: [], treeSize: (await this.treeHead()).size, heads: new Map(), recorded: new Map() };
    const now = this.channels.clock.now();
    return withTransaction(this.pool, async (tx) => {
      const state = await tx.query<{ tree_size: string; frontier: Buffer[] }>('SELECT tree_size, frontier FROM log_state FOR UPDATE');
      const size = Number(state.rows[0]!.tree_size);
      const range = CompactRange.fromNodes(size, state.rows[0]!.frontier);
      const producers = [...new Set(events.flatMap((e) => (e.producer === undefined ? [] : [e.producer])))];
      const headRows = await tx.query<{ producer: string; last_seq: string }>('SELECT producer, last_seq FROM producer_heads WHERE producer = ANY($1)', [producers]);
      const heads = new Map(headRows.rows.map((r) => [r.producer, Number(r.last_seq)]));
      const recorded = await this.#recordedAtOrBelowHeads(tx, events, heads);

      const plan = planAppend({ startIndex: size, heads, recorded, events, now });
      const nodes: Array<{ node: NodeAddress; hash: Buffer }> = [];
      for (const planned of plan.leaves) range.append(planned.hash, (node, hash) => nodes.push({ node, hash }));
      if (plan.leaves.length > 0) {
        await insertLeaves(tx, plan.leaves.map((p) => ({ leaf: p.leaf, bytes: p.bytes, hash: p.hash })));
        if (nodes.length > 0) {
          await tx.query('INSERT INTO tree_nodes (level, node_idx, hash) SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])', [
            nodes.map((n) => n.node.level),
            nodes.map((n) => n.node.index),
            nodes.map((n) => n.hash),
          ]);
        }
        await tx.query('UPDATE log_state SET tree_size = $1, frontier = $2', [range.size, range.nodes]);
      }
      if (plan.heads.size > 0) {
        const moved = [...plan.heads];
        await tx.query(
          `INSERT INTO producer_heads (producer, last_seq, last_committed_at, last_recorded_at)
           SELECT p, s, c, $4 FROM unnest($1::text[], $2::bigint[], $3::timestamptz[]) AS h(p, s, c)
           ON CONFLICT (producer) DO UPDATE SET last_seq = EXCLUDED.last_seq, last_committed_at = EXCLUDED.last_committed_at, last_recorded_at = EXCLUDED.last_recorded_at`,
          [moved.map(([p]) => p), moved.map(([, h]) => h.seq), moved.map(([, h]) => h.committedAt), now],
        );
      }
      for (const b of plan.breaks) await this.#raiseAlert(tx, b);
      const recordedByProducer = new Map<string, number>();
      for (const { leaf } of plan.leaves) if (leaf.type === 'event') recordedByProducer.set(leaf.producer, (recordedByProducer.get(leaf.producer) ?? 0) + 1);
      return { appended: plan.leaves.length, duplicates: plan.duplicates, breaks: plan.breaks, treeSize: range.size, heads: plan.heads, recorded: recordedByProducer };
    });
  }

  /** Payload hashes of already recorded (producer, seq) for events at or below their producer's head. */
  async #recordedAtOrBelowHeads(tx: Tx, events: readonly IncomingEvent[], heads: Map<string, number>): Promise<Map<string, string>> {
    const old = events.filter((e) => e.producer !== undefined && e.seq !== undefined && e.seq <= (heads.get(e.producer) ?? 0));
    if (old.length === 0) return new Map();
    // The first leaf recorded for a sequence number is the original (later ones are breaks about it).
    const { rows } = await tx.query<{ producer: string; seq: string; payload_sha256: string }>(
      `SELECT DISTINCT ON (r.producer, r.seq) r.producer, r.seq, r.payload_sha256
         FROM records r JOIN unnest($1::text[], $2::bigint[]) AS q(p, s) ON r.producer = q.p AND r.seq = q.s
        ORDER BY r.producer, r.seq, r.leaf_index`,
      [old.map((e) => e.producer!), old.map((e) => e.seq!)],
    );
    return new Map(rows.map((r) => [recordedKey(r.producer, Number(r.seq)), r.payload_sha256]));
  }

  /** The break as an audit event of the audit service itself, committed with the break leaf. */
  async #raiseAlert(tx: Tx, b: BreakLeaf): Promise<void> {
    await appendAuditEvent(tx, { producer: this.channels.producer, clock: this.channels.clock }, {
      action: 'audit-log.break',
      outcome: AuditOutcome.FAILURE,
      actor: serviceActor(this.channels.identity),
      objects: [{ type: 'audit-record', id: String(b.index) }, ...(b.producer ? [{ type: 'producer', id: b.producer }] : [])],
      reason: b.kind,
      attributes: { expectedSeq: String(b.expectedSeq), receivedSeq: String(b.receivedSeq), payloadSha256: b.payloadSha256, detail: b.detail },
    });
  }

  /** Size, root and producer heads read together (appends wait meanwhile). */
  async treeHead(): Promise<TreeHead> {
    return withTransaction(this.pool, async (tx) => {
      const state = await tx.query<{ tree_size: string; frontier: Buffer[] }>('SELECT tree_size, frontier FROM log_state FOR SHARE');
      const size = Number(state.rows[0]!.tree_size);
      const { rows } = await tx.query<{ producer: string; last_seq: string }>('SELECT producer, last_seq FROM producer_heads ORDER BY producer');
      return { size, root: CompactRange.fromNodes(size, state.rows[0]!.frontier).root(), heads: rows.map((r) => ({ producer: r.producer, seq: Number(r.last_seq) })) };
    });
  }

  /** The hashes of the given leaf ranges (each a node of an RFC 9162 tree), from the stored nodes. */
  async rangeHashes(ranges: readonly LeafRange[], size: number): Promise<Buffer[]> {
    for (const [, end] of ranges) if (end > size) throw new PkiError('INTERNAL', `audit log: range beyond tree size ${size}`);
    const nodes = nodesOfRanges(ranges);
    const leaves = nodes.filter((n) => n.level === 0).map((n) => n.index);
    const inner = nodes.filter((n) => n.level > 0);
    const found = new Map<string, Buffer>();
    if (leaves.length > 0) {
      const { rows } = await this.pool.query<{ leaf_index: string; leaf_hash: Buffer }>('SELECT leaf_index, leaf_hash FROM records WHERE leaf_index = ANY($1::bigint[])', [leaves]);
      for (const r of rows) found.set(nodeKey({ level: 0, index: Number(r.leaf_index) }), r.leaf_hash);
    }
    if (inner.length > 0) {
      const { rows } = await this.pool.query<{ level: number; node_idx: string; hash: Buffer }>(
        'SELECT t.level, t.node_idx, t.hash FROM tree_nodes t JOIN unnest($1::smallint[], $2::bigint[]) AS q(l, i) ON t.level = q.l AND t.node_idx = q.i',
        [inner.map((n) => n.level), inner.map((n) => n.index)],
      );
      for (const r of rows) found.set(nodeKey({ level: r.level, index: Number(r.node_idx) }), r.hash);
    }
    return ranges.map(([a, b]) =>
      rangeHash(a, b, (node) => {
        const hash = found.get(nodeKey(node));
        if (!hash) throw new PkiError('INTERNAL', `audit log: tree node ${nodeKey(node)} is missing`);
        return hash;
      }),
    );
  }

  inclusionProof(index: number, size: number): Promise<Buffer[]> {
    return this.rangeHashes(inclusionProofRanges(index, size), size);
  }

  consistencyProof(first: number, second: number): Promise<Buffer[]> {
    return this.rangeHashes(consistencyProofRanges(first, second), second);
  }

  /** The compact range at `size` (the export's starting frontier). */
  async frontierAt(size: number): Promise<Buffer[]> {
    const ranges = perfectSubtrees(0, size).map((n): LeafRange => [n.index * 2 ** n.level, (n.index + 1) * 2 ** n.level]);
    return this.rangeHashes(ranges, size);
  }

  /** Stores a checkpoint ca-signer signed, and publishes it through the outbox in the same transaction. */
  async saveCheckpoint(signed: SignedCheckpoint, body: CheckpointBody, request?: { auditorId: string; idempotencyKey: string }): Promise<StoredCheckpoint> {
    return withTransaction(this.pool, async (tx) => {
      const { rows } = await tx.query<{ id: string }>(
        `INSERT INTO checkpoints (tree_size, root_hash, signed_at, checkpoint, signature, signature_algorithm, signer_certificate)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
        [body.treeSize, body.rootHash, body.signedAt, signed.checkpoint, signed.signature, signed.signatureAlgorithm, signed.signerCertificate],
      );
      const id = Number(rows[0]!.id);
      if (request) await tx.query('INSERT INTO checkpoint_requests (auditor_id, idempotency_key, checkpoint_id) VALUES ($1, $2, $3)', [request.auditorId, request.idempotencyKey, id]);
      const message = create(eventsV1.AuditCheckpointPublishedSchema, {
        origin: body.origin,
        treeSize: BigInt(body.treeSize),
        rootHash: body.rootHash,
        checkpoint: signed.checkpoint,
        signature: signed.signature,
        signerCertificate: signed.signerCertificate,
        signatureAlgorithm: signed.signatureAlgorithm,
        signedAt: timestampFromDate(body.signedAt),
      });
      await appendEvent(tx, { producer: this.channels.checkpointProducer, topic: Topics.auditCheckpoints, key: body.origin, payload: toBinary(eventsV1.AuditCheckpointPublishedSchema, message) });
      return { ...signed, id, treeSize: body.treeSize, rootHash: body.rootHash, signedAt: body.signedAt };
    });
  }

  async checkpointForRequest(auditorId: string, idempotencyKey: string): Promise<StoredCheckpoint | undefined> {
    const { rows } = await this.pool.query<CheckpointRow>(
      `SELECT c.* FROM checkpoint_requests r JOIN checkpoints c ON c.id = r.checkpoint_id WHERE r.auditor_id = $1 AND r.idempotency_key = $2`,
      [auditorId, idempotencyKey],
    );
    return rows[0] && toCheckpoint(rows[0]);
  }

  async latestCheckpoint(): Promise<StoredCheckpoint | undefined> {
    const { rows } = await this.pool.query<CheckpointRow>('SELECT * FROM checkpoints ORDER BY tree_size DESC, id DESC LIMIT 1');
    return rows[0] && toCheckpoint(rows[0]);
  }

  /** The latest checkpoint at exactly this size, if one was signed. */
  async checkpointAt(size: number): Promise<StoredCheckpoint | undefined> {
    const { rows } = await this.pool.query<CheckpointRow>('SELECT * FROM checkpoints WHERE tree_size = $1 ORDER BY id DESC LIMIT 1', [size]);
    return rows[0] && toCheckpoint(rows[0]);
  }

  /** Checkpoints newest first; `beforeId` pages. */
  async listCheckpoints(limit: number, beforeId?: number): Promise<StoredCheckpoint[]> {
    const { rows } = await this.pool.query<CheckpointRow>('SELECT * FROM checkpoints WHERE ($1::bigint IS NULL OR id < $1) ORDER BY id DESC LIMIT $2', [beforeId ?? null, limit]);
    return rows.map(toCheckpoint);
  }

  /** One checkpoint per size in (from, to], the last signed of each: what an export carries. */
  async checkpointsBetween(from: number, to: number): Promise<StoredCheckpoint[]> {
    const { rows } = await this.pool.query<CheckpointRow>(
      'SELECT DISTINCT ON (tree_size) * FROM checkpoints WHERE tree_size > $1 AND tree_size <= $2 ORDER BY tree_size, id DESC',
      [from, to],
    );
    return rows.map(toCheckpoint);
  }

  async records(q: RecordQuery): Promise<StoredRecord[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    const arg = (v: unknown) => {
      args.push(v);
      return `$${args.length}`;
    };
    if (q.producer !== undefined) where.push(`r.producer = ${arg(q.producer)}`);
    if (q.actorType !== undefined) where.push(`r.actor_type = ${arg(q.actorType)}`);
    if (q.actorId !== undefined) where.push(`r.actor_id = ${arg(q.actorId)}`);
    if (q.action !== undefined) where.push(`r.action = ${arg(q.action)}`);
    if (q.from !== undefined) where.push(`r.occurred_at >= ${arg(q.from)}`);
    if (q.to !== undefined) where.push(`r.occurred_at < ${arg(q.to)}`);
    if (q.afterIndex !== undefined) where.push(`r.leaf_index > ${arg(q.afterIndex)}`);
    if (q.objectType !== undefined || q.objectId !== undefined) {
      const conditions = [
        ...(q.objectType !== undefined ? [`o.object_type = ${arg(q.objectType)}`] : []),
        ...(q.objectId !== undefined ? [`o.object_id = ${arg(q.objectId)}`] : []),
      ];
      where.push(`EXISTS (SELECT 1 FROM record_objects o WHERE o.leaf_index = r.leaf_index AND ${conditions.join(' AND ')})`);
    }
    const { rows } = await this.pool.query<{ leaf_index: string; leaf: Buffer; leaf_hash: Buffer; recorded_at: Date }>(
      `SELECT r.leaf_index, r.leaf, r.leaf_hash, r.recorded_at FROM records r ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY r.leaf_index LIMIT ${arg(q.limit)}`,
      args,
    );
    return rows.map((r) => ({ index: Number(r.leaf_index), leaf: r.leaf, leafHash: r.leaf_hash, recordedAt: r.recorded_at }));
  }

  async record(index: number): Promise<StoredRecord | undefined> {
    return (await this.recordsBetween(index, index + 1))[0];
  }

  /** Leaves [from, to) in order (an export reads them in slices). */
  async recordsBetween(from: number, to: number): Promise<StoredRecord[]> {
    const { rows } = await this.pool.query<{ leaf_index: string; leaf: Buffer; leaf_hash: Buffer; recorded_at: Date }>(
      'SELECT leaf_index, leaf, leaf_hash, recorded_at FROM records WHERE leaf_index >= $1 AND leaf_index < $2 ORDER BY leaf_index',
      [from, to],
    );
    return rows.map((r) => ({ index: Number(r.leaf_index), leaf: r.leaf, leafHash: r.leaf_hash, recordedAt: r.recorded_at }));
  }

  async auditorByCertificate(certificateSha256: string): Promise<Auditor | undefined> {
    const { rows } = await this.pool.query<{ id: string; active: boolean }>('SELECT id, active FROM auditors WHERE certificate_sha256 = $1', [certificateSha256]);
    return rows[0];
  }

  /** Writes one of the service's own audit events (an auditor's export, an on-demand checkpoint). */
  async audit(event: Parameters<typeof appendAuditEvent>[2]): Promise<void> {
    await withTransaction(this.pool, (tx) => appendAuditEvent(tx, { producer: this.channels.producer, clock: this.channels.clock }, event).then(() => undefined));
  }

  /** Lag per producer: the newest committed event recorded and when. */
  async producerHeads(): Promise<Array<{ producer: string; seq: number; committedAt: Date; recordedAt: Date }>> {
    const { rows } = await this.pool.query<{ producer: string; last_seq: string; last_committed_at: Date; last_recorded_at: Date }>('SELECT * FROM producer_heads ORDER BY producer');
    return rows.map((r) => ({ producer: r.producer, seq: Number(r.last_seq), committedAt: r.last_committed_at, recordedAt: r.last_recorded_at }));
  }
}

async function insertLeaves(tx: Tx, leaves: Array<{ leaf: Leaf; bytes: Buffer; hash: Buffer }>): Promise<void> {
  const col = <T>(f: (l: Leaf) => T) => leaves.map((p) => f(p.leaf));
  const ev = <T>(f: (l: Extract<Leaf, { type: 'event' }>) => T) => col((l) => (l.type === 'event' ? f(l) : null));
  await tx.query(
    `INSERT INTO records (leaf_index, kind, producer, seq, event_id, occurred_at, action, outcome, actor_type, actor_id, payload_sha256, leaf, leaf_hash)
     SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::timestamptz[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bytea[], $13::bytea[])`,
    [
      col((l) => l.index),
      col((l) => l.type),
      col((l) => l.producer),
      col((l) => (l.type === 'event' ? l.seq : l.receivedSeq)),
      ev((l) => l.eventId),
      ev((l) => l.occurredAt),
      ev((l) => l.action),
      ev((l) => l.outcome),
      ev((l) => l.actor.type),
      ev((l) => l.actor.id),
      col((l) => l.payloadSha256),
      leaves.map((p) => p.bytes),
      leaves.map((p) => p.hash),
    ],
  );
  const objects = leaves.flatMap((p) => (p.leaf.type === 'event' ? dedupeObjects(p.leaf.objects).map((o) => ({ ...o, index: p.leaf.index })) : []));
  if (objects.length > 0) {
    await tx.query('INSERT INTO record_objects (object_type, object_id, leaf_index) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])', [
      objects.map((o) => o.type),
      objects.map((o) => o.id),
      objects.map((o) => o.index),
    ]);
  }
}

function dedupeObjects(objects: Array<{ type: string; id: string }>): Array<{ type: string; id: string }> {
  const seen = new Set<string>();
  return objects.filter((o) => {
    const key = `${o.type}\u0000${o.id}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

interface CheckpointRow {
  id: string;
  tree_size: string;
  root_hash: Buffer;
  signed_at: Date;
  checkpoint: Buffer;
  signature: Buffer;
  signature_algorithm: string;
  signer_certificate: Buffer;
}

function toCheckpoint(r: CheckpointRow): StoredCheckpoint {
  return {
    id: Number(r.id),
    treeSize: Number(r.tree_size),
    rootHash: r.root_hash,
    signedAt: r.signed_at,
    checkpoint: r.checkpoint,
    signature: r.signature,
    signatureAlgorithm: r.signature_algorithm,
    signerCertificate: r.signer_certificate,
  };
}
