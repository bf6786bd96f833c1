import { PkiError } from '@pki/kit';

/**
 * One DER element (X.690 §8.1) located in a buffer: where its tag, content and end are. Used where
 * the exact encoding matters and a schema parser would hide it (the string type of a name
 * attribute, the text of a UTCTime).
 */
export interface DerElement {
  /** The identifier octet (single-octet tags only: every tag PKIX uses fits, X.690 §8.1.2.3). */
  tag: number;
  /** Offset of the identifier octet. */
  start: number;
  /** Offset of the first content octet. */
  contentStart: number;
  /** Offset just after the last content octet. */
  end: number;
}

/** Whether the element is constructed (bit 6 of the identifier, X.690 §8.1.2.5). */
export function isConstructed(element: DerElement): boolean {
  return (element.tag & 0x20) !== 0;
}

/**
 * Reads the element at `offset`. Refuses what DER forbids: the indefinite form, long-form lengths
 * that are not minimal (X.690 §10.1), multi-octet tags, and lengths past the end of the buffer.
 */
export function readDerElement(bytes: Uint8Array, offset = 0, operation = 'read DER'): DerElement {
  const fail = (why: string): never => {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: ${why} at offset ${offset}`);
  };
  if (offset + 2 > bytes.length) fail('truncated element');
  const tag = bytes[offset]!;
  if ((tag & 0x1f) === 0x1f) fail('multi-octet tag');
  const first = bytes[offset + 1]!;
  let length: number;
  let contentStart: number;
  if (first < 0x80) {
    length = first;
    contentStart = offset + 2;
  } else {
    const count = first & 0x7f;
    if (count === 0) fail('indefinite length');
    if (count > 4) fail('length too large');
    if (offset + 2 + count > bytes.length) fail('truncated length');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + bytes[offset + 2 + i]!;
    // X.690 §10.1: the definite form with the minimum number of octets.
    if (length < 0x80 || bytes[offset + 2] === 0) fail('non-minimal length');
    contentStart = offset + 2 + count;
  }
  const end = contentStart + length;
  if (end > bytes.length) fail('content runs past the end');
  return { tag, start: offset, contentStart, end };
}

/** The elements inside a constructed element, in order; their lengths must add up exactly. */
export function derChildren(bytes: Uint8Array, parent: DerElement, operation = 'read DER'): DerElement[] {
  if (!isConstructed(parent)) throw new PkiError('INVALID_ARGUMENT', `${operation}: element at offset ${parent.start} is not constructed`);
  const children: DerElement[] = [];
  let offset = parent.contentStart;
  while (offset < parent.end) {
    const child = readDerElement(bytes, offset, operation);
    if (child.end > parent.end) throw new PkiError('INVALID_ARGUMENT', `${operation}: element at offset ${offset} overruns its parent`);
    children.push(child);
    offset = child.end;
  }
  return children;
}

/** The content octets of an element. */
export function derContent(bytes: Uint8Array, element: DerElement): Buffer {
  return Buffer.from(bytes.subarray(element.contentStart, element.end));
}

/** The whole TLV of an element. */
export function derBytes(bytes: Uint8Array, element: DerElement): Buffer {
  return Buffer.from(bytes.subarray(element.start, element.end));
}

/**
 * One DER element (X.690 §8.1: identifier, definite-form minimal length, contents) around contents
 * that are already DER. Used to wrap exact signed bytes without re-encoding them, and on the OCSP
 * hot path where the schema layer costs a hundred times more (see ocsp.ts); everything built with
 * it is compared with the schema layer's encoding in tests.
 */
export function encodeDerElement(tag: number, ...contents: Uint8Array[]): Buffer {
  let length = 0;
  for (const c of contents) length += c.length;
  let headerLength: number;
  if (length < 0x80) headerLength = 2;
  else if (length < 0x100) headerLength = 3;
  else if (length < 0x10000) headerLength = 4;
  else if (length < 0x1000000) headerLength = 5;
  else throw new PkiError('INVALID_ARGUMENT', `encode DER: ${length} content octets is too long`);
  const out = Buffer.allocUnsafe(headerLength + length);
  out[0] = tag;
  if (headerLength === 2) out[1] = length;
  else {
    out[1] = 0x80 | (headerLength - 2);
    for (let i = headerLength - 1, n = length; i >= 2; i--, n >>>= 8) out[i] = n & 0xff;
  }
  let offset = headerLength;
  for (const c of contents) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}

/** The dotted form of an OBJECT IDENTIFIER's content octets (X.690 §8.19). */
export function decodeOid(content: Uint8Array, operation = 'decode OID'): string {
  // A certificate carries a few dozen distinct OIDs, each many times: decode each once.
  const key = Buffer.from(content.buffer, content.byteOffset, content.byteLength).toString('latin1');
  const known = decodedOids.get(key);
  if (known !== undefined) return known;
  const dotted = decodeOidUncached(content, operation);
  if (decodedOids.size >= 1024) decodedOids.clear();
  decodedOids.set(key, dotted);
  return dotted;
}

const decodedOids = new Map<string, string>();

function decodeOidUncached(content: Uint8Array, operation: string): string {
  if (content.length === 0 || (content[content.length - 1]! & 0x80) !== 0) throw new PkiError('INVALID_ARGUMENT', `${operation}: malformed OID`);
  const arcs: bigint[] = [];
  let value = 0n;
  let startOfArc = true;
  for (const byte of content) {
    // X.690 §8.19.2: subidentifiers are minimal, so an arc never starts with 0x80.
    if (startOfArc && byte === 0x80) throw new PkiError('INVALID_ARGUMENT', `${operation}: non-minimal OID arc`);
    value = (value << 7n) | BigInt(byte & 0x7f);
    startOfArc = (byte & 0x80) === 0;
    if (startOfArc) {
      arcs.push(value);
      value = 0n;
    }
  }
  const first = arcs[0]!;
  const head = first < 40n ? [0n, first] : first < 80n ? [1n, first - 40n] : [2n, first - 80n];
  return [...head, ...arcs.slice(1)].join('.');
}
