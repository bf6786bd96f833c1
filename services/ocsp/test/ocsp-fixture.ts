import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { create, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { createGrpcClient, type ServiceClient } from '@pki/grpc';
import { createLogger, parseConfig, type Logger } from '@pki/kit';
import { createPool, withTransaction } from '@pki/db';
import { appendEvent, createEventTransport, migrateServiceSchema, OutboxRelay, type EventTransport } from '@pki/outbox';
import { caSignerV1, eventsV1 } from '@pki/proto';
import { toPem } from '@pki/x509';
import { startCaSigner } from '@pki/ca-signer';
import { startCaSignerFixture, type CaSignerFixture } from '../../ca-signer/test/service-fixture';
import { ocspConfigSchema, type OcspConfig } from '../src/config';
import { startOcsp, type RunningOcsp } from '../src/app';

/*
 * A real ca-signer (SoftHSM, two CA generations sharing one DN, each with its own delegated
 * responder), a real PostgreSQL store, status events published through a real outbox exactly as
 * ra publishes them (producer `ra`, relayed to the test Kafka broker or the PostgreSQL bus), and
 * the ocsp service under test (its serving threads run the built dist/: `make test` builds first).
 */

export const STATUS = eventsV1.CertificateStatus;
export const REASON = eventsV1.RevocationReason;

export interface Generation {
  keyId: string;
  /** The issuing CA certificate (PEM file). */
  certFile: string;
  /** Trust for `openssl ocsp -CAfile`: this generation and the root. */
  chainFile: string;
}

export interface IssuedCertificate {
  serialHex: string;
  issuerKeyId: string;
  certFile: string;
  notBefore: Date;
  notAfter: Date;
  generation: Generation;
}

export interface StatusChange {
  status: eventsV1.CertificateStatus;
  reason?: eventsV1.RevocationReason;
  previous?: eventsV1.CertificateStatus;
  revocationTime?: Date;
}

export interface OcspFixture {
  signer: CaSignerFixture;
  generations: [Generation, Generation];
  rootFile: string;
  ocsp: RunningOcsp;
  config: OcspConfig;
  topic: string;
  dir: string;
  /** Issues a certificate; `publicKeySpki` when the test holds the private key (a client certificate). */
  issue(generation: Generation, options?: { notAfter?: Date; publicKeySpki?: Uint8Array }): Promise<IssuedCertificate>;
  /** Commits a CertificateStatusChanged in the outbox (producer `ra`), as ra does; returns when committed. */
  publish(certificate: IssuedCertificate, change: StatusChange): Promise<Date>;
  /** Stops ca-signer (in this process) and starts it again on the same port. */
  stopSigner(): Promise<void>;
  startSigner(): Promise<void>;
  /** Stops the responder (the signer, store and broker stay). */
  stopOcsp(): Promise<void>;
  /** Starts a responder again on the same store, config changes applied. */
  restartOcsp(change?: (config: Record<string, unknown>) => void): Promise<void>;
  stop(): Promise<void>;
}

export interface OcspFixtureOptions {
  transport?: { type: 'kafka'; brokers: string[] } | { type: 'postgres' };
  /** The responder's own database (a server a test can stop); default the signer's. */
  ocspDatabaseUrl?: string;
  /** Changes to the ocsp config (raw, before parsing). */
  configure?: (config: Record<string, unknown>) => void;
  logger?: Logger;
}

const silent = () => createLogger({ service: 'test', level: (process.env.TEST_LOG_LEVEL as 'silent' | undefined) ?? 'silent' });

export async function startOcspFixture(options: OcspFixtureOptions = {}): Promise<OcspFixture> {
  // A second generation: same DN, its own key and its own delegated responder (the fixture's ceremony).
  const signer = await startCaSignerFixture({ extraGenerations: 1 });
  const dir = signer.dir;
  const caSigner: ServiceClient<typeof caSignerV1.CaSignerService> = createGrpcClient(caSignerV1.CaSignerService, {
    address: signer.signer.grpcAddress,
    serverIdentity: signer.identities['ca-signer'].identity,
    tls: signer.identities.ra,
    deadlineMs: 30_000,
  });
  const { issuers, chain } = await caSigner.getIssuers({});
  const rootFile = join(dir, 'root.pem');
  writeFileSync(rootFile, toPem(chain[0]!, 'CERTIFICATE'));
  const generationOf = (keyId: string, name: string): Generation => {
    const issuer = issuers.find((i) => i.keyId === keyId)!;
    const certFile = join(dir, `${name}.pem`);
    writeFileSync(certFile, toPem(issuer.certificate, 'CERTIFICATE'));
    const chainFile = join(dir, `${name}-chain.pem`);
    writeFileSync(chainFile, toPem(issuer.certificate, 'CERTIFICATE') + toPem(chain[0]!, 'CERTIFICATE'));
    return { keyId, certFile, chainFile };
  };
  const generations: [Generation, Generation] = [generationOf(issuers.find((i) => i.active)!.keyId, 'g1'), generationOf(signer.extraGenerations[0]!, 'g2')];

  // ra's outbox, in its own schema of the same database, relayed like ra's.
  const topic = `pki.certificate-status.v1.test-${randomBytes(4).toString('hex')}`;
  const logger = options.logger ?? silent();
  const raPool = createPool({ url: signer.databaseUrl, schema: 'ra_outbox' });
  await migrateServiceSchema(raPool, 'ra_outbox', undefined, logger);
  const transportConfig = options.transport ?? { type: 'kafka', brokers: (process.env.PKI_TEST_KAFKA_BROKERS ?? '').split(',') };
  const transport: EventTransport = await createEventTransport(
    transportConfig.type === 'kafka' ? { type: 'kafka', brokers: transportConfig.brokers, clientId: 'ra-test' } : { type: 'postgres', url: signer.databaseUrl, pollIntervalMs: 50 },
    { logger },
  );
  await transport.ensureTopics([topic]);
  const relay = new OutboxRelay({ pool: raPool, publisher: transport.publisher, producers: ['ra'], pollIntervalMs: 50, retry: { initialDelayMs: 100, maxDelayMs: 1_000 }, logger });
  await relay.start();

  const rawConfig: Record<string, unknown> = {
    log: { level: process.env.TEST_LOG_LEVEL ?? 'silent' },
    ops: { host: '127.0.0.1', port: 0 },
    database: { url: options.ocspDatabaseUrl ?? signer.databaseUrl, schema: 'ocsp', maxConnections: 8, statementTimeoutMs: 5_000 },
    http: { host: '127.0.0.1', port: 0, threads: 2 },
    tls: { caFile: signer.identities.ocsp.caFile, certFile: signer.identities.ocsp.certFile, keyFile: signer.identities.ocsp.keyFile },
    caSigner: { address: signer.signer.grpcAddress, serverIdentity: signer.identities['ca-signer'].identity, deadlineMs: 10_000 },
    events: {
      transport: transportConfig.type === 'kafka' ? { type: 'kafka', brokers: transportConfig.brokers, clientId: 'ocsp-test' } : { type: 'postgres' },
      group: `ocsp-${randomBytes(4).toString('hex')}`,
      topic,
    },
    memory: { maxCertificates: 100_000, maxResponseBytes: 64 * 1024 * 1024 },
    changePollIntervalMs: 200,
  };
  options.configure?.(rawConfig);
  let config: OcspConfig;
  let ocsp: RunningOcsp;
  try {
    config = parseConfig(ocspConfigSchema, rawConfig);
    ocsp = await startOcsp(config, { logger: options.logger ?? silent() });
    await ocsp.loaded;
  } catch (err) {
    await relay.stop();
    await transport.close();
    await raPool.end();
    caSigner.close();
    await signer.stop();
    throw err;
  }

  const keys = Array.from({ length: 4 }, () => generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' }));
  let issued = 0;
  const fixture: OcspFixture = {
    signer,
    generations,
    rootFile,
    get ocsp() {
      return ocsp;
    },
    get config() {
      return config;
    },
    topic,
    dir,
    async issue(generation, issueOptions = {}) {
      const n = issued++;
      const result = await caSigner.issueCertificate({
        idempotencyKey: `ocsp-test-${process.pid}-${n}-${randomBytes(4).toString('hex')}`,
        profile: 'citizen-signature',
        publicKeySpki: issueOptions.publicKeySpki ?? keys[n % keys.length]!,
        subject: [
          { type: 'C', value: 'TW' },
          { type: 'CN', value: '王小明' },
          { type: 'serialNumber', value: String(1_000_000_000_000_000 + n) },
        ],
        issuerKeyId: generation.keyId,
        ...(issueOptions.notAfter ? { notAfter: timestampFromDate(issueOptions.notAfter) } : {}),
      });
      const certFile = join(dir, `cert-${result.serialHex}.pem`);
      writeFileSync(certFile, toPem(result.certificate, 'CERTIFICATE'));
      return {
        serialHex: result.serialHex,
        issuerKeyId: result.issuerKeyId,
        certFile,
        notBefore: new Date(Number(result.notBefore!.seconds) * 1000),
        notAfter: new Date(Number(result.notAfter!.seconds) * 1000),
        generation,
      };
    },
    async publish(certificate, change) {
      const changedAt = new Date();
      const revocationTime = change.status === STATUS.VALID ? undefined : (change.revocationTime ?? new Date(Math.floor(changedAt.getTime() / 1000) * 1000));
      const event = create(eventsV1.CertificateStatusChangedSchema, {
        serialHex: certificate.serialHex,
        issuerKeyId: certificate.issuerKeyId,
        status: change.status,
        changedAt: timestampFromDate(changedAt),
        notBefore: timestampFromDate(certificate.notBefore),
        notAfter: timestampFromDate(certificate.notAfter),
        ...(revocationTime ? { revocationTime: timestampFromDate(revocationTime) } : {}),
        reason: change.reason ?? (change.status === STATUS.SUSPENDED ? REASON.CERTIFICATE_HOLD : REASON.UNSPECIFIED),
        profile: 'citizen-signature',
        previousStatus: change.previous ?? STATUS.UNSPECIFIED,
      });
      await withTransaction(raPool, (tx) => appendEvent(tx, { producer: 'ra', topic, key: certificate.serialHex, payload: toBinary(eventsV1.CertificateStatusChangedSchema, event) }));
      return changedAt;
    },
    async stopSigner() {
      await signer.signer.runtime.stop();
    },
    async startSigner() {
      const port = Number(signer.signer.grpcAddress.split(':').pop());
      signer.signer = await startCaSigner({ ...signer.config, grpc: { ...signer.config.grpc, port } }, { logger: silent() });
    },
    async stopOcsp() {
      await ocsp.runtime.stop();
    },
    async restartOcsp(change) {
      change?.(rawConfig);
      config = parseConfig(ocspConfigSchema, rawConfig);
      ocsp = await startOcsp(config, { logger: options.logger ?? silent() });
      await ocsp.loaded;
    },
    async stop() {
      await ocsp.runtime.stop().catch(() => undefined);
      await relay.stop();
      await transport.close();
      await raPool.end();
      caSigner.close();
      await signer.stop();
    },
  };
  return fixture;
}

/**
 * Runs openssl; resolves with stdout and stderr together (it prints statuses on stdout and
 * verification on stderr). Asynchronous on purpose: the responder's main thread runs in this
 * process, and a synchronous child would block it while openssl waits for its answer.
 */
export function openssl(args: string[]): Promise<string> {
  return new Promise((resolve) => {
    execFile('openssl', args, { encoding: 'utf8', timeout: 30_000 }, (_err, stdout, stderr) => resolve(`${stdout ?? ''}${stderr ?? ''}`));
  });
}

/** Polls `probe` until it returns a value (not undefined); generous deadline for loaded machines. */
export async function eventually<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 60_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export { pg };
