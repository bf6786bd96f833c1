import { createHash } from 'node:crypto';

/** Plain SHA-256 in hex, so that an auditor holding the DER (or the key, or the subject) can recompute what an event names. */
export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}
