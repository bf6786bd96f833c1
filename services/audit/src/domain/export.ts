import { PkiError } from '@pki/kit';
import type { PostgresAuditLog, StoredCheckpoint } from '../adapters/postgres/audit-log';

/** The first line of an export. */
export const EXPORT_FORMAT = 'pki-audit-export v1';

export function checkpointLine(c: StoredCheckpoint): string {
  return JSON.stringify({
    type: 'checkpoint',
    treeSize: c.treeSize,
    checkpoint: c.checkpoint.toString('base64'),
    signature: c.signature.toString('base64'),
    signatureAlgorithm: c.signatureAlgorithm,
    signerCertificate: c.signerCertificate.toString('base64'),
  });
}

export interface ExportRange {
  /** 0, or the size of a signed checkpoint (the export starts from a verified head). */
  from: number;
  /** The size of a signed checkpoint (the export ends on one). */
  to: number;
  /** The size of a checkpoint the auditor kept from an earlier audit: a consistency proof to `to` is included. */
  consistencyFrom?: number;
}

/**
 * An export as JSON lines: a header (with the compact range at `from` and, if asked, a consistency
 * proof from the auditor's kept checkpoint), the starting checkpoint, then every leaf from `from`
 * to `to` verbatim, with each checkpoint line right after the leaf that completes its size, and
 * an end line. Everything the offline verifier needs besides the CA certificates.
 */
export async function* exportLines(log: PostgresAuditLog, origin: string, range: ExportRange, now: Date, sliceSize = 5000): AsyncGenerator<string> {
  const operation = 'export';
  const end = await log.checkpointAt(range.to);
  if (!end) throw new PkiError('INVALID_ARGUMENT', `${operation}: 'to' must be the tree size of a signed checkpoint; none at ${range.to}`);
  const start = range.from === 0 ? undefined : await log.checkpointAt(range.from);
  if (range.from !== 0 && !start) throw new PkiError('INVALID_ARGUMENT', `${operation}: 'from' must be 0 or the tree size of a signed checkpoint; none at ${range.from}`);
  if (range.from > range.to) throw new PkiError('INVALID_ARGUMENT', `${operation}: 'from' (${range.from}) exceeds 'to' (${range.to})`);
  if (range.consistencyFrom !== undefined && range.consistencyFrom > range.to) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: consistencyFrom (${range.consistencyFrom}) exceeds 'to' (${range.to})`);
  }
  const frontier = await log.frontierAt(range.from);
  const consistency =
    range.consistencyFrom !== undefined ? { from: range.consistencyFrom, to: range.to, proof: (await log.consistencyProof(range.consistencyFrom, range.to)).map((h) => h.toString('base64')) } : undefined;
  yield JSON.stringify({ type: 'export', format: EXPORT_FORMAT, origin, from: range.from, to: range.to, exportedAt: now.toISOString(), frontier: frontier.map((h) => h.toString('base64')), ...(consistency ? { consistency } : {}) });
  if (start) yield checkpointLine(start);
  const checkpoints = await log.checkpointsBetween(range.from, range.to);
  let next = 0;
  for (let at = range.from; at < range.to; at += sliceSize) {
    const upTo = Math.min(range.to, at + sliceSize);
    // Exported as stored, even when rows are missing or altered: the verifier, not the server,
    // decides whether the record is intact.
    const records = await log.recordsBetween(at, upTo);
    for (const r of records) {
      yield r.leaf.toString('utf8');
      while (next < checkpoints.length && checkpoints[next]!.treeSize === r.index + 1) yield checkpointLine(checkpoints[next++]!);
    }
  }
  yield JSON.stringify({ type: 'end', leaves: range.to - range.from });
}
