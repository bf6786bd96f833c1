import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request as httpsRequest } from 'node:https';
import { readFileSync } from 'node:fs';
import { create, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { Pool } from 'pg';
import { createLogger, parseConfig, type Logger } from '@pki/kit';
import { createPool, withTransaction } from '@pki/db';
import { createGrpcClient, type ServiceClient } from '@pki/grpc';
import { caSignerV1, eventsV1, Topics } from '@pki/proto';
import { appendEvent, createEventTransport, migrateServiceSchema, OutboxRelay, type EventTransport } from '@pki/outbox';
import { toPem } from '@pki/x509';
import { startCaSignerFixture, type CaSignerFixture } from '../../ca-signer/test/service-fixture';
import { crlConfigSchema, type CrlConfig } from '../src/config';

export const quiet: Logger = createLogger({ service: 'crl-test', level: (process.env.TEST_LOG_LEVEL as 'silent' | undefined) ?? 'silent' });
export const { CertificateStatus, RevocationReason } = eventsV1;

export interface IssuedCertificate {
  serialHex: string;
  issuerKeyId: string;
  pemFile: string;
  notBefore: Date;
  notAfter: Date;
}

/**
 * A real ca-signer (SoftHSM, two issuing generations under one root) and what ra will be for the
 * crl service: certificates issued through IssueCertificate, and CertificateStatusChanged events
 * written to an outbox and delivered by the relay through the configured transport, exactly as ra
 * writes them.
 */
export interface CrlEnvironment {
  signer: CaSignerFixture;
  generations: { g1: string; g2: string };
  rootKeyId: string;
  asRa: ServiceClient<typeof caSignerV1.CaSignerService>;
  /** Unique per environment: the shared test broker may carry other files' events. */
  producer: string;
  transportConfig: { type: 'kafka'; brokers: string[]; clientId: string } | { type: 'postgres' };
  issue(issuerKeyId: string, name: string): Promise<IssuedCertificate>;
  publishStatus(cert: Pick<IssuedCertificate, 'serialHex' | 'issuerKeyId' | 'notBefore' | 'notAfter'>, change: StatusChange): Promise<void>;
  crlConfig(overrides?: { schedule?: Partial<CrlConfig['schedule']>; admin?: Partial<CrlConfig['admin']> }): CrlConfig;
  rawCrlConfig(overrides?: { schedule?: Partial<CrlConfig['schedule']> }): Record<string, unknown>;
  file(name: string, data: string | Uint8Array): string;
  stop(): Promise<void>;
}

export type StatusChange =
  | { status: 'VALID'; previous?: 'SUSPENDED' }
  | { status: 'SUSPENDED'; at: Date }
  | { status: 'REVOKED'; at: Date; reason: eventsV1.RevocationReason; invalidityDate?: Date; previous?: 'VALID' | 'SUSPENDED' };

export async function startCrlEnvironment(options: { crlPartitions?: number; transport?: 'kafka' | 'postgres' } = {}): Promise<CrlEnvironment> {
  const signer = await startCaSignerFixture({ crlPartitions: options.crlPartitions ?? 4, extraGenerations: 1 });
  const asRa = createGrpcClient(caSignerV1.CaSignerService, { address: signer.signer.grpcAddress, serverIdentity: signer.identities['ca-signer'].identity, tls: signer.identities.ra, deadlineMs: 30_000 });
  const issuers = await asRa.getIssuers({});
  const g1 = issuers.issuers.find((i) => i.active)!.keyId;
  const g2 = issuers.issuers.find((i) => !i.active)!.keyId;
  const rootKeyId = issuers.roots[0]!.keyId;
  const producer = `ra-${randomBytes(4).toString('hex')}`;
  const brokers = process.env.PKI_TEST_KAFKA_BROKERS?.split(',');
  const transportConfig =
    options.transport === 'postgres' || !brokers ? ({ type: 'postgres' } as const) : ({ type: 'kafka', brokers, clientId: `crl-test-${producer}` } as const);

  // The outbox "ra" writes to: its own schema in the same database.
  const outboxPool: Pool = createPool({ url: signer.databaseUrl, schema: 'ra_sim', maxConnections: 4 });
  await migrateServiceSchema(outboxPool, 'ra_sim', undefined, quiet);
  const transport: EventTransport = await createEventTransport(
    transportConfig.type === 'kafka' ? { ...transportConfig } : { type: 'postgres', url: signer.databaseUrl, pollIntervalMs: 100 },
    { logger: quiet },
  );
  await transport.ensureTopics([Topics.certificateStatus]);
  const relay = new OutboxRelay({ pool: outboxPool, publisher: transport.publisher, producers: [producer], pollIntervalMs: 100, logger: quiet });
  await relay.start();

  const file = (name: string, data: string | Uint8Array) => {
    const path = join(signer.dir, name);
    writeFileSync(path, data);
    return path;
  };
  const subject = [
    { type: 'C', value: 'TW' },
    { type: 'CN', value: '王小明' },
    { type: 'serialNumber', value: '1234567890123456' },
  ];
  const tls = (who: 'crl' | 'ocsp' | 'audit') => signer.identities[who];
  const raw = (overrides: { schedule?: Partial<CrlConfig['schedule']>; admin?: Partial<CrlConfig['admin']> } = {}) => ({
    log: { level: (process.env.TEST_LOG_LEVEL as string | undefined) ?? 'silent' },
    ops: { host: '127.0.0.1', port: 0 },
    database: { url: signer.databaseUrl, schema: 'crl' },
    http: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0, tls: { caFile: tls('crl').caFile, certFile: tls('crl').certFile, keyFile: tls('crl').keyFile }, allow: [signer.identities.audit.identity], ...overrides.admin },
    tls: { caFile: tls('crl').caFile, certFile: tls('crl').certFile, keyFile: tls('crl').keyFile },
    caSigner: { address: signer.signer.grpcAddress, serverIdentity: signer.identities['ca-signer'].identity, deadlineMs: 30_000 },
    events: { transport: transportConfig, group: `crl-${producer}`, pollIntervalMs: 100 },
    schedule: {
      fullIntervalSeconds: 3_600,
      fullValiditySeconds: 7_200,
      deltaIntervalSeconds: 600,
      deltaValiditySeconds: 1_800,
      deltaAfterChangeSeconds: 1,
      partitionIntervalSeconds: 3_600,
      partitionValiditySeconds: 7_200,
      partitionAfterChangeSeconds: 1,
      expiredGraceSeconds: 3_600,
      leaseSeconds: 10,
      tickSeconds: 1,
      ...overrides.schedule,
    },
  });

  return {
    signer,
    generations: { g1, g2 },
    rootKeyId,
    asRa,
    producer,
    transportConfig,
    async issue(issuerKeyId, name) {
      const spki = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' });
      const issued = await asRa.issueCertificate({ idempotencyKey: `crl-test/${name}/${producer}`, profile: 'citizen-signature', publicKeySpki: spki, subject, issuerKeyId });
      return {
        serialHex: issued.serialHex,
        issuerKeyId: issued.issuerKeyId,
        pemFile: file(`${name}.pem`, toPem(issued.certificate, 'CERTIFICATE')),
        notBefore: new Date(Number(issued.notBefore!.seconds) * 1000),
        notAfter: new Date(Number(issued.notAfter!.seconds) * 1000),
      };
    },
    async publishStatus(cert, change) {
      const status = change.status === 'VALID' ? CertificateStatus.VALID : change.status === 'SUSPENDED' ? CertificateStatus.SUSPENDED : CertificateStatus.REVOKED;
      const previous = 'previous' in change && change.previous ? CertificateStatus[change.previous] : change.status === 'VALID' ? CertificateStatus.UNSPECIFIED : CertificateStatus.VALID;
      const message = create(eventsV1.CertificateStatusChangedSchema, {
        serialHex: cert.serialHex,
        issuerKeyId: cert.issuerKeyId,
        status,
        changedAt: timestampFromDate(new Date()),
        notBefore: timestampFromDate(cert.notBefore),
        notAfter: timestampFromDate(cert.notAfter),
        profile: 'citizen-signature',
        previousStatus: previous,
        reason:
          change.status === 'SUSPENDED' ? RevocationReason.CERTIFICATE_HOLD : change.status === 'REVOKED' ? change.reason : change.previous === 'SUSPENDED' ? RevocationReason.REMOVE_FROM_CRL : RevocationReason.UNSPECIFIED,
        ...(change.status !== 'VALID' ? { revocationTime: timestampFromDate(change.at) } : {}),
        ...(change.status === 'REVOKED' && change.invalidityDate ? { invalidityDate: timestampFromDate(change.invalidityDate) } : {}),
      });
      await withTransaction(outboxPool, (tx) => appendEvent(tx, { producer, topic: Topics.certificateStatus, key: cert.serialHex, payload: toBinary(eventsV1.CertificateStatusChangedSchema, message) }));
    },
    crlConfig: (overrides) => parseConfig(crlConfigSchema, raw(overrides)),
    rawCrlConfig: (overrides) => raw(overrides),
    file,
    async stop() {
      asRa.close();
      await relay.stop();
      await transport.close();
      await outboxPool.end();
      await signer.stop();
    },
  };
}

export const openssl = (args: string[]) => execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** openssl's output and exit status together (verify prints its verdict and fails with status 2). */
export function opensslResult(args: string[]): { ok: boolean; output: string } {
  const result = spawnSync('openssl', args, { encoding: 'utf8' });
  return { ok: result.status === 0, output: `${result.stdout}${result.stderr}` };
}

/** Waits for `condition` (generous deadline: the machine is shared). */
export async function eventually<T>(what: string, condition: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < until) {
    try {
      const value = await condition();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

/** An HTTPS request to the operators' API with a client certificate (or none). */
export function adminRequest(
  baseUrl: string,
  options: { method: 'GET' | 'POST'; path: string; body?: unknown; headers?: Record<string, string>; identity?: { certFile: string; keyFile: string; caFile: string }; caFile: string },
): Promise<{ status: number; body: Record<string, unknown> }> {
  const url = new URL(options.path, baseUrl);
  const agent = new Agent({
    ca: readFileSync(options.caFile),
    ...(options.identity ? { cert: readFileSync(options.identity.certFile), key: readFileSync(options.identity.keyFile) } : {}),
    // The server's certificate names the service, not 127.0.0.1; the CA is what is checked here.
    checkServerIdentity: () => undefined,
  });
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: options.method, agent, headers: { ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}), ...options.headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        agent.destroy();
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} });
      });
    });
    req.on('error', reject);
    if (options.body !== undefined) req.write(JSON.stringify(options.body));
    req.end();
  });
}
