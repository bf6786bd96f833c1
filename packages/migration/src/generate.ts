import { constants, createCipheriv, createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, publicEncrypt, randomBytes, sign } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { withCheckDigit } from '@pki/ra';
import { encodeBig5 } from './big5';
import * as der from './der';
import {
  fileSha256,
  FORMAT,
  formatLegacyTime,
  formatManifest,
  formatRocDate,
  HEADERS,
  type LegacyCardState,
  type LegacyStatus,
  type Manifest,
  type ManifestEntry,
  REASON_CODES,
  STATUS_MAP,
  type TextEncoding,
} from './format';

/**
 * Writes a realistic legacy export of any size: its own old CA hierarchy (a legacy root and
 * issuing generations with real RSA keys), two certificates per card signed by those keys, the
 * status table, the last CRL of each generation, subscribers (Big5 and UTF-8 files) and cards,
 * with the dirt real exports carry when `dirt` is on. Deterministic apart from keys and serials.
 */
export interface GenerateOptions {
  dir: string;
  /** Certificates to write (two per card; rounded up to even). */
  certificates: number;
  exportId?: string;
  generations?: string[];
  /** Insert every kind of dirt (duplicates, status vs CRL, missing subscribers, odd encodings). */
  dirt?: boolean;
  /** The ceremony's transport key (SPKI DER): each generation's private key is written wrapped under it. */
  transportKeySpki?: Buffer;
  /** When the export is taken; the last CRLs are from the day before. */
  now?: Date;
  /** Concurrent signatures in flight (node:crypto signs on libuv's thread pool). */
  concurrency?: number;
  progress?: (written: number) => void;
}

export interface GeneratedExport {
  exportId: string;
  generations: Array<{ generation: string; keyId: string; certificateDer: Buffer }>;
  root: { certificateDer: Buffer };
  /** What the generator put in, for tests to compare the report with. */
  facts: {
    certificateLines: number;
    uniqueCertificates: number;
    cards: number;
    subscriberLines: number;
    duplicateCertificates: number;
    duplicateStatusRows: number;
    duplicateSubscribers: number;
    /** The status table says valid or suspended, the CRL revokes or holds: the CRL wins. */
    crlOverridesStatus: number;
    /** The status table revokes at or before the CRL's thisUpdate, the CRL does not list it: the CRL wins. */
    statusNotOnCrl: number;
    /** Revoked after the last CRL: the status table is newer, kept. */
    revokedAfterCrl: number;
    missingSubscribers: number;
    big5Names: number;
    utf8Names: number;
    /** Final status by serial after the rules (the report must agree). */
    finalStatus: Map<string, 'VALID' | 'SUSPENDED' | 'REVOKED'>;
    /** Legacy subscriber codes by card number, for tests of the hash upgrade. */
    codes: Map<string, string>;
  };
}

const ISSUER_ATTRS: Array<[string, string, 'p' | 'u']> = [
  ['2.5.4.6', 'TW', 'p'],
  ['2.5.4.10', '行政院', 'u'],
  ['2.5.4.11', '內政部憑證管理中心', 'u'],
];
const ROOT_ATTRS: Array<[string, string, 'p' | 'u']> = [
  ['2.5.4.6', 'TW', 'p'],
  ['2.5.4.10', '行政院', 'u'],
  ['2.5.4.11', '政府憑證管理中心 (legacy)', 'u'],
];
const SHA256_RSA = der.sequence(der.oid('1.2.840.113549.1.1.11'), der.NULL);
const RSA_ENCRYPTION = der.sequence(der.oid('1.2.840.113549.1.1.1'), der.NULL);

function name(attrs: Array<[string, string, 'p' | 'u']>): Buffer {
  return der.sequence(...attrs.map(([o, v, t]) => der.set(der.sequence(der.oid(o), t === 'p' ? der.printableString(v) : der.utf8String(v)))));
}

function extension(id: string, value: Buffer, critical = false): Buffer {
  return der.sequence(der.oid(id), ...(critical ? [der.TRUE] : []), der.octetString(value));
}

function keyId(spki: Buffer): Buffer {
  // RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING's value.
  const outer = der.readElement(spki, 0);
  const bits = der.children(spki, outer)[1]!;
  return createHash('sha1').update(spki.subarray(bits.contentStart + 1, bits.end)).digest();
}

interface Ca {
  generation: string;
  key: KeyObject;
  spki: Buffer;
  keyId: Buffer;
  name: Buffer;
  certificateDer: Buffer;
  from: Date;
  to: Date;
}

function caCertificate(subject: Buffer, spki: Buffer, issuer: { name: Buffer; keyId: Buffer; key: KeyObject }, from: Date, to: Date, serial: Buffer): Buffer {
  const ski = keyId(spki);
  const tbs = der.sequence(
    der.explicit(0, der.smallInteger(2)),
    der.unsignedInteger(serial),
    SHA256_RSA,
    issuer.name,
    der.sequence(der.time(from), der.time(to)),
    subject,
    spki,
    der.explicit(
      3,
      der.sequence(
        extension('2.5.29.19', der.sequence(der.TRUE), true),
        extension('2.5.29.15', der.tlv(0x03, Buffer.of(1, 0x06)), true), // keyCertSign, cRLSign
        extension('2.5.29.14', der.octetString(ski)),
        extension('2.5.29.35', der.sequence(der.tlv(0x80, issuer.keyId))),
      ),
    ),
  );
  return der.sequence(tbs, SHA256_RSA, der.bitString(sign('sha256', tbs, issuer.key)));
}

function signAsync(data: Buffer, key: KeyObject): Promise<Buffer> {
  return new Promise((resolve, reject) => sign('sha256', data, key, (err, signature) => (err ? reject(err) : resolve(signature))));
}

/** A syntactically valid RSA-2048 public key nobody holds the private half of (the cards' keys stay on the cards). */
function cardSpki(): Buffer {
  const modulus = randomBytes(256);
  modulus[0]! |= 0x80;
  modulus[255]! |= 1;
  const rsaKey = der.sequence(der.unsignedInteger(modulus), der.smallInteger(65537));
  return der.sequence(RSA_ENCRYPTION, der.bitString(rsaKey));
}

function serial(): Buffer {
  const s = randomBytes(16);
  s[0] = (s[0]! & 0x7f) | 0x01; // positive, 16 octets, non-zero first octet: 128-bit serials as domain.md says
  return s;
}

const SURNAMES = ['陳', '林', '黃', '張', '李', '王', '吳', '劉', '蔡', '楊', '許', '鄭', '謝', '郭', '洪'];
const GIVEN = ['志明', '淑芬', '美玲', '建宏', '怡君', '家豪', '雅婷', '俊傑', '宗翰', '佳穎', '冠宇', '詩涵'];
// Characters outside Big5 (the legacy system kept such names in a separate UTF-8 file).
const RARE = ['𡘙', '堃', '喆', '珺', '𠀋'];
const OFFICES = ['63000000', '64000000', '65000000', '66000000', '67000000'];

export async function generateLegacyExport(options: GenerateOptions): Promise<GeneratedExport> {
  const now = options.now ?? new Date();
  const dirt = options.dirt ?? false;
  const exportId = options.exportId ?? `legacy-${now.toISOString().slice(0, 10)}-${randomBytes(4).toString('hex')}`;
  const generationNames = options.generations ?? ['G1', 'G2'];
  const concurrency = options.concurrency ?? 64;
  const dir = options.dir;
  await mkdir(join(dir, 'ca'), { recursive: true });
  await mkdir(join(dir, 'crl'), { recursive: true });
  await mkdir(join(dir, 'keys'), { recursive: true });

  // --- the old hierarchy ---
  const year = 365 * 24 * 3600_000;
  const rootKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const rootSpki = rootKeys.publicKey.export({ format: 'der', type: 'spki' });
  const rootName = name(ROOT_ATTRS);
  const rootFrom = new Date(Date.UTC(2002, 0, 1));
  const root = { name: rootName, keyId: keyId(rootSpki), key: rootKeys.privateKey };
  const rootDer = caCertificate(rootName, rootSpki, root, rootFrom, new Date(rootFrom.getTime() + 40 * year), serial());
  const span = (now.getTime() - Date.UTC(2003, 0, 1)) / generationNames.length;
  const cas: Ca[] = generationNames.map((generation, i) => {
    const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const spki = keys.publicKey.export({ format: 'der', type: 'spki' });
    const from = new Date(Date.UTC(2003, 0, 1) + i * span);
    const caName = name(ISSUER_ATTRS); // every generation shares one DN (domain.md)
    const certificateDer = caCertificate(caName, spki, root, from, new Date(from.getTime() + 30 * year), serial());
    return { generation, key: keys.privateKey, spki, keyId: keyId(spki), name: caName, certificateDer, from, to: new Date(Math.min(from.getTime() + span, now.getTime() - 2 * 24 * 3600_000)) };
  });
  await writeFile(join(dir, 'ca', 'ROOT.cer'), rootDer);
  for (const ca of cas) await writeFile(join(dir, 'ca', `${ca.generation}.cer`), ca.certificateDer);

  // --- streams ---
  const open = (file: string) => createWriteStream(join(dir, file));
  const certOut = open('certificates.txt');
  const statusOut = open('status.tsv');
  const cardsOut = open('cards.tsv');
  const big5Out = open('subscribers-big5.tsv');
  const utf8Out = open('subscribers-utf8.tsv');
  const write = (stream: WriteStream, text: string | Buffer) => (stream.write(text) ? Promise.resolve() : new Promise<void>((r) => stream.once('drain', () => r())));
  const header = (fields: readonly string[]) => `${fields.join('\t')}\n`;
  await write(certOut, header(HEADERS.certificates));
  await write(statusOut, header(HEADERS.status));
  await write(cardsOut, header(HEADERS.cards));
  await write(big5Out, encodeBig5(header(HEADERS.subscribers))!);
  await write(utf8Out, header(HEADERS.subscribers));

  const facts: GeneratedExport['facts'] = {
    certificateLines: 0, uniqueCertificates: 0, cards: 0, subscriberLines: 0, duplicateCertificates: 0, duplicateStatusRows: 0, duplicateSubscribers: 0,
    crlOverridesStatus: 0, statusNotOnCrl: 0, revokedAfterCrl: 0, missingSubscribers: 0, big5Names: 0, utf8Names: 0, finalStatus: new Map(), codes: new Map(),
  };
  const counts = { certificates: 0, status: 0, cards: 0, big5: 0, utf8: 0 };
  const crlThisUpdate = new Date(now.getTime() - 24 * 3600_000);
  const crlEntries = new Map<string, Array<{ serial: Buffer; time: Date; reason: number }>>(cas.map((c) => [c.generation, []]));

  const cardCount = Math.ceil(options.certificates / 2);
  let subscriberIndex = 0;
  let cardIndex = 0;
  let written = 0;

  const writeSubscriber = async (legacyId: string, nationalId: string, personName: string, birthIso: string, email: string, code: string, office: string) => {
    const salt = randomBytes(8);
    const algorithm = subscriberIndex % 5 === 0 ? 'MD5-SALT' : 'SHA1-SALT';
    const digest = createHash(algorithm === 'MD5-SALT' ? 'md5' : 'sha1').update(salt).update(code, 'utf8').digest('hex');
    const fields = [legacyId, nationalId, personName, formatRocDate(birthIso), email, algorithm, `${salt.toString('hex')}:${digest}`, subscriberIndex % 3 === 0 ? 'N' : 'Y', office];
    const line = `${fields.join('\t')}\n`;
    const big5 = encodeBig5(line);
    facts.subscriberLines++;
    if (big5) {
      counts.big5++;
      facts.big5Names++;
      await write(big5Out, big5);
    } else {
      counts.utf8++;
      facts.utf8Names++;
      await write(utf8Out, line);
    }
  };

  while (cardIndex < cardCount) {
    // One chunk of cards at a time: memory stays flat whatever the size.
    const chunk: Array<{ tbs: Buffer; ca: Ca }> = [];
    const chunkCards = Math.min(500, cardCount - cardIndex);
    const pending: Array<() => Promise<void>> = [];
    for (let c = 0; c < chunkCards; c++, cardIndex++) {
      const s = subscriberIndex++;
      const legacyId = `S${String(s + 1).padStart(9, '0')}`;
      const nationalId = withCheckDigit(`${'ABCDEFGHJKLMNPQRSTUVXYWZIO'[s % 26]}${s % 2 === 0 ? 1 : 2}${String(s % 10_000_000).padStart(7, '0')}`);
      const rare = dirt && s % 11 === 5;
      let personName = `${SURNAMES[s % SURNAMES.length]}${rare ? RARE[s % RARE.length] : ''}${GIVEN[(s >> 3) % GIVEN.length]}`;
      if (dirt && s % 13 === 4) personName = `${SURNAMES[s % SURNAMES.length]}\u3000${GIVEN[s % GIVEN.length]}`; // an ideographic space the old forms allowed
      if (rare && s % 2 === 1) personName = personName.normalize('NFD');
      const birthIso = `${1940 + (s % 60)}-${String(1 + (s % 12)).padStart(2, '0')}-${String(1 + (s % 28)).padStart(2, '0')}`;
      const office = OFFICES[s % OFFICES.length]!;
      const code = `code${s}x${s % 7}`;
      const cardNumber = `TW${String(cardIndex + 1).padStart(14, '0')}`;
      facts.codes.set(cardNumber, code);
      const missing = dirt && cardIndex % 71 === 7;
      if (missing) facts.missingSubscribers++;
      else await writeSubscriber(legacyId, nationalId, personName, birthIso, s % 4 === 0 ? '' : `user${s}@example.tw`, code, office);
      if (dirt && s % 83 === 9) {
        // The same person again under another legacy id (a re-registration the old system did not merge).
        facts.duplicateSubscribers++;
        await writeSubscriber(`D${String(s + 1).padStart(9, '0')}`, nationalId, personName, birthIso, '', code, office);
      }
      const ca = cas[Math.min(cas.length - 1, Math.floor((cardIndex / cardCount) * cas.length))]!;
      const issued = new Date(ca.from.getTime() + ((cardIndex * 7919) % 1000) / 1000 * (ca.to.getTime() - ca.from.getTime()));
      const notAfter = new Date(issued.getTime() + 5 * year);
      const subjectSerial = String(1_000_000_000_000_000 + cardIndex * 7 + 1).slice(0, 16);
      const subject = name([['2.5.4.6', 'TW', 'p'], ['2.5.4.3', personName.normalize('NFC'), 'u'], ['2.5.4.5', subjectSerial, 'p']]);
      // Lifecycle: most normal, some suspended, some revoked.
      const roll = (cardIndex * 2654435761) % 100;
      const cardStatus: LegacyStatus = roll < 70 ? 'normal' : roll < 75 ? 'resumed' : roll < 82 ? 'suspended' : roll < 90 ? 'superseded' : roll < 95 ? 'card-cut' : roll < 98 ? 'identity-changed' : 'key-compromise';
      const statusTime = new Date(Math.min(issued.getTime() + 200 * 24 * 3600_000, crlThisUpdate.getTime() - 3600_000));
      const serials: string[] = [];
      for (const slot of ['SIGN', 'KEYX'] as const) {
        const sn = serial();
        const snHex = sn.toString('hex');
        serials.push(snHex);
        const ku = slot === 'SIGN' ? Buffer.of(6, 0xc0) : Buffer.of(5, 0x20); // digitalSignature+nonRepudiation / keyEncipherment
        const tbs = der.sequence(
          der.explicit(0, der.smallInteger(2)),
          der.unsignedInteger(sn),
          SHA256_RSA,
          ca.name,
          der.sequence(der.time(issued), der.time(notAfter)),
          subject,
          cardSpki(),
          der.explicit(3, der.sequence(extension('2.5.29.35', der.sequence(der.tlv(0x80, ca.keyId))), extension('2.5.29.15', der.tlv(0x03, ku), true))),
        );
        let legacyStatus: LegacyStatus = cardStatus;
        let onCrl = STATUS_MAP[cardStatus].status !== 'VALID';
        let statusAt = statusTime;
        const n = facts.uniqueCertificates;
        let final = STATUS_MAP[cardStatus].status;
        if (dirt && onCrl && n % 53 === 3) {
          legacyStatus = 'normal'; // the status table lost the change the CRL published
          facts.crlOverridesStatus++;
        } else if (dirt && !onCrl && n % 59 === 5) {
          legacyStatus = 'key-compromise'; // revoked in the table before the last CRL, but never published
          facts.statusNotOnCrl++;
          final = 'VALID';
        } else if (dirt && !onCrl && n % 61 === 6) {
          legacyStatus = 'superseded'; // revoked after the last CRL: the table is newer
          statusAt = new Date(crlThisUpdate.getTime() + 3600_000);
          onCrl = false;
          facts.revokedAfterCrl++;
          final = 'REVOKED';
        }
        facts.finalStatus.set(snHex, final);
        if (onCrl) {
          const mapped = STATUS_MAP[cardStatus];
          crlEntries.get(ca.generation)!.push({ serial: sn, time: statusTime, reason: REASON_CODES[mapped.reason!] });
        }
        facts.uniqueCertificates++;
        const duplicate = dirt && n % 97 === 11;
        const duplicateStatus = dirt && n % 101 === 13;
        chunk.push({ tbs, ca });
        const index = chunk.length - 1;
        pending.push(async () => {
          const certificate = der.sequence(chunk[index]!.tbs, SHA256_RSA, der.bitString(signatures[index]!));
          const certLine = `${snHex}\t${certificate.toString('base64')}\n`;
          await write(certOut, certLine);
          counts.certificates++;
          facts.certificateLines++;
          if (duplicate) {
            await write(certOut, certLine);
            counts.certificates++;
            facts.certificateLines++;
            facts.duplicateCertificates++;
          }
          const statusLine = `${snHex}\t${legacyStatus}\t${formatLegacyTime(statusAt)}\n`;
          await write(statusOut, statusLine);
          counts.status++;
          if (duplicateStatus) {
            await write(statusOut, statusLine);
            counts.status++;
            facts.duplicateStatusRows++;
          }
        });
      }
      const cardState: LegacyCardState = cardStatus === 'card-cut' ? 'DESTROYED' : STATUS_MAP[cardStatus].status === 'REVOKED' ? 'REVOKED' : cardStatus === 'suspended' ? 'SUSPENDED' : 'ACTIVE';
      pending.push(async () => {
        await write(cardsOut, `${[cardNumber, legacyId, cardState, office, serials[0], serials[1], formatLegacyTime(issued)].join('\t')}\n`);
        counts.cards++;
        facts.cards++;
      });
    }
    const signatures: Buffer[] = new Array(chunk.length);
    for (let i = 0; i < chunk.length; i += concurrency) {
      const part = chunk.slice(i, i + concurrency);
      const signed = await Promise.all(part.map((p) => signAsync(p.tbs, p.ca.key)));
      signed.forEach((s, j) => (signatures[i + j] = s));
    }
    for (const step of pending) await step();
    written += chunk.length;
    options.progress?.(written);
  }
  await Promise.all([certOut, statusOut, cardsOut, big5Out, utf8Out].map((s) => new Promise<void>((resolve, reject) => s.end((err?: Error | null) => (err ? reject(err) : resolve())))));

  // --- the last CRL of each generation ---
  for (const ca of cas) {
    const entries = crlEntries.get(ca.generation)!;
    await writeFile(join(dir, 'crl', `${ca.generation}.crl`), buildCrl(ca, entries, crlThisUpdate, Number(crlThisUpdate.toISOString().slice(0, 10).replace(/-/g, '')) * 100 + 1));
  }

  // --- keys, wrapped for the ceremony ---
  const generationLines: string[] = [];
  for (const ca of cas) {
    let wrapped = '';
    if (options.transportKeySpki) {
      wrapped = `keys/${ca.generation}.wrapped`;
      await writeFile(join(dir, wrapped), wrapPrivateKey(ca.key, options.transportKeySpki, ca.generation));
    }
    generationLines.push([ca.generation, `ca/${ca.generation}.cer`, `crl/${ca.generation}.crl`, wrapped].join('\t'));
  }
  await writeFile(join(dir, 'generations.tsv'), `${header(HEADERS.generations)}${generationLines.join('\n')}\n`);

  // --- the manifest ---
  const text = (file: string, kind: ManifestEntry['kind'], records: number, encoding: TextEncoding = 'utf-8') => ({ file, kind, records, encoding });
  const entries: Array<Omit<ManifestEntry, 'sha256'>> = [
    text('generations.tsv', 'generations', cas.length),
    text('certificates.txt', 'certificates', counts.certificates),
    text('status.tsv', 'status', counts.status),
    text('subscribers-big5.tsv', 'subscribers', counts.big5, 'big5'),
    text('subscribers-utf8.tsv', 'subscribers', counts.utf8),
    text('cards.tsv', 'cards', counts.cards),
    { file: 'ca/ROOT.cer', kind: 'ca-certificate', records: 1, encoding: 'binary' },
    ...cas.flatMap((ca) => [
      { file: `ca/${ca.generation}.cer`, kind: 'ca-certificate' as const, records: 1, encoding: 'binary' as const },
      { file: `crl/${ca.generation}.crl`, kind: 'crl' as const, records: 1, encoding: 'binary' as const },
      ...(options.transportKeySpki ? [{ file: `keys/${ca.generation}.wrapped`, kind: 'wrapped-key' as const, records: 1, encoding: 'utf-8' as const }] : []),
    ]),
  ];
  const manifest: Manifest = { format: FORMAT, exportId, createdAt: now.toISOString(), system: 'legacy citizen CA (generated)', files: [] };
  for (const e of entries) manifest.files.push({ ...e, sha256: await fileSha256(join(dir, e.file)) });
  await writeFile(join(dir, 'MANIFEST'), formatManifest(manifest));
  return {
    exportId,
    generations: cas.map((c) => ({ generation: c.generation, keyId: c.keyId.toString('hex'), certificateDer: c.certificateDer })),
    root: { certificateDer: rootDer },
    facts,
  };
}

function hexBytes(hex: string): Buffer {
  return Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
}

export function buildCrl(ca: { name: Buffer; keyId: Buffer; key: KeyObject }, entries: Array<{ serial: Buffer; time: Date; reason: number }>, thisUpdate: Date, crlNumber: number): Buffer {
  const revoked = entries.map((e) =>
    der.sequence(der.unsignedInteger(e.serial), der.time(e.time), der.sequence(extension('2.5.29.21', der.tlv(0x0a, Buffer.of(e.reason))))),
  );
  const tbs = der.sequence(
    der.smallInteger(1),
    SHA256_RSA,
    ca.name,
    der.time(thisUpdate),
    der.time(new Date(thisUpdate.getTime() + 7 * 24 * 3600_000)),
    // Concatenated, not spread: a CRL has hundreds of thousands of entries (more than a call's arguments).
    ...(revoked.length ? [der.tlv(0x30, Buffer.concat(revoked))] : []),
    der.explicit(0, der.sequence(extension('2.5.29.35', der.sequence(der.tlv(0x80, ca.keyId))), extension('2.5.29.20', der.unsignedInteger(hexBytes(crlNumber.toString(16)))))),
  );
  return der.sequence(tbs, SHA256_RSA, der.bitString(sign('sha256', tbs, ca.key)));
}

/**
 * The legacy HSM's export of a CA key for the ceremony (the shape of PKCS#11's
 * CKM_RSA_AES_KEY_WRAP, done in two steps so SoftHSM can unwrap it): a fresh AES-256 key wraps
 * the PKCS#8 private key with AES Key Wrap with Padding (RFC 5649), and the ceremony's transport
 * public key wraps that AES key with RSA-OAEP (SHA-1, the only OAEP hash SoftHSM unwraps with).
 * The private key is in clear only inside the exporting HSM, here simulated by node:crypto.
 */
export function wrapPrivateKey(key: KeyObject, transportKeySpki: Buffer, generation: string): string {
  const kek = randomBytes(32);
  const pkcs8 = key.export({ format: 'der', type: 'pkcs8' });
  const cipher = createCipheriv('id-aes256-wrap-pad', kek, Buffer.from('a65959a6', 'hex'));
  const wrappedKey = Buffer.concat([cipher.update(pkcs8), cipher.final()]);
  const transport = createPublicKey({ key: transportKeySpki, format: 'der', type: 'spki' });
  const wrappedKek = publicEncrypt({ key: transport, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, kek);
  const publicSpki = createPublicKey(createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })).export({ format: 'der', type: 'spki' });
  return [
    `generation: ${generation}`,
    'algorithm: RSA-OAEP-SHA1 + AES-256-KWP (RFC 5649)',
    `transport-key-sha256: ${createHash('sha256').update(transportKeySpki).digest('hex')}`,
    `public-key-sha256: ${createHash('sha256').update(publicSpki).digest('hex')}`,
    `wrapped-kek: ${wrappedKek.toString('base64')}`,
    `wrapped-key: ${wrappedKey.toString('base64')}`,
    '',
  ].join('\n');
}
