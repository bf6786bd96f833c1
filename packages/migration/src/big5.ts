/**
 * Big5 encoding for the generator. Node's TextDecoder (full ICU) decodes Big5 (the WHATWG table,
 * a superset of the Big5 the legacy system wrote); there is no Big5 TextEncoder, so the encoder is
 * the decoder's table read backwards, built once on first use (about 19,000 pairs).
 */
let table: Map<string, Buffer> | undefined;

function encodingTable(): Map<string, Buffer> {
  if (table) return table;
  const decoder = new TextDecoder('big5');
  const map = new Map<string, Buffer>();
  // Standard Big5 lead bytes 0xA1-0xF9 (HKSCS extensions below 0xA1 are left out, as a 2003 system would).
  for (let lead = 0xa1; lead <= 0xf9; lead++) {
    for (const trail of [...range(0x40, 0x7e), ...range(0xa1, 0xfe)]) {
      const bytes = Buffer.of(lead, trail);
      const char = decoder.decode(bytes);
      if (char.length > 0 && char !== '\ufffd' && !map.has(char)) map.set(char, bytes);
    }
  }
  table = map;
  return map;
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** The Big5 bytes of `text`, or undefined when a character has no Big5 code. */
export function encodeBig5(text: string): Buffer | undefined {
  const map = encodingTable();
  const out: Buffer[] = [];
  for (const char of text) {
    const code = char.codePointAt(0)!;
    if (code < 0x80) {
      out.push(Buffer.of(code));
      continue;
    }
    const bytes = map.get(char);
    if (!bytes) return undefined;
    out.push(bytes);
  }
  return Buffer.concat(out);
}
