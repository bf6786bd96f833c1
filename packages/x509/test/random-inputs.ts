import { generateKeyPairSync } from 'node:crypto';
import type { TbsCertificateSpec } from '../src/certificate';
import { encodeDerElement, readDerElement } from '../src/der';
import {
  authorityInfoAccessExtension,
  authorityKeyIdentifierExtension,
  basicConstraintsExtension,
  type CertificateExtension,
  certificatePoliciesExtension,
  crlDistributionPointsExtension,
  extendedKeyUsageExtension,
  keyUsageExtension,
  ocspNoCheckExtension,
  subjectAltNameExtension,
  subjectDirectoryAttributesExtension,
  subjectKeyIdentifierExtension,
} from '../src/extensions';
import { encodeName } from '../src/name';
import * as oid from '../src/oids';
import type { NameAttribute, NameAttributeType } from '../src/name';
import { rsaSubjectPublicKeyInfo } from '../src/public-key';

/**
 * Seeded random inputs for the tests that hold the direct DER encoders and readers to the schema
 * layer (decision 0019). The seed is fixed so a failure reproduces; X509_RANDOM_SEED explores others.
 */
export const SEED = Number(process.env.X509_RANDOM_SEED ?? 20261204);

/** mulberry32: a small, well-mixed 32-bit generator, plenty for test inputs (not for keys). */
export function seededRandom(seed = SEED): Random {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (min: number, max: number) => min + Math.floor(next() * (max - min + 1));
  const pick = <T>(items: readonly T[]): T => items[int(0, items.length - 1)]!;
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(0, 255)));
  return { next, int, pick, bytes, chance: (p: number) => next() < p };
}

export interface Random {
  next(): number;
  /** An integer in [min, max]. */
  int(min: number, max: number): number;
  pick<T>(items: readonly T[]): T;
  bytes(n: number): Buffer;
  chance(p: number): boolean;
}

const PRINTABLE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?";

/**
 * Characters for UTF8String values: ASCII (RFC 4514 specials included), Latin-1, common CJK,
 * rare CJK outside the BMP (surrogate pairs: the rare characters of citizens' names), combining
 * marks, Hangul, Arabic, emoji, a zero-width joiner, U+FFFD and NUL.
 */
const UTF8_POOL = [
  ...'Aaz09 ,+"\\<>;#=',
  ...'éñüßø',
  ...'王小明陳美玲林志豪鄭峯內政部憑證管理中心行政院',
  '𠀋', '𡧃', '𪚥', '𠮷', '𣎴', '\u{2B820}',
  'e\u0301', '\u0300',
  '한국어',
  'عربي',
  '😀', '👩\u200D💻',
  '\uFFFD', '\u0000',
];

const UPPER_BOUND: Record<NameAttributeType, number> = { C: 2, ST: 128, L: 128, O: 64, OU: 64, CN: 64, serialNumber: 64, givenName: 32768, surname: 32768 };
export const NAME_ATTRIBUTE_TYPES = Object.keys(UPPER_BOUND) as NameAttributeType[];

/** A value `type` accepts, sometimes at its upper bound (long-form DER lengths). */
export function randomAttributeValue(random: Random, type: NameAttributeType): string {
  if (type === 'C') return random.pick(['TW', 'JP', 'US', 'DE']);
  const bound = UPPER_BOUND[type];
  // At the bound now and then (32,768 characters rarely: the schema layer is slow on them).
  const atBound = bound > 128 ? random.chance(0.01) : random.chance(0.1);
  const length = atBound ? bound : random.chance(0.3) ? random.int(1, Math.min(bound, 200)) : random.int(1, 12);
  if (type === 'serialNumber') return Array.from({ length }, () => random.pick([...PRINTABLE])).join('');
  const chars: string[] = [];
  while (chars.length < length) chars.push(...[...random.pick(UTF8_POOL)]);
  return chars.slice(0, length).join('');
}

/** A DN of 1 to 6 attributes of any types the CA writes, in any order. */
export function randomDn(random: Random): NameAttribute[] {
  return Array.from({ length: random.int(1, 6) }, () => {
    const type = random.pick(NAME_ATTRIBUTE_TYPES);
    return { type, value: randomAttributeValue(random, type) };
  });
}

/** An ASCII http(s) URI of some length (long ones give long-form lengths). */
export function randomUri(random: Random): string {
  const path = Array.from({ length: random.int(0, random.chance(0.1) ? 300 : 20) }, () => random.pick([...'abcdefghijklmnopqrstuvwxyz0123456789-._~/%'])).join('');
  return `${random.pick(['http', 'https'])}://${random.pick(['crl', 'ocsp', 'pki'])}.example${random.int(1, 99)}.tw/${path}`;
}

/** An ASCII mailbox. */
export function randomEmail(random: Random): string {
  const local = Array.from({ length: random.int(1, 30) }, () => random.pick([..."abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-/=?^_`{|}~."])).join('');
  return `${local.replace(/^\.+|\.+$/g, 'x')}@example${random.int(1, 9)}.tw`;
}

/** The content octets of a positive, minimal serial of 1 to 20 octets. */
export function randomSerial(random: Random): Buffer {
  const serial = random.bytes(random.int(1, 20));
  serial[0] = serial[0]! & 0x7f;
  if (serial[0] === 0) serial[0] = 1;
  return serial;
}

/** A whole-second date between 1950 and 2150: both sides of the 2050 UTCTime/GeneralizedTime line. */
export function randomDate(random: Random, from = Date.UTC(1950, 0, 1), to = Date.UTC(2150, 0, 1)): Date {
  const pivot = Date.UTC(2050, 0, 1);
  // Often within a day of 2050-01-01T00:00:00Z, where the encoding changes.
  const ms = random.chance(0.2) ? pivot + random.int(-86_400, 86_400) * 1000 : from + Math.floor(random.next() * (to - from));
  return new Date(Math.floor(Math.min(Math.max(ms, from), to) / 1000) * 1000);
}

/** Real keys (RSA and EC), made once, and synthetic RSA keys of any size (a random odd modulus). */
export const REAL_KEYS = {
  rsa2048: generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' }),
  rsa3072: generateKeyPairSync('rsa', { modulusLength: 3072 }).publicKey.export({ type: 'spki', format: 'der' }),
  p256: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' }),
  p384: generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ type: 'spki', format: 'der' }),
  ed25519: generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' }),
};

export function randomRsaSpki(random: Random, bits = random.pick([1024, 2048, 3072, 4096])): Buffer {
  const modulus = random.bytes(bits / 8);
  modulus[0] = modulus[0]! | 0x80;
  modulus[modulus.length - 1] = modulus[modulus.length - 1]! | 1;
  return rsaSubjectPublicKeyInfo(modulus, random.pick([Buffer.from([1, 0, 1]), Buffer.from([3]), Buffer.from([0x01, 0x00, 0x00, 0x01])]));
}

export function randomSpki(random: Random): Buffer {
  return random.chance(0.5) ? randomRsaSpki(random) : Buffer.from(random.pick(Object.values(REAL_KEYS)));
}

/**
 * Damaged copies of valid DER: one octet changed (often a tag or length), an octet inserted or
 * removed, a truncation, a trailing octet. Most break the structure; the rest are what a reader
 * must judge exactly as the schema layer does.
 */
export function damaged(random: Random, der: Buffer): Buffer {
  const copy = Buffer.from(der);
  const at = random.int(0, copy.length - 1);
  switch (random.int(0, 5)) {
    case 0:
      copy[at] = random.int(0, 255);
      return copy;
    case 1:
      copy[at] = copy[at]! ^ (1 << random.int(0, 7));
      return copy;
    case 2:
      return Buffer.concat([copy.subarray(0, at), Buffer.from([random.int(0, 255)]), copy.subarray(at)]);
    case 3:
      return Buffer.concat([copy.subarray(0, at), copy.subarray(at + 1)]);
    case 4:
      return copy.subarray(0, at);
    default:
      return Buffer.concat([copy, Buffer.from([random.int(0, 255)])]);
  }
}

/** What a function does with an input: its result, or the fact that it threw. */
export function outcome<T>(fn: () => T): { ok: true; value: T } | { ok: false; error: string } {
  try {
    return { ok: true, value: fn() };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
}

/** A DER element as a tree: constructed elements hold their children, primitive ones their content. */
interface DerNode {
  tag: number;
  children?: DerNode[];
  content?: Buffer;
}

function parseTree(der: Uint8Array, start = 0, end = der.length): DerNode[] {
  const nodes: DerNode[] = [];
  for (let offset = start; offset < end; ) {
    const element = readDerElement(der, offset);
    nodes.push(
      (element.tag & 0x20) !== 0
        ? { tag: element.tag, children: parseTree(der, element.contentStart, element.end) }
        : { tag: element.tag, content: Buffer.from(der.subarray(element.contentStart, element.end)) },
    );
    offset = element.end;
  }
  return nodes;
}

function serializeTree(node: DerNode): Buffer {
  return encodeDerElement(node.tag, node.children === undefined ? node.content! : Buffer.concat(node.children.map(serializeTree)));
}

function allNodes(node: DerNode, into: DerNode[] = []): DerNode[] {
  into.push(node);
  for (const child of node.children ?? []) allNodes(child, into);
  return into;
}

/**
 * A copy of well-formed DER with one element changed in a way a DER encoder would not write, the
 * lengths around it re-encoded so the result still parses: a BOOLEAN that is not 0x00/0xFF or
 * is FALSE, an INTEGER with a superfluous leading octet, an OID arc with a leading 0x80, a BIT
 * STRING with unused bits, invalid UTF-8, a string in the constructed form, a time in another
 * textual form, an element dropped or duplicated, a tag changed.
 */
export function mutatedDer(random: Random, der: Buffer): Buffer {
  const root = parseTree(der)[0]!;
  const descendants = allNodes(root).slice(1);
  const node = descendants.length > 0 ? random.pick(descendants) : root;
  const content = node.content;
  switch (random.int(0, 4)) {
    case 0:
      if (node.tag === 0x01) node.content = Buffer.from([random.pick([0x00, 0x01, 0x7f, 0xfe])]);
      else if (node.tag === 0x02 && content) node.content = Buffer.concat([Buffer.from([content[0]! & 0x80 ? 0xff : 0x00]), content]);
      else if (node.tag === 0x06 && content) node.content = Buffer.concat([content.subarray(0, 1), Buffer.from([0x80]), content.subarray(1)]);
      else if (node.tag === 0x03 && content && content.length > 1) node.content = Buffer.concat([Buffer.from([random.int(1, 7)]), content.subarray(1)]);
      else if ((node.tag === 0x17 || node.tag === 0x18) && content) {
        const text = content.toString('latin1');
        node.content = Buffer.from(
          random.pick([
            text.replace(/(\d\d)Z$/, 'Z'),
            text.replace(/Z$/, '.5Z'),
            text.replace(/Z$/, '.50Z'),
            text.replace(/Z$/, '+0800'),
            text.replace(/Z$/, ''),
            `${text.slice(0, 2)}13${text.slice(4)}`,
            text.replace(/^(\d\d)(\d\d)(\d\d)(\d\d)/, '$1$2$331'),
          ]),
          'latin1',
        );
      } else if (node.tag === 0x0c && content) node.content = Buffer.concat([content, Buffer.from([random.pick([0x80, 0xc0, 0xed, 0xff])])]);
      else node.tag = node.tag ^ random.pick([0x01, 0x02, 0x04]);
      break;
    case 1:
      // The constructed form of a primitive string, or the other way round.
      if (content !== undefined && [0x03, 0x04, 0x0c, 0x13, 0x16].includes(node.tag)) {
        node.tag |= 0x20;
        node.children = [{ tag: node.tag & ~0x20, content }];
        delete node.content;
      } else node.tag = random.int(0, 0x1e) | (node.tag & 0xe0);
      break;
    case 2: {
      // Drop or duplicate a child of a constructed element.
      const parents = allNodes(root).filter((n) => (n.children?.length ?? 0) > 0);
      if (parents.length === 0) break;
      const parent = random.pick(parents);
      const at = random.int(0, parent.children!.length - 1);
      if (random.chance(0.5)) parent.children!.splice(at, 1);
      else parent.children!.splice(at, 0, parent.children![at]!);
      break;
    }
    case 3:
      // An explicit BOOLEAN FALSE (critical DEFAULT) before an extension value, or a v1 version.
      if (node.tag === 0x04) {
        const parent = allNodes(root).find((n) => n.children?.includes(node));
        parent?.children!.splice(parent.children!.indexOf(node), 0, { tag: 0x01, content: Buffer.from([random.pick([0x00, 0xff])]) });
      } else if (node.tag === 0xa0) node.children = [{ tag: 0x02, content: Buffer.from([0]) }];
      else if (content) node.content = Buffer.concat([content, random.bytes(1)]);
      break;
    default:
      if (content && content.length > 0) {
        const copy = Buffer.from(content);
        copy[random.int(0, copy.length - 1)] = random.int(0, 255);
        node.content = copy;
      }
  }
  return serializeTree(root);
}

/** Every kind of extension the profiles write, in random choice, order and criticality. */
export function randomExtensions(random: Random): CertificateExtension[] {
  const critical = () => ({ critical: random.chance(0.3) });
  const all = [
    () => authorityKeyIdentifierExtension(random.bytes(20), critical()),
    () => subjectKeyIdentifierExtension(randomSpki(random), critical()),
    () => keyUsageExtension([random.pick(['digitalSignature', 'nonRepudiation', 'keyEncipherment', 'dataEncipherment', 'keyCertSign', 'crlSign'] as const)], critical()),
    () => extendedKeyUsageExtension([oid.id_kp_clientAuth, oid.id_kp_serverAuth].slice(0, random.int(1, 2)), critical()),
    () => basicConstraintsExtension({ ca: false }, critical()),
    () => certificatePoliciesExtension([oid.id_tw_gpki_certpolicy_class3Assurance], critical()),
    () => crlDistributionPointsExtension([randomUri(random)], critical()),
    () => authorityInfoAccessExtension({ ocsp: [randomUri(random)], caIssuers: [randomUri(random)] }, critical()),
    () => ocspNoCheckExtension(critical()),
    () => subjectDirectoryAttributesExtension([{ type: oid.id_tw_gca_nationalIdLastFour, value: String(random.int(0, 9999)).padStart(4, '0') }], critical()),
    () => subjectAltNameExtension({ emails: [randomEmail(random)] }, critical()),
  ];
  return all.filter(() => random.chance(0.6)).map((make) => make()).sort(() => random.next() - 0.5);
}

/** A TBS spec of any shape the CA could be asked for (names, keys, algorithms, validity, extensions). */
export function randomTbsSpec(random: Random): TbsCertificateSpec {
  const notBefore = randomDate(random, Date.UTC(1950, 0, 1), Date.UTC(2149, 0, 1));
  const notAfter = randomDate(random, notBefore.getTime() + 1000, Date.UTC(2150, 0, 1));
  const issuerDn = randomDn(random);
  return {
    serialNumber: randomSerial(random),
    signatureAlgorithm: random.pick(['RSA-SHA256', 'RSA-PSS-SHA256', 'ECDSA-SHA256', 'ECDSA-SHA384'] as const),
    issuer: random.chance(0.5) ? { der: encodeName(issuerDn) } : issuerDn,
    subject: randomDn(random),
    validity: { notBefore, notAfter },
    subjectPublicKeyInfo: randomSpki(random),
    extensions: random.chance(0.05) ? [] : randomExtensions(random),
  };
}
