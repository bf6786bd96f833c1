// @peculiar/x509 resolves its ASN.1 providers through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import { webcrypto, createPrivateKey, X509Certificate as NodeX509 } from 'node:crypto';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as x509 from '@peculiar/x509';

/**
 * The internal service CA: it issues the mTLS certificates services use to talk to each other.
 * It is deliberately separate from the citizen CA (whose keys live only in the HSM): a service
 * identity is an operational credential, not a citizen certificate, and compromising one must not
 * touch the other. Its key is generated at set-up on the machine that runs the services and is
 * never committed (it lives under var/).
 *
 * Identities are SPIFFE-style URIs in the subjectAltName: spiffe://pki.internal/<service>.
 */
export const TRUST_DOMAIN = 'pki.internal';

export function serviceIdentity(service: string): string {
  return `spiffe://${TRUST_DOMAIN}/${service}`;
}

const crypto = webcrypto;
x509.cryptoProvider.set(crypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALGORITHM: webcrypto.EcKeyGenParams & webcrypto.EcdsaParams = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

export interface ServiceCaPaths {
  dir: string;
  certFile: string;
  keyFile: string;
}

export interface ServiceCredentials {
  caFile: string;
  certFile: string;
  keyFile: string;
  identity: string;
}

function caPaths(dir: string): ServiceCaPaths {
  return { dir, certFile: path.join(dir, 'ca.crt'), keyFile: path.join(dir, 'ca.key') };
}

function writePrivate(file: string, pem: string): void {
  writeFileSync(file, pem, { mode: 0o600 });
  chmodSync(file, 0o600);
}

async function exportKeyPem(key: CryptoKey): Promise<string> {
  const pkcs8 = Buffer.from(await crypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END PRIVATE KEY-----\n`;
}

async function importKeyPem(pem: string): Promise<CryptoKey> {
  const der = createPrivateKey(pem).export({ type: 'pkcs8', format: 'der' });
  return crypto.subtle.importKey('pkcs8', der, ALGORITHM, false, ['sign']);
}

/** Creates the service CA in `dir` unless it already exists; returns its paths either way. */
export async function ensureServiceCa(dir: string, options: { now?: Date; validityYears?: number } = {}): Promise<ServiceCaPaths> {
  return ensureSoftwareCa(dir, 'CN=PKI internal service CA, O=Citizen PKI operations', options);
}

/**
 * A small software CA in `dir` (created unless it exists), for credentials that are not citizen
 * certificates: the service CA above, and in development and tests the officer CA that issues
 * registration officers' client certificates (production uses the deployment's own officer CA).
 */
export async function ensureSoftwareCa(dir: string, name: string, options: { now?: Date; validityYears?: number } = {}): Promise<ServiceCaPaths> {
  const paths = caPaths(dir);
  if (existsSync(paths.certFile) && existsSync(paths.keyFile)) return paths;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const now = options.now ?? new Date();
  const keys = (await crypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialHex(),
    name,
    notBefore: now,
    notAfter: addYears(now, options.validityYears ?? 10),
    keys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  writePrivate(paths.keyFile, await exportKeyPem(keys.privateKey));
  writeFileSync(paths.certFile, cert.toString('pem') + '\n');
  return paths;
}

export interface IssueServiceCertificateOptions {
  /** Folder the CA lives in (see ensureServiceCa). */
  caDir: string;
  /** Folder to write <name>.crt and <name>.key to. */
  outDir: string;
  /** Service name: becomes spiffe://pki.internal/<service> and a DNS name. */
  service: string;
  /** File name stem; defaults to the service name (tests issue several per service). */
  name?: string;
  dnsNames?: string[];
  now?: Date;
  validityDays?: number;
  /** Issue even if a valid certificate is already there. */
  force?: boolean;
}

/**
 * Issues (or reuses, if present and not near expiry) the mTLS certificate of one service. The
 * certificate is both a TLS server and a TLS client certificate: services call each other.
 */
export async function issueServiceCertificate(options: IssueServiceCertificateOptions): Promise<ServiceCredentials> {
  const ca = caPaths(options.caDir);
  const stem = options.name ?? options.service;
  mkdirSync(options.outDir, { recursive: true, mode: 0o700 });
  const certFile = path.join(options.outDir, `${stem}.crt`);
  const keyFile = path.join(options.outDir, `${stem}.key`);
  const identity = serviceIdentity(options.service);
  const now = options.now ?? new Date();
  if (!options.force && existsSync(certFile) && existsSync(keyFile)) {
    const existing = new NodeX509(readFileSync(certFile));
    const caCert = new NodeX509(readFileSync(ca.certFile));
    // Reuse only a certificate of this CA that has at least a day left.
    if (existing.checkIssued(caCert) && existing.verify(caCert.publicKey) && new Date(existing.validTo).getTime() - now.getTime() > 86_400_000) {
      return { caFile: ca.certFile, certFile, keyFile, identity };
    }
  }
  const caCert = new x509.X509Certificate(readFileSync(ca.certFile, 'utf8'));
  const caKey = await importKeyPem(readFileSync(ca.keyFile, 'utf8'));
  const keys = (await crypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const dnsNames = options.dnsNames ?? [options.service, 'localhost'];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: `CN=${options.service}, O=Citizen PKI operations`,
    issuer: caCert.subject,
    notBefore: now,
    notAfter: new Date(now.getTime() + (options.validityDays ?? 90) * 86_400_000),
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([
        { type: 'url', value: identity },
        ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
        { type: 'ip', value: '127.0.0.1' },
      ]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
    ],
  });
  writePrivate(keyFile, await exportKeyPem(keys.privateKey));
  writeFileSync(certFile, cert.toString('pem') + '\n');
  return { caFile: ca.certFile, certFile, keyFile, identity };
}

export interface IssueClientCertificateOptions {
  caDir: string;
  outDir: string;
  /** File name stem: <name>.crt and <name>.key. */
  name: string;
  /** The subject, e.g. `CN=registrar-1, OU=63000000, O=Registration counters`. */
  subject: string;
  now?: Date;
  validityDays?: number;
}

/**
 * Issues a TLS client certificate (clientAuth only) from a software CA, reusing one that exists
 * and has more than a day left: a person's or an external system's credential for mutual TLS.
 */
export async function issueClientCertificate(options: IssueClientCertificateOptions): Promise<{ caFile: string; certFile: string; keyFile: string }> {
  const ca = caPaths(options.caDir);
  mkdirSync(options.outDir, { recursive: true, mode: 0o700 });
  const certFile = path.join(options.outDir, `${options.name}.crt`);
  const keyFile = path.join(options.outDir, `${options.name}.key`);
  const now = options.now ?? new Date();
  if (existsSync(certFile) && existsSync(keyFile)) {
    const existing = new NodeX509(readFileSync(certFile));
    const caCert = new NodeX509(readFileSync(ca.certFile));
    if (existing.checkIssued(caCert) && existing.verify(caCert.publicKey) && new Date(existing.validTo).getTime() - now.getTime() > 86_400_000) return { caFile: ca.certFile, certFile, keyFile };
  }
  const caCert = new x509.X509Certificate(readFileSync(ca.certFile, 'utf8'));
  const caKey = await importKeyPem(readFileSync(ca.keyFile, 'utf8'));
  const keys = (await crypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: options.subject,
    issuer: caCert.subject,
    notBefore: now,
    notAfter: new Date(now.getTime() + (options.validityDays ?? 365) * 86_400_000),
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
    ],
  });
  writePrivate(keyFile, await exportKeyPem(keys.privateKey));
  writeFileSync(certFile, cert.toString('pem') + '\n');
  return { caFile: ca.certFile, certFile, keyFile };
}

function randomSerialHex(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  bytes[0] = (bytes[0]! & 0x7f) | 0x40; // positive and full length (RFC 5280 §4.1.2.2)
  return Buffer.from(bytes).toString('hex');
}

function addYears(date: Date, years: number): Date {
  const d = new Date(date);
  d.setUTCFullYear(d.getUTCFullYear() + years);
  return d;
}
