import { encodeLeaf, eventLeaf, leafHashOf, sha256Hex, type BreakKind, type BreakLeaf, type Leaf } from './record';

/** One message from the audit topic, as the transport delivered it. */
export interface IncomingEvent {
  /** Absent when the message carried no producer and sequence headers. */
  producer?: string;
  seq?: number;
  payload: Uint8Array;
  /** When the producer's transaction appended it (outbox created_at). */
  committedAt: Date;
  /** Where the transport found it (topic/partition/offset), for a message that has nothing else. */
  source: string;
}

export interface PlannedLeaf {
  leaf: Leaf;
  bytes: Buffer;
  hash: Buffer;
}

export interface AppendPlan {
  leaves: PlannedLeaf[];
  /** The new head of every producer that moved. */
  heads: Map<string, { seq: number; committedAt: Date }>;
  /** Redeliveries of recorded events (same producer, sequence and content): skipped. */
  duplicates: number;
  breaks: BreakLeaf[];
}

export interface AppendInput {
  /** Index of the next leaf (the tree's size). */
  startIndex: number;
  /** Last recorded sequence number per producer. */
  heads: ReadonlyMap<string, number>;
  /** Payload SHA-256 of already recorded (producer, seq), for the events at or below their producer's head. */
  recorded: ReadonlyMap<string, string>;
  events: readonly IncomingEvent[];
  now: Date;
}

export const recordedKey = (producer: string, seq: number): string => `${producer}\u0000${seq}`;

/**
 * Decides, for a batch in delivery order, what the log appends: the rules that make each
 * producer's sequence checkable (gaps, reordering, duplicates). Nothing is ever dropped silently:
 * an event that cannot take its place in its producer's sequence is recorded as a break leaf,
 * which the service also raises as an alert and a metric, and which every verifier reports.
 *
 * - seq = head + 1: the event's leaf.
 * - seq > head + 1: a sequence-gap break, then the event's leaf (the missing ones never came).
 * - seq <= head, same content as recorded: a redelivery (at-least-once transport); skipped.
 * - seq <= head, other content: a sequence-conflict break.
 * - seq <= head, never recorded (inside an earlier gap): a sequence-out-of-order break.
 */
export function planAppend(input: AppendInput): AppendPlan {
  const heads = new Map(input.heads);
  const recorded = new Map(input.recorded);
  const moved = new Map<string, { seq: number; committedAt: Date }>();
  const leaves: PlannedLeaf[] = [];
  const breaks: BreakLeaf[] = [];
  let duplicates = 0;
  let index = input.startIndex;
  const detectedAt = input.now.toISOString();

  const push = (leaf: Leaf) => {
    const bytes = encodeLeaf(leaf);
    leaves.push({ leaf, bytes, hash: leafHashOf(bytes) });
    if (leaf.type === 'break') breaks.push(leaf);
    index++;
  };
  const breakLeaf = (kind: BreakKind, producer: string, expectedSeq: number, receivedSeq: number, payloadSha256: string, detail: string): BreakLeaf => ({
    type: 'break',
    index,
    kind,
    producer,
    expectedSeq,
    receivedSeq,
    payloadSha256,
    detectedAt,
    detail,
  });

  for (const event of input.events) {
    const payloadSha256 = sha256Hex(event.payload);
    if (event.producer === undefined || event.seq === undefined) {
      push(breakLeaf('unattributable-message', '', 0, 0, payloadSha256, `no producer and sequence headers at ${event.source}`));
      continue;
    }
    const { producer, seq } = event;
    const head = heads.get(producer) ?? 0;
    if (seq <= head) {
      const known = recorded.get(recordedKey(producer, seq));
      if (known === payloadSha256) {
        duplicates++;
      } else if (known !== undefined) {
        push(breakLeaf('sequence-conflict', producer, head + 1, seq, payloadSha256, `sequence ${seq} was recorded with payload SHA-256 ${known}`));
      } else {
        push(breakLeaf('sequence-out-of-order', producer, head + 1, seq, payloadSha256, `sequence ${seq} arrived after ${head}`));
        recorded.set(recordedKey(producer, seq), payloadSha256);
      }
      continue;
    }
    if (seq > head + 1) push(breakLeaf('sequence-gap', producer, head + 1, seq, payloadSha256, `sequences ${head + 1}..${seq - 1} never arrived`));
    const leaf = eventLeaf(index, producer, seq, event.payload, event.committedAt);
    push(leaf ?? breakLeaf('undecodable-event', producer, seq, seq, payloadSha256, 'the payload is not a complete AuditEvent'));
    heads.set(producer, seq);
    recorded.set(recordedKey(producer, seq), payloadSha256);
    moved.set(producer, { seq, committedAt: event.committedAt });
  }
  return { leaves, heads: moved, duplicates, breaks };
}
