/**
 * Just enough DER for a million certificates a minute. The generator builds TBS structures by
 * concatenation and the importer reads the handful of fields it needs without building an object
 * model (the typed @peculiar/asn1 models in @pki/x509 cost tens of microseconds per certificate,
 * which alone would spend most of the migration's time budget). X.690 §8 and §10 (DER).
 */

export function tlv(tag: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.of(tag), lengthOctets(body.length), body]);
}

function lengthOctets(length: number): Buffer {
  if (length < 0x80) return Buffer.of(length);
  const bytes: number[] = [];
  for (let n = length; n > 0; n >>>= 8) bytes.unshift(n & 0xff);
  return Buffer.of(0x80 | bytes.length, ...bytes);
}

export const sequence = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items));
export const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items));
export const octetString = (b: Buffer): Buffer => tlv(0x04, b);
export const bitString = (b: Buffer): Buffer => tlv(0x03, Buffer.concat([Buffer.of(0), b]));
export const utf8String = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
export const printableString = (s: string): Buffer => tlv(0x13, Buffer.from(s, 'ascii'));
export const explicit = (n: number, body: Buffer): Buffer => tlv(0xa0 | n, body);
export const NULL = Buffer.of(0x05, 0x00);
export const TRUE = Buffer.of(0x01, 0x01, 0xff);

/** A non-negative INTEGER from its magnitude (a leading zero octet when the top bit is set). */
export function unsignedInteger(magnitude: Buffer): Buffer {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const m = magnitude.subarray(start);
  return tlv(0x02, m[0]! & 0x80 ? Buffer.concat([Buffer.of(0), m]) : m);
}

export function smallInteger(n: number): Buffer {
  const bytes: number[] = [];
  let v = n;
  do {
    bytes.unshift(v & 0xff);
    v >>>= 8;
  } while (v > 0);
  if (bytes[0]! & 0x80) bytes.unshift(0);
  return tlv(0x02, Buffer.from(bytes));
}

export function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const bytes: number[] = [40 * parts[0]! + parts[1]!];
  for (const part of parts.slice(2)) {
    const chunk: number[] = [];
    let v = part;
    do {
      chunk.unshift(v & 0x7f);
      v = Math.floor(v / 128);
    } while (v > 0);
    for (let i = 0; i < chunk.length - 1; i++) chunk[i]! |= 0x80;
    bytes.push(...chunk);
  }
  return tlv(0x06, Buffer.from(bytes));
}

/** UTCTime up to 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5). */
export function time(date: Date): Buffer {
  const iso = date.toISOString();
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '');
  return date.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(`${digits.slice(2)}Z`, 'ascii')) : tlv(0x18, Buffer.from(`${digits}Z`, 'ascii'));
}

// --- reading -------------------------------------------------------------------------------------

export class DerError extends Error {}

/** One element: where its content starts and ends in the buffer. */
export interface Element {
  tag: number;
  /** Offset of the tag octet. */
  start: number;
  contentStart: number;
  end: number;
}

export function readElement(der: Buffer, offset: number, limit = der.length): Element {
  if (offset + 2 > limit) throw new DerError('truncated element');
  const tag = der[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-octet tags are not used in certificates');
  let length = der[offset + 1]!;
  let contentStart = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 4 || contentStart + count > limit) throw new DerError('bad length');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + der[contentStart + i]!;
    contentStart += count;
  }
  const end = contentStart + length;
  if (end > limit) throw new DerError('element runs past its container');
  return { tag, start: offset, contentStart, end };
}

/** The elements directly inside a constructed element. */
export function children(der: Buffer, parent: Element): Element[] {
  const out: Element[] = [];
  for (let at = parent.contentStart; at < parent.end; ) {
    const e = readElement(der, at, parent.end);
    out.push(e);
    at = e.end;
  }
  return out;
}

export function parseTime(der: Buffer, e: Element): Date {
  const s = der.toString('ascii', e.contentStart, e.end);
  let iso: string;
  if (e.tag === 0x17 && /^\d{12}Z$/.test(s)) {
    const yy = Number(s.slice(0, 2));
    iso = `${yy >= 50 ? 19 : 20}${s.slice(0, 2)}-${s.slice(2, 4)}-${s.slice(4, 6)}T${s.slice(6, 8)}:${s.slice(8, 10)}:${s.slice(10, 12)}Z`;
  } else if (e.tag === 0x18 && /^\d{14}Z$/.test(s)) {
    iso = `${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}T${s.slice(8, 10)}:${s.slice(10, 12)}:${s.slice(12, 14)}Z`;
  } else {
    throw new DerError('bad time');
  }
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) throw new DerError('bad time');
  return date;
}

/** Lower-case hex of an INTEGER's magnitude, without leading zero octets (how the registry keys serials). */
export function integerHex(der: Buffer, e: Element): string {
  if (e.tag !== 0x02 || e.end === e.contentStart) throw new DerError('expected an INTEGER');
  let start = e.contentStart;
  while (start < e.end - 1 && der[start] === 0) start++;
  return der.toString('hex', start, e.end);
}

const OID_AKI = Buffer.from('551d23', 'hex');
const OID_SERIAL_NUMBER = Buffer.from('550405', 'hex');

/** What the importer needs of a certificate, read in one pass without copying. */
export interface CertificateFields {
  tbs: Buffer;
  signatureAlgorithm: Buffer;
  signature: Buffer;
  serialHex: string;
  /** The issuer Name's DER. */
  issuer: Buffer;
  notBefore: Date;
  notAfter: Date;
  spki: Buffer;
  /** The subject's serialNumber attribute (the 16-digit card holder identifier), if any. */
  subjectSerialNumber: string | undefined;
  /** authorityKeyIdentifier's keyIdentifier, hex, or undefined when absent. */
  authorityKeyId: string | undefined;
}

export function readCertificate(der: Buffer): CertificateFields {
  const outer = readElement(der, 0);
  if (outer.tag !== 0x30 || outer.end !== der.length) throw new DerError('not a single DER SEQUENCE');
  const [tbsE, algE, sigE] = children(der, outer);
  if (!tbsE || !algE || !sigE || sigE.tag !== 0x03) throw new DerError('not a Certificate');
  const fields = children(der, tbsE);
  let i = fields[0]?.tag === 0xa0 ? 1 : 0;
  const serialE = fields[i++]!;
  i++; // signature AlgorithmIdentifier inside the TBS
  const issuerE = fields[i++]!;
  const validityE = fields[i++]!;
  const subjectE = fields[i++]!;
  const spkiE = fields[i++]!;
  if (!serialE || !issuerE || !validityE || !spkiE) throw new DerError('TBSCertificate is short');
  const [nb, na] = children(der, validityE);
  let subjectSerialNumber: string | undefined;
  for (const rdn of children(der, subjectE)) {
    for (const atv of children(der, rdn)) {
      const [type, value] = children(der, atv);
      if (type && value && der.compare(OID_SERIAL_NUMBER, 0, OID_SERIAL_NUMBER.length, type.contentStart, type.end) === 0) subjectSerialNumber = der.toString('utf8', value.contentStart, value.end);
    }
  }
  if (!nb || !na) throw new DerError('bad validity');
  let authorityKeyId: string | undefined;
  for (; i < fields.length; i++) {
    if (fields[i]!.tag !== 0xa3) continue;
    const extensions = children(der, fields[i]!)[0]!;
    for (const ext of children(der, extensions)) {
      const parts = children(der, ext);
      const id = parts[0]!;
      if (der.compare(OID_AKI, 0, OID_AKI.length, id.contentStart, id.end) !== 0) continue;
      const value = parts[parts.length - 1]!;
      const aki = readElement(der, value.contentStart, value.end);
      for (const part of children(der, aki)) if (part.tag === 0x80) authorityKeyId = der.toString('hex', part.contentStart, part.end);
    }
  }
  return {
    tbs: der.subarray(tbsE.start, tbsE.end),
    signatureAlgorithm: der.subarray(algE.start, algE.end),
    signature: der.subarray(sigE.contentStart + 1, sigE.end),
    serialHex: integerHex(der, serialE),
    issuer: der.subarray(issuerE.start, issuerE.end),
    notBefore: parseTime(der, nb),
    notAfter: parseTime(der, na),
    spki: der.subarray(spkiE.start, spkiE.end),
    subjectSerialNumber,
    authorityKeyId,
  };
}

export interface CrlEntry {
  serialHex: string;
  revocationDate: Date;
  reasonCode: number | undefined;
}

export interface CrlFields {
  tbs: Buffer;
  signature: Buffer;
  issuer: Buffer;
  thisUpdate: Date;
  authorityKeyId: string | undefined;
  entries: CrlEntry[];
}

const OID_REASON = Buffer.from('551d15', 'hex');

/** Reads a CertificateList (RFC 5280 §5.1) whole, its entries in an array. */
export function readCrl(der: Buffer): CrlFields {
  const crl = readCrlLazily(der);
  return { ...crl, entries: [...crl.entries] };
}

/**
 * Reads a CertificateList (RFC 5280 §5.1) with its entries read one by one as they are iterated:
 * the legacy CRLs hold up to a few hundred thousand entries, and the importer stages them in
 * chunks without holding them all (nor an element per entry) at once.
 */
export function readCrlLazily(der: Buffer): Omit<CrlFields, 'entries'> & { entries: Iterable<CrlEntry> } {
  const outer = readElement(der, 0);
  if (outer.tag !== 0x30 || outer.end !== der.length) throw new DerError('not a single DER SEQUENCE');
  const [tbsE, , sigE] = children(der, outer);
  if (!tbsE || !sigE || sigE.tag !== 0x03) throw new DerError('not a CertificateList');
  const fields = children(der, tbsE);
  let i = fields[0]?.tag === 0x02 ? 1 : 0;
  i++; // signature
  const issuerE = fields[i++]!;
  const thisUpdateE = fields[i++]!;
  if (fields[i] && (fields[i]!.tag === 0x17 || fields[i]!.tag === 0x18)) i++;
  let revoked: Element | undefined;
  let authorityKeyId: string | undefined;
  for (; i < fields.length; i++) {
    const f = fields[i]!;
    if (f.tag === 0x30) {
      revoked = f;
    } else if (f.tag === 0xa0) {
      for (const ext of children(der, children(der, f)[0]!)) {
        const parts = children(der, ext);
        if (der.compare(OID_AKI, 0, 3, parts[0]!.contentStart, parts[0]!.end) !== 0) continue;
        const value = parts[parts.length - 1]!;
        for (const part of children(der, readElement(der, value.contentStart, value.end))) if (part.tag === 0x80) authorityKeyId = der.toString('hex', part.contentStart, part.end);
      }
    }
  }
  const list = revoked;
  function* entries(): Generator<CrlEntry> {
    if (!list) return;
    for (let at = list.contentStart; at < list.end; ) {
      const entry = readElement(der, at, list.end);
      at = entry.end;
      const [serialE, dateE, extsE] = children(der, entry);
      let reasonCode: number | undefined;
      if (extsE) {
        for (const ext of children(der, extsE)) {
          const parts = children(der, ext);
          if (der.compare(OID_REASON, 0, 3, parts[0]!.contentStart, parts[0]!.end) !== 0) continue;
          const value = parts[parts.length - 1]!;
          const enumerated = readElement(der, value.contentStart, value.end);
          reasonCode = der[enumerated.contentStart];
        }
      }
      yield { serialHex: integerHex(der, serialE!), revocationDate: parseTime(der, dateE!), reasonCode };
    }
  }
  return {
    tbs: der.subarray(tbsE.start, tbsE.end),
    signature: der.subarray(sigE.contentStart + 1, sigE.end),
    issuer: der.subarray(issuerE.start, issuerE.end),
    thisUpdate: parseTime(der, thisUpdateE),
    authorityKeyId,
    entries: { [Symbol.iterator]: entries },
  };
}

/** subjectKeyIdentifier of a CA certificate (hex), as ca-signer keys its generations. */
export function subjectKeyId(certificate: Buffer): string | undefined {
  const outer = readElement(certificate, 0);
  const tbsE = children(certificate, outer)[0]!;
  for (const f of children(certificate, tbsE)) {
    if (f.tag !== 0xa3) continue;
    for (const ext of children(certificate, children(certificate, f)[0]!)) {
      const parts = children(certificate, ext);
      if (certificate.toString('hex', parts[0]!.contentStart, parts[0]!.end) !== '551d0e') continue;
      const value = parts[parts.length - 1]!;
      const inner = readElement(certificate, value.contentStart, value.end);
      return certificate.toString('hex', inner.contentStart, inner.end);
    }
  }
  return undefined;
}
