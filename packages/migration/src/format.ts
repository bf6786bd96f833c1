import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The legacy export (docs/migration/legacy-export.md): a folder of plain files a 2003-era system
 * produces with its own report tools: tab-separated text with a header line, one certificate per
 * line in base64, DER for CA certificates and CRLs, and a MANIFEST listing every file with its
 * record count and SHA-256, which is how a truncated or altered copy is recognised.
 */
export const FORMAT = 'pki-legacy-export/1';

export type FileKind = 'generations' | 'certificates' | 'status' | 'subscribers' | 'cards' | 'ca-certificate' | 'crl' | 'wrapped-key';
export type TextEncoding = 'utf-8' | 'big5';

export interface ManifestEntry {
  file: string;
  kind: FileKind;
  /** Data lines (text files, header excluded) or 1 (binary files). */
  records: number;
  sha256: string;
  encoding: TextEncoding | 'binary';
}

export interface Manifest {
  format: string;
  exportId: string;
  createdAt: string;
  system: string;
  files: ManifestEntry[];
}

/** The programme's status values (domain.md) as the legacy status table writes them. */
export const LEGACY_STATUSES = ['normal', 'resumed', 'suspended', 'key-compromise', 'ca-compromise', 'identity-changed', 'superseded', 'card-cut'] as const;
export type LegacyStatus = (typeof LEGACY_STATUSES)[number];

export type CertificateStatus = 'VALID' | 'SUSPENDED' | 'REVOKED';
/** ra's reason names (RFC 5280 §5.3.1 CRLReason). */
export type Reason = 'unspecified' | 'keyCompromise' | 'cACompromise' | 'affiliationChanged' | 'superseded' | 'cessationOfOperation' | 'certificateHold' | 'privilegeWithdrawn';

/** How each legacy status maps onto the registry's status and CRL reason. */
export const STATUS_MAP: Record<LegacyStatus, { status: CertificateStatus; reason?: Reason }> = {
  normal: { status: 'VALID' },
  resumed: { status: 'VALID' },
  suspended: { status: 'SUSPENDED', reason: 'certificateHold' },
  'key-compromise': { status: 'REVOKED', reason: 'keyCompromise' },
  'ca-compromise': { status: 'REVOKED', reason: 'cACompromise' },
  // A change of ID number or name: the certificate no longer names its holder.
  'identity-changed': { status: 'REVOKED', reason: 'affiliationChanged' },
  superseded: { status: 'REVOKED', reason: 'superseded' },
  // The card was cut (destroyed): the key no longer exists.
  'card-cut': { status: 'REVOKED', reason: 'cessationOfOperation' },
};

/** RFC 5280 §5.3.1 CRLReason codes by name, and back. */
export const REASON_CODES: Record<Reason, number> = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  privilegeWithdrawn: 9,
};
export const REASON_BY_CODE = new Map<number, Reason>(Object.entries(REASON_CODES).map(([name, code]) => [code, name as Reason]));

/** The legacy card states. */
export const LEGACY_CARD_STATES = ['ACTIVE', 'SUSPENDED', 'REVOKED', 'DESTROYED'] as const;
export type LegacyCardState = (typeof LEGACY_CARD_STATES)[number];

/** Legacy subscriber-code hash algorithms the export may carry (kept as they are until the code is next used). */
export const LEGACY_CODE_ALGORITHMS = ['SHA1-SALT', 'MD5-SALT'] as const;

export const HEADERS = {
  generations: ['generation', 'ca_certificate', 'crl', 'wrapped_key'],
  certificates: ['serial', 'certificate_base64'],
  status: ['serial', 'status', 'status_time'],
  subscribers: ['subscriber_id', 'national_id', 'name', 'birth_date', 'email', 'code_algorithm', 'code_hash', 'consent', 'office'],
  cards: ['card_number', 'subscriber_id', 'state', 'office', 'sign_serial', 'keyx_serial', 'issued_at'],
} as const;

/** Legacy times are Taipei local time (UTC+8, no daylight saving since 1979): `YYYY/MM/DD HH:MM:SS`. */
export function formatLegacyTime(date: Date): string {
  const local = new Date(date.getTime() + 8 * 3600_000).toISOString();
  return `${local.slice(0, 4)}/${local.slice(5, 7)}/${local.slice(8, 10)} ${local.slice(11, 19)}`;
}

export function parseLegacyTime(text: string): Date | undefined {
  const m = /^(\d{4})\/(\d{2})\/(\d{2}) (\d{2}):(\d{2}):(\d{2})$/.exec(text);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  // Taiwan time (UTC+8, no daylight saving since 1979). Date.UTC instead of parsing an ISO string
  // (a million status rows); a day or time out of range (2023/02/30, 24:00:00) is refused, not
  // rolled over into the next month.
  const date = new Date(Date.UTC(year, month - 1, day, hour - 8, minute, second));
  const local = new Date(date.getTime() + 8 * 3_600_000);
  if (local.getUTCFullYear() !== year || local.getUTCMonth() !== month - 1 || local.getUTCDate() !== day || local.getUTCHours() !== hour || minute > 59 || second > 59) return undefined;
  return date;
}

/** Birth dates in the Minguo (ROC) calendar, as household registration writes them: `yyy/mm/dd`, year + 1911. */
export function formatRocDate(isoDate: string): string {
  const year = Number(isoDate.slice(0, 4)) - 1911;
  return `${String(year).padStart(3, '0')}/${isoDate.slice(5, 7)}/${isoDate.slice(8, 10)}`;
}

export function parseRocDate(text: string): string | undefined {
  const m = /^(\d{2,3})\/(\d{2})\/(\d{2})$/.exec(text);
  if (!m) return undefined;
  return `${String(Number(m[1]) + 1911).padStart(4, '0')}-${m[2]}-${m[3]}`;
}

export function formatManifest(manifest: Manifest): string {
  const head = [`format: ${manifest.format}`, `export-id: ${manifest.exportId}`, `created-at: ${manifest.createdAt}`, `system: ${manifest.system}`];
  const rows = manifest.files.map((f) => [f.file, f.kind, String(f.records), f.sha256, f.encoding].join('\t'));
  return `${head.join('\n')}\n\nfile\tkind\trecords\tsha256\tencoding\n${rows.join('\n')}\n`;
}

export class ExportError extends Error {
  constructor(
    readonly location: string,
    readonly problem: string,
  ) {
    super(`${location}: ${problem}`);
  }
}

export async function readManifest(dir: string): Promise<Manifest> {
  let text: string;
  try {
    text = await readFile(join(dir, 'MANIFEST'), 'utf8');
  } catch {
    throw new ExportError('MANIFEST', 'missing or unreadable');
  }
  const [headPart, tablePart] = text.split('\n\n');
  const head = new Map<string, string>();
  for (const [i, line] of (headPart ?? '').split('\n').entries()) {
    const m = /^([a-z-]+): (.*)$/.exec(line);
    if (!m) throw new ExportError(`MANIFEST:${i + 1}`, 'expected "key: value"');
    head.set(m[1]!, m[2]!);
  }
  if (head.get('format') !== FORMAT) throw new ExportError('MANIFEST:1', `format must be ${FORMAT}`);
  const exportId = head.get('export-id');
  if (!exportId || !/^[A-Za-z0-9._-]{1,64}$/.test(exportId)) throw new ExportError('MANIFEST', 'export-id must be 1-64 letters, digits, . _ -');
  const lines = (tablePart ?? '').split('\n');
  const offset = (headPart ?? '').split('\n').length + 2;
  const files: ManifestEntry[] = [];
  const kinds = new Set<string>(['generations', 'certificates', 'status', 'subscribers', 'cards', 'ca-certificate', 'crl', 'wrapped-key']);
  for (const [i, line] of lines.slice(1).entries()) {
    if (line === '') continue;
    const [file, kind, records, sha256, encoding] = line.split('\t');
    const where = `MANIFEST:${offset + i + 1}`;
    if (!file || /(^|\/)\.\.(\/|$)/.test(file) || file.startsWith('/')) throw new ExportError(where, 'file must be a relative path inside the export');
    if (!kind || !kinds.has(kind)) throw new ExportError(where, `unknown kind '${kind ?? ''}'`);
    if (!records || !/^\d+$/.test(records)) throw new ExportError(where, 'records must be a count');
    if (!sha256 || !/^[0-9a-f]{64}$/.test(sha256)) throw new ExportError(where, 'sha256 must be 64 hex digits');
    if (encoding !== 'utf-8' && encoding !== 'big5' && encoding !== 'binary') throw new ExportError(where, `unknown encoding '${encoding ?? ''}'`);
    files.push({ file, kind: kind as FileKind, records: Number(records), sha256, encoding });
  }
  return { format: FORMAT, exportId, createdAt: head.get('created-at') ?? '', system: head.get('system') ?? '', files };
}

/** SHA-256 of a file, streamed. */
export async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Streams the data lines of a text file (after its header) with their line numbers, decoding
 * each line from the file's declared encoding, while hashing the raw bytes. A last line without
 * its line end means the file was cut short: it is reported, not imported.
 */
export async function* readLines(path: string, entry: ManifestEntry, expectedHeader: readonly string[], hash = createHash('sha256')): AsyncGenerator<{ line: number; fields: string[] }> {
  const decoder = new TextDecoder(entry.encoding === 'big5' ? 'big5' : 'utf-8', { fatal: true });
  let rest: Buffer = Buffer.alloc(0);
  let line = 0;
  const decode = (bytes: Buffer, at: number) => {
    try {
      return decoder.decode(bytes);
    } catch {
      throw new ExportError(`${entry.file}:${at}`, `not valid ${entry.encoding}`);
    }
  };
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    const buffer = rest.length ? Buffer.concat([rest, chunk as Buffer]) : (chunk as Buffer);
    hash.update(chunk as Buffer);
    const lastNewline = buffer.lastIndexOf(10);
    if (lastNewline === -1) {
      rest = buffer;
      continue;
    }
    // One decode per chunk (a decoder call per line costs more than the parsing, for Big5 most of
    // all). Splitting the bytes at 0x0A first is safe in both encodings: in UTF-8 and in Big5 a
    // 0x0A byte is only ever a line feed (Big5 trail bytes are 0x40-0x7E and 0xA1-0xFE).
    let text: string;
    try {
      text = decoder.decode(buffer.subarray(0, lastNewline));
    } catch {
      // Find the line that is not valid in its encoding, for the report.
      let at = 0;
      for (let n = line + 1; at <= lastNewline; n++) {
        const end = buffer.indexOf(10, at);
        decode(buffer.subarray(at, end), n);
        at = end + 1;
      }
      throw new ExportError(`${entry.file}:${line + 1}`, `not valid ${entry.encoding}`);
    }
    rest = buffer.subarray(lastNewline + 1);
    for (const raw of text.split('\n')) {
      line++;
      const fields = (raw.endsWith('\r') ? raw.slice(0, -1) : raw).split('\t');
      if (line === 1) {
        if (fields.join('\t') !== expectedHeader.join('\t')) throw new ExportError(`${entry.file}:1`, `header must be ${expectedHeader.join(' ')}`);
        continue;
      }
      if (fields.length !== expectedHeader.length) throw new ExportError(`${entry.file}:${line}`, `expected ${expectedHeader.length} tab-separated fields, found ${fields.length}`);
      yield { line, fields };
    }
  }
  if (rest.length > 0) throw new ExportError(`${entry.file}:${line + 1}`, 'the last line has no line end (file cut short)');
  if (line === 0) throw new ExportError(`${entry.file}:1`, 'empty file (no header)');
  if (line - 1 !== entry.records) throw new ExportError(`${entry.file}:${line}`, `${line - 1} records, the manifest says ${entry.records} (file cut short or altered)`);
}
