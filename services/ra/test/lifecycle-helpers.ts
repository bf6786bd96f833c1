import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { withCheckDigit, type RaFixture } from './ra-fixture';

export interface Person {
  nationalId: string;
  name: string;
  birthDate: string;
  email?: string;
  subscriberCode: string;
  publicationConsent: boolean;
}

let people = 0;
const LETTERS = 'ABCDEFGHJKLMNPQRSTUVXYWZIO';

/** A fresh person with a valid, unique national ID (and a rare ideograph in the name now and then). */
export function person(overrides: Partial<Person> = {}): Person {
  const n = ++people;
  const prefix = `${LETTERS[n % LETTERS.length]}${n % 2 === 0 ? 2 : 1}${String(1_000_000 + ((process.pid * 7919 + n * 104_729) % 9_000_000)).padStart(7, '0')}`;
  return {
    nationalId: withCheckDigit(prefix),
    name: n % 3 === 0 ? `陳𠀋${n}`.replace(/\d/g, '') + '明' : `王小明${'甲乙丙丁戊己庚辛壬癸'[n % 10]}`,
    birthDate: `19${50 + (n % 49)}-0${1 + (n % 9)}-1${n % 10}`,
    subscriberCode: `code${randomBytes(3).toString('hex')}9`,
    publicationConsent: n % 2 === 0,
    ...overrides,
  };
}

let cards = 0;
export function cardNumber(): string {
  return `TP${String(process.pid % 100000).padStart(5, '0')}${String(++cards).padStart(9, '0')}`;
}

export interface IssuedCard {
  subscriberId: string;
  applicationId: string;
  cardNumber: string;
  body: Record<string, unknown>;
  certificates: Array<{ serialHex: string; keySlot: string; status: string; certificate: string; chain: string[]; issuerKeyId: string; notAfter: string }>;
  subjectSerialNumber: string;
}

export async function register(f: RaFixture, p: Person, who = 'registrar-a'): Promise<string> {
  const res = await f.call(who, 'POST', '/v1/subscribers', p);
  if (res.status !== 201) throw new Error(`register: ${res.status} ${res.text}`);
  return res.body.subscriberId as string;
}

export async function issueCard(f: RaFixture, subscriberId: string, options: { kind?: 'NEW' | 'REPLACEMENT'; replacesCard?: string; who?: string } = {}): Promise<IssuedCard> {
  const number = cardNumber();
  const who = options.who ?? 'registrar-a';
  const application = await f.call(who, 'POST', '/v1/applications', {
    subscriberId, cardNumber: number, kind: options.kind ?? 'NEW', ...(options.replacesCard ? { replacesCard: options.replacesCard } : {}),
    signingCsr: f.csr(`${number}-sign`), encryptionCsr: f.csr(`${number}-keyx`),
  });
  if (application.status !== 201) throw new Error(`apply: ${application.status} ${application.text}`);
  const issued = await f.call(who, 'POST', `/v1/applications/${application.body.id}/approval`);
  if (issued.status !== 201) throw new Error(`approve: ${issued.status} ${issued.text}`);
  const card = issued.body.card as Record<string, unknown>;
  return {
    subscriberId,
    applicationId: application.body.id as string,
    cardNumber: number,
    body: issued.body,
    certificates: (card.certificates as IssuedCard['certificates']).filter((c) => c.status === 'VALID'),
    subjectSerialNumber: card.subjectSerialNumber as string,
  };
}

/** What OpenSSL says of a certificate: its subject, the checks it passes, its SDA digits. */
export function openssl(f: RaFixture, pem: string, chain: string[], options: { attime?: Date } = {}): { subject: string; verify: string; text: string; sdaLastFour: string | undefined; publicKeyPem: string } {
  const tag = randomBytes(4).toString('hex');
  const leaf = join(f.dir, `leaf-${tag}.pem`);
  const issuing = join(f.dir, `issuing-${tag}.pem`);
  const root = join(f.dir, `root-${tag}.pem`);
  writeFileSync(leaf, pem);
  writeFileSync(issuing, chain[0]!);
  writeFileSync(root, chain[chain.length - 1]!);
  const subject = execFileSync('openssl', ['x509', '-in', leaf, '-noout', '-subject', '-nameopt', 'utf8,sep_comma_plus_space'], { encoding: 'utf8' }).trim();
  const verify = execFileSync('openssl', ['verify', '-x509_strict', ...(options.attime ? ['-attime', String(Math.floor(options.attime.getTime() / 1000))] : []), '-CAfile', root, '-untrusted', issuing, leaf], { encoding: 'utf8' }).trim().replace(`${leaf}: `, '');
  const text = execFileSync('openssl', ['x509', '-in', leaf, '-noout', '-text', '-nameopt', 'utf8,sep_comma_plus_space'], { encoding: 'utf8' });
  const der = execFileSync('openssl', ['x509', '-in', leaf, '-outform', 'DER']);
  const parsed = execFileSync('openssl', ['asn1parse', '-inform', 'DER'], { input: der, encoding: 'utf8' });
  const at = /(\d+):d=\d+\s+hl=\d+ l=\s*\d+ prim:\s+OCTET STRING/.exec(parsed.slice(parsed.indexOf('X509v3 Subject Directory Attributes')))?.[1];
  let sdaLastFour: string | undefined;
  if (parsed.includes('X509v3 Subject Directory Attributes') && at) {
    const sda = execFileSync('openssl', ['asn1parse', '-inform', 'DER', '-strparse', at], { input: der, encoding: 'utf8' });
    if (/OBJECT\s*:2\.16\.886\.1\.100\.2\.51/.test(sda)) sdaLastFour = /PRINTABLESTRING\s*:(\d{4})/.exec(sda)?.[1];
  }
  const publicKeyPem = execFileSync('openssl', ['x509', '-in', leaf, '-noout', '-pubkey'], { encoding: 'utf8' });
  return { subject, verify, text, sdaLastFour, publicKeyPem };
}

/** The public key of a card key the fixture made (OpenSSL), to compare with the certificate's. */
export function cardPublicKey(f: RaFixture, name: string): string {
  return execFileSync('openssl', ['pkey', '-in', join(f.dir, `${name}.card.key`), '-pubout'], { encoding: 'utf8' });
}

/** A snapshot of everything a refused request must leave unchanged. */
export async function registrySnapshot(f: RaFixture): Promise<string> {
  const { rows } = await f.db.query(`
    SELECT (SELECT count(*) FROM subscribers) AS subscribers,
           (SELECT string_agg(id || ':' || state, ',' ORDER BY id) FROM applications) AS applications,
           (SELECT string_agg(card_number || ':' || status || ':' || extended, ',' ORDER BY card_number) FROM cards) AS cards,
           (SELECT string_agg(serial_hex || ':' || status, ',' ORDER BY serial_hex) FROM certificates) AS certificates,
           (SELECT string_agg(id || ':' || state, ',' ORDER BY id) FROM approval_requests) AS approvals,
           (SELECT count(*) FROM household_events) AS household,
           (SELECT count(*) FROM outbox WHERE topic = 'pki.certificate-status.v1') AS status_events,
           (SELECT string_agg(id || ':' || code_failures || ':' || coalesce(code_locked_until::text, '-'), ',' ORDER BY id) FROM subscribers) AS attempts`);
  return JSON.stringify(rows[0]);
}
