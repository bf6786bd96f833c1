#!/usr/bin/env node
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, sign, X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Agent, fetch } from 'undici';
import { AsnConvert } from '@peculiar/asn1-schema';
import { Certificate } from '@peculiar/asn1-x509';
import { PkiError } from '@pki/kit';
import { fromPem } from '@pki/x509';
import { attestationMessage, bindingMessage, decodeKey as decodeSecretKey, deriveTransportSecret, unwrapSecret, type WrappedSecret } from '@pki/card-mgmt';
import { Card, type KeySlot } from './card';

/* eslint-disable no-console -- this is the counter's terminal */

const USAGE = `pki-workstation: the counter workstation (card in the reader over PKCS#11, card-mgmt over HTTPS)

  personalise  --card <number> --subscriber <ra subscriber id> --birth-date YYYY-MM-DD [--replaces <old card>] [--out <dir>]
  personalise  --card <number> --resume <personalisation id> --birth-date YYYY-MM-DD [--out <dir>]
                                               finishes one whose answer from ra never came back, and writes the certificates
  hand-over    --card <number>
  activate     --card <number>                 the citizen changes the initial PIN on the card, then card-mgmt and ra activate it
  report-lost  --card <number>
  unlock       --card <number>                 the citizen's subscriber code resets the PIN through the card's administrative secret
  mobile-enrol --card <number> --device-key <P-256 key PEM> [--device-name <name>] [--out <dir>]
                                               binds a phone through the card (PKI_CARD_PIN, PKI_SUBSCRIBER_CODE); no officer certificate needed
  sign         --card <number> --in <file>      signs the file with the card's SIGN key (PKI_CARD_PIN); prints the signature
  show         --card <number> [--out <dir>]   what the card holds (certificates, key attributes); needs the PIN
  supply       --card <number> --transport-key-file <file>   the card supplier's step: a blank chip becomes the card; prints its manifest entry

Common options: --api <card-mgmt URL> --cert <officer cert PEM> --key <officer key PEM> --ca <server CA PEM>
                --module <PKCS#11 module of the reader> (default /usr/lib/softhsm/libsofthsm2.so)
Secrets come from the environment, never the command line: PKI_CARD_PIN (the card's PIN),
PKI_CARD_NEW_PIN (activate, unlock), PKI_SUBSCRIBER_CODE (unlock). PKI_WORKSTATION_RETRY_SECONDS bounds
how long a 503 is retried (default 120).
Output: one JSON object on stdout; errors on stderr with exit code 1.`;

interface Options {
  api: string;
  agent: Agent;
  module: string;
  card: string;
}

/** The programme's initial PIN (domain.md: derived from the birth date): its eight digits YYYYMMDD. */
export function initialPin(birthDate: string): string {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(birthDate)) throw new PkiError('INVALID_ARGUMENT', 'personalise: --birth-date must be YYYY-MM-DD');
  return birthDate.replaceAll('-', '');
}

/**
 * One call to card-mgmt. A 503 (card-mgmt, ra or ca-signer briefly unavailable) is retried after
 * its Retry-After, for up to two minutes, with the same idempotency key: the retry finishes what
 * the first attempt started, never a second operation.
 */
async function call(options: Options, method: 'GET' | 'POST', path: string, body?: unknown, idempotencyKey?: string): Promise<Record<string, unknown>> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method === 'POST') headers['idempotency-key'] = idempotencyKey ?? `ws-${randomUUID()}`;
  const giveUp = Date.now() + 1000 * Number(process.env.PKI_WORKSTATION_RETRY_SECONDS ?? 120);
  for (;;) {
    const res = await fetch(`${options.api}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}), dispatcher: options.agent });
    const text = await res.text();
    const parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    if (res.status === 503 && Date.now() < giveUp) {
      const wait = Math.min(Number(res.headers.get('retry-after') ?? '5'), 30);
      console.error(`card-mgmt answered 503 (${String(parsed.message ?? 'unavailable')}); retrying in ${wait} s`);
      await new Promise((resolve) => setTimeout(resolve, wait * 1000));
      continue;
    }
    if (res.status >= 400) throw new PkiError((parsed.error as never) ?? 'INTERNAL', String(parsed.message ?? `card-mgmt answered ${res.status}`));
    return parsed;
  }
}

function env(name: string, what: string): string {
  const value = process.env[name];
  if (!value) throw new PkiError('INVALID_ARGUMENT', `${what}: set ${name} in the environment`);
  return value;
}

function transportKeyPair() {
  const pair = generateKeyPairSync('x25519');
  return { privateKey: pair.privateKey, publicKey: pair.publicKey.export({ format: 'der', type: 'spki' }).toString('base64') };
}

async function personalise(options: Options, values: Record<string, string | undefined>): Promise<unknown> {
  const subscriberId = required(values.subscriber, '--subscriber');
  const pin = initialPin(required(values['birth-date'], '--birth-date'));
  const card = Card.open(options.module);
  try {
    // The card must be in the reader before anything is reserved.
    const tokenSerial = card.tokenSerial(options.card);
    const transport = transportKeyPair();
    const started = await call(options, 'POST', '/v1/personalisations', {
      cardNumber: options.card,
      subscriberId,
      transportKey: transport.publicKey,
      ...(values.replaces ? { kind: 'REPLACEMENT', replacesCard: values.replaces } : {}),
    });
    const id = started.personalisationId as string;
    const challenge = Buffer.from(started.challenge as string, 'base64');
    const secrets = JSON.parse(unwrapSecret(started.cardSecrets as WrappedSecret, transport.privateKey, options.card)) as { transportSecret: string; adminSecret: string };
    card.takeOver(options.card, secrets.transportSecret, secrets.adminSecret, pin);
    const csr: Record<KeySlot, string> = { SIGN: '', KEYX: '' };
    const attestation: Record<KeySlot, string> = { SIGN: '', KEYX: '' };
    for (const slot of ['SIGN', 'KEYX'] as const) {
      const spki = card.generateKeyPair(options.card, pin, slot);
      csr[slot] = card.certificationRequest(options.card, pin, slot);
      attestation[slot] = card.attest(options.card, pin, attestationMessage(challenge, options.card, slot, spki)).toString('base64');
    }
    // The key derives from the personalisation: a retry after a lost answer gets the same result.
    const done = await call(options, 'POST', `/v1/personalisations/${id}/certificates`, { signingCsr: csr.SIGN, encryptionCsr: csr.KEYX, signingAttestation: attestation.SIGN, encryptionAttestation: attestation.KEYX, tokenSerial }, `ws-${id}`);
    return writeCertificates(card, options, pin, id, tokenSerial, done, values.out);
  } finally {
    card.close();
  }
}

/** `personalise --resume <id>`: finishes a personalisation that reached ra and writes its certificates. */
async function resumePersonalisation(options: Options, values: Record<string, string | undefined>): Promise<unknown> {
  const id = required(values.resume, '--resume');
  const pin = initialPin(required(values['birth-date'], '--birth-date'));
  const card = Card.open(options.module);
  try {
    const tokenSerial = card.tokenSerial(options.card);
    const done = await call(options, 'POST', `/v1/personalisations/${id}/resumption`, undefined, `ws-resume-${id}`);
    return writeCertificates(card, options, pin, id, tokenSerial, done, values.out);
  } finally {
    card.close();
  }
}

function writeCertificates(card: Card, options: Options, pin: string, id: string, tokenSerial: string, done: Record<string, unknown>, out: string | undefined): unknown {
  const certificates = done.certificates as Array<{ keySlot: KeySlot; serialHex: string; certificate: string; chain: string[] }>;
  for (const c of certificates) {
    const der = fromPem(c.certificate, 'CERTIFICATE');
    // The certificate must certify the key on this card, or it is not written.
    const onCard = card.publicKey(options.card, pin, c.keySlot);
    if (!new X509Certificate(der).publicKey.export({ format: 'der', type: 'spki' }).equals(onCard)) {
      throw new PkiError('INTERNAL', `personalise: the ${c.keySlot} certificate from card-mgmt does not certify the card's ${c.keySlot} key`);
    }
    card.writeCertificate(options.card, pin, c.keySlot, der, subjectOf(der));
  }
  if (out) writeOut(out, options.card, certificates);
  return { personalisationId: id, cardNumber: options.card, tokenSerial, card: done.card, replacedCard: done.replacedCard, certificates: certificates.map((c) => ({ keySlot: c.keySlot, serialHex: c.serialHex })) };
}

/** The supplier's tool: makes a blank chip into card `--card` and prints its manifest entry. */
function supply(modulePath: string, cardNumber: string, transportKeyFile: string): unknown {
  const card = Card.open(modulePath);
  try {
    const key = decodeSecretKey(readFileSync(transportKeyFile, 'utf8'), 'transport key file');
    const { chipSerial, attestationKey } = card.supply(cardNumber, deriveTransportSecret(key, cardNumber));
    return { cardNumber, chipSerial, attestationKey: attestationKey.toString('base64') };
  } finally {
    card.close();
  }
}


async function activate(options: Options): Promise<unknown> {
  const card = Card.open(options.module);
  try {
    // The citizen replaces the initial PIN before the card counts as received.
    card.changePin(options.card, env('PKI_CARD_PIN', 'activate'), env('PKI_CARD_NEW_PIN', 'activate'));
  } finally {
    card.close();
  }
  return call(options, 'POST', `/v1/cards/${options.card}/activation`);
}

async function unlock(options: Options): Promise<unknown> {
  const card = Card.open(options.module);
  try {
    const transport = transportKeyPair();
    const released = await call(options, 'POST', `/v1/cards/${options.card}/pin-unlock`, { subscriberCode: env('PKI_SUBSCRIBER_CODE', 'unlock'), transportKey: transport.publicKey, tokenSerial: card.tokenSerial(options.card) });
    const adminSecret = unwrapSecret(released.adminSecret as WrappedSecret, transport.privateKey, options.card);
    card.resetPin(options.card, adminSecret, env('PKI_CARD_NEW_PIN', 'unlock'));
    return { cardNumber: options.card, unlocked: true };
  } finally {
    card.close();
  }
}

/**
 * Binds a phone (its key in `--device-key`, standing in for the phone's keystore) to the card's
 * holder: a one-time challenge, signed by the card's SIGN key (PIN) and by the phone's key, and
 * the subscriber code. Prints the device and its certificate.
 */
async function mobileEnrol(options: Options, values: Record<string, string | undefined>): Promise<unknown> {
  const deviceKey = createPrivateKey(readFileSync(required(values['device-key'], '--device-key')));
  const devicePublicKey = createPublicKey(deviceKey).export({ format: 'der', type: 'spki' });
  const challenge = await call(options, 'POST', '/v1/mobile/challenges', { cardNumber: options.card });
  const message = bindingMessage(Buffer.from(challenge.challenge as string, 'base64'), options.card, devicePublicKey);
  const card = Card.open(options.module);
  let cardSignature: Buffer;
  try {
    cardSignature = card.sign(options.card, env('PKI_CARD_PIN', 'mobile-enrol'), 'SIGN', message);
  } finally {
    card.close();
  }
  const enrolled = await call(options, 'POST', '/v1/mobile/devices', {
    challengeId: challenge.challengeId,
    cardNumber: options.card,
    deviceName: values['device-name'] ?? 'phone',
    devicePublicKey: devicePublicKey.toString('base64'),
    deviceSignature: sign('sha256', message, deviceKey).toString('base64'),
    cardSignature: cardSignature.toString('base64'),
    subscriberCode: env('PKI_SUBSCRIBER_CODE', 'mobile-enrol'),
  });
  if (values.out) {
    mkdirSync(values.out, { recursive: true });
    writeFileSync(join(values.out, `${enrolled.deviceId as string}.pem`), enrolled.certificate as string);
    writeFileSync(join(values.out, `${enrolled.deviceId as string}-chain.pem`), (enrolled.chain as string[]).join(''));
  }
  return enrolled;
}

/** Signs a file with the card's SIGN key (PKI_CARD_PIN): what any signing application does with the card. */
function signWithCard(options: Options, values: Record<string, string | undefined>): unknown {
  const data = readFileSync(required(values.in, '--in'));
  const card = Card.open(options.module);
  try {
    return { cardNumber: options.card, signature: card.sign(options.card, env('PKI_CARD_PIN', 'sign'), 'SIGN', data).toString('base64') };
  } finally {
    card.close();
  }
}

function show(options: Options, out: string | undefined): unknown {
  const card = Card.open(options.module);
  try {
    const pin = process.env.PKI_CARD_PIN;
    const result: Record<string, unknown> = { cardNumber: options.card, tokenSerial: card.tokenSerial(options.card) };
    if (pin) result.pinWorks = card.pinWorks(options.card, pin);
    for (const slot of ['SIGN', 'KEYX'] as const) {
      const der = card.certificate(options.card, slot);
      const entry: Record<string, unknown> = { certificate: der ? new X509Certificate(der).serialNumber.toLowerCase() : null };
      if (pin && result.pinWorks) {
        entry.privateKey = card.privateKeyAttributes(options.card, pin, slot);
        entry.certificateMatchesKey = der ? new X509Certificate(der).publicKey.export({ format: 'der', type: 'spki' }).equals(card.publicKey(options.card, pin, slot)) : false;
      }
      if (der && out) {
        mkdirSync(out, { recursive: true });
        writeFileSync(join(out, `${options.card}-${slot}.pem`), new X509Certificate(der).toString());
      }
      result[slot] = entry;
    }
    return result;
  } finally {
    card.close();
  }
}

function subjectOf(der: Buffer): Buffer {
  // CKA_SUBJECT is the DER of the certificate's subject Name.
  return Buffer.from(AsnConvert.serialize(AsnConvert.parse(der, Certificate).tbsCertificate.subject));
}

function writeOut(dir: string, cardNumber: string, certificates: Array<{ keySlot: KeySlot; certificate: string; chain: string[] }>): void {
  mkdirSync(dir, { recursive: true });
  for (const c of certificates) {
    writeFileSync(join(dir, `${cardNumber}-${c.keySlot}.pem`), c.certificate);
    writeFileSync(join(dir, `${cardNumber}-${c.keySlot}-chain.pem`), c.chain.join(''));
  }
}

function required(value: string | undefined, flag: string): string {
  if (!value) throw new PkiError('INVALID_ARGUMENT', `${flag} is required`);
  return value;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h') {
    console.log(USAGE);
    return command ? 0 : 64;
  }
  const { values } = parseArgs({
    args: rest,
    strict: true,
    options: {
      api: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' }, ca: { type: 'string' }, module: { type: 'string' },
      card: { type: 'string' }, subscriber: { type: 'string' }, 'transport-key-file': { type: 'string' }, 'birth-date': { type: 'string' }, replaces: { type: 'string' }, out: { type: 'string' }, 'device-key': { type: 'string' }, in: { type: 'string' }, resume: { type: 'string' }, 'device-name': { type: 'string' },
    },
  });
  const cardNumber = required(values.card, '--card');
  const modulePath = values.module ?? '/usr/lib/softhsm/libsofthsm2.so';
  if (command === 'supply') {
    console.log(JSON.stringify(supply(modulePath, cardNumber, required(values['transport-key-file'], '--transport-key-file'))));
    return 0;
  }
  if (command === 'sign') {
    console.log(JSON.stringify(signWithCard({ api: '', agent: undefined as never, module: modulePath, card: cardNumber }, values)));
    return 0;
  }
  if (command === 'show') {
    console.log(JSON.stringify(show({ api: '', agent: undefined as never, module: modulePath, card: cardNumber }, values.out)));
    return 0;
  }
  // The citizen's own commands (mobile-enrol) present no officer certificate.
  const officer = values.cert && values.key ? { cert: readFileSync(values.cert), key: readFileSync(values.key) } : {};
  const agent = new Agent({ connect: { ca: readFileSync(required(values.ca, '--ca')), ...officer } });
  const options: Options = { api: required(values.api, '--api').replace(/\/$/, ''), agent, module: modulePath, card: cardNumber };
  try {
    let result: unknown;
    switch (command) {
      case 'personalise':
        result = values.resume ? await resumePersonalisation(options, values) : await personalise(options, values);
        break;
      case 'hand-over':
        result = await call(options, 'POST', `/v1/cards/${cardNumber}/hand-over`);
        break;
      case 'activate':
        result = await activate(options);
        break;
      case 'report-lost':
        result = await call(options, 'POST', `/v1/cards/${cardNumber}/loss`);
        break;
      case 'unlock':
        result = await unlock(options);
        break;
      case 'mobile-enrol':
        result = await mobileEnrol(options, values);
        break;
      default:
        console.error(`unknown command '${command}'\n\n${USAGE}`);
        return 64;
    }
    console.log(JSON.stringify(result));
    return 0;
  } finally {
    await agent.close();
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      const e = err instanceof PkiError ? err : PkiError.from(err, 'workstation');
      console.error(JSON.stringify({ error: e.code, message: e.message }));
      process.exit(1);
    },
  );
}
