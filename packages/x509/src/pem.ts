import { PkiError } from '@pki/kit';

/** The PEM labels this PKI reads and writes (RFC 7468 §5, §7, §6). */
export type PemLabel = 'CERTIFICATE' | 'CERTIFICATE REQUEST' | 'X509 CRL' | 'PUBLIC KEY';

export interface PemBlock {
  label: string;
  der: Buffer;
}

/** RFC 7468 §2: base64 in lines of exactly 64 characters, LF line ends, a final newline. */
export function toPem(der: Uint8Array, label: PemLabel): string {
  const base64 = Buffer.from(der).toString('base64');
  const lines = base64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END ([A-Z0-9 ]+)-----/g;

/** Every PEM block in `text`, in order (explanatory text between blocks is ignored, RFC 7468 §2). */
export function parsePemBlocks(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  for (const match of text.matchAll(BLOCK)) {
    const [, begin, body, end] = match as unknown as [string, string, string, string];
    if (begin !== end) throw new PkiError('INVALID_ARGUMENT', `parse PEM: BEGIN ${begin} closed by END ${end}`);
    const compact = body.replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length % 4 !== 0 || compact.length === 0) {
      throw new PkiError('INVALID_ARGUMENT', `parse PEM: ${begin} block is not valid base64`);
    }
    blocks.push({ label: begin, der: Buffer.from(compact, 'base64') });
  }
  return blocks;
}

/** The DER of the first block labelled `label`; INVALID_ARGUMENT if there is none. */
export function fromPem(text: string, label: PemLabel): Buffer {
  const block = parsePemBlocks(text).find((b) => b.label === label);
  if (block === undefined) throw new PkiError('INVALID_ARGUMENT', `parse PEM: no ${label} block found`);
  return block.der;
}
