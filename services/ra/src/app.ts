import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Counter, Histogram } from 'prom-client';
import { ServiceRuntime, systemClock, type Clock, type Logger } from '@pki/kit';
import { createGrpcClient, GrpcServer, type ServiceHandlers } from '@pki/grpc';
import { caSignerV1, eventsV1, raV1, Topics } from '@pki/proto';
import { connectServiceDatabase, startOutboxRelay } from '@pki/outbox';
import type { RaConfig } from './config';
import { buildHttpApp } from './http/app';
import { raServiceHandlers } from './grpc/ra-service';
import { counterOperationHandlers } from './grpc/counter-operations';
import { AesGcmPersonalDataVault, decodeKey } from './adapters/crypto/personal-data-vault';
import { ScryptCodeHasher } from './adapters/crypto/scrypt-code-hasher';
import { PostgresRegistry } from './adapters/postgres/registry';
import { PostgresAgencyStore } from './adapters/postgres/agency';
import { fromBinary } from '@bufbuild/protobuf';
import { timestampDate } from '@bufbuild/protobuf/wkt';

import type { OcspIdentification } from './ports/agency';
import { GrpcCertificateSigner } from './adapters/grpc/ca-signer-client';
import { NO_FAULTS, type CertificateSigner, type FaultPoints } from './ports/certificate-signer';
import { RegistrationAuthority } from './domain/registration-authority';
import { IssuerDirectory } from './domain/issuer-directory';
import { CertificateValidator } from './domain/certificate-validation';
import { DEFAULT_EXTENSION_POLICY } from './domain/lifecycle';
import type { ApprovalOperation } from './domain/model';

const OCSP_IDENTIFICATION: Record<number, OcspIdentification> = {
  [eventsV1.OcspCallerIdentification.MTLS]: 'MTLS',
  [eventsV1.OcspCallerIdentification.SIGNED_REQUEST]: 'SIGNED_REQUEST',
  [eventsV1.OcspCallerIdentification.SYSTEM_URL]: 'SYSTEM_URL',
};

export const MIGRATIONS_DIRECTORY = path.join(__dirname, '..', 'migrations');

export interface RaDependencies {
  clock?: Clock;
  logger?: Logger;
  /** Replaces the gRPC client of ca-signer (tests that hold a call at the door). */
  signer?: CertificateSigner;
  /** Crash points for the crash-consistency tests; none in production. */
  faults?: FaultPoints;
  /** Start the background jobs (reconciliation, expiry, re-sealing); tests that drive them by hand turn it off. */
  backgroundJobs?: boolean;
}

export interface RunningRa {
  runtime: ServiceRuntime;
  ra: RegistrationAuthority;
  registry: PostgresRegistry;
  /** The certificate validation API's logic (the route puts agency authentication in front). */
  validator: CertificateValidator;
  httpUrl: string;
  grpcAddress: string;
  opsUrl: string;
}

/** Builds ra from a validated config and starts its listeners; main.ts only loads the config. */
export async function startRa(config: RaConfig, deps: RaDependencies = {}): Promise<RunningRa> {
  const runtime = new ServiceRuntime('ra', config, deps.logger);
  try {
    return await start(config, deps, runtime);
  } catch (err) {
    // Whatever started before the failure (pool, relay, listeners) stops again.
    await runtime.stop().catch(() => undefined);
    throw err;
  }
}

async function start(config: RaConfig, deps: RaDependencies, runtime: ServiceRuntime): Promise<RunningRa> {
  const { logger, lifecycle } = runtime;
  const clock = deps.clock ?? systemClock;
  const pool = await connectServiceDatabase(runtime, config.database, MIGRATIONS_DIRECTORY);

  const pd = config.personalData;
  const vault = new AesGcmPersonalDataVault({
    encryption: pd.encryptionKeys.map((k) => ({ id: k.id, key: decodeKey(k.keyFile.reveal(), `encryption key ${k.id}`) })),
    activeEncryptionKeyId: pd.activeEncryptionKey,
    lookup: pd.lookupKeys.map((k) => ({ id: k.id, key: decodeKey(k.keyFile.reveal(), `lookup key ${k.id}`) })),
    activeLookupKeyId: pd.activeLookupKey,
    reference: decodeKey(pd.referenceKeyFile.reveal(), 'reference key'),
  });
  const hasher = new ScryptCodeHasher({ cost: config.subscriberCode.scryptCost, blockSize: 8, parallelization: 1 });

  let signer = deps.signer;
  if (!signer) {
    const client = createGrpcClient(caSignerV1.CaSignerService, { ...config.caSigner, tls: config.tls });
    lifecycle.onClose({ name: 'ca-signer client', stop: async () => client.close() });
    signer = new GrpcCertificateSigner(client);
  }
  const registryOptions = { pool, vault, clock, statusProducer: config.events.producer, auditProducer: config.events.auditProducer };
  const registry = new PostgresRegistry(registryOptions);
  const agencyStore = new PostgresAgencyStore(registryOptions);
  const issuers = new IssuerDirectory(signer);
  const receiptSigner = signer;
  const validator = new CertificateValidator(
    {
      trust: () => issuers.trustMaterial(),
      registered: (serialHex) => registry.reads.getCertificate(serialHex),
      signReceipt: (receipt) => receiptSigner.signValidationReceipt(receipt),
    },
    { clock, acceptedPolicies: config.validation.acceptedPolicies },
  );
  const ra = new RegistrationAuthority(
    {
      registry,
      signer,
      issuers,
      vault,
      hasher,
      clock,
      logger,
      faults: deps.faults ?? NO_FAULTS,
      serviceIdentity: 'spiffe://pki.internal/ra',
      policy: {
        extension: DEFAULT_EXTENSION_POLICY,
        subscriberCode: config.subscriberCode,
        dualControl: { operations: new Set<ApprovalOperation>(config.dualControl.operations), requestTtlMinutes: config.dualControl.requestTtlMinutes },
        maxBulkCards: config.maxBulkCards,
        signerDeadlineMs: config.caSigner.deadlineMs,
      },
    },
    config.reconciliation,
    { store: agencyStore, policy: { defaultRateLimitPerMinute: config.agency.defaultRateLimitPerMinute }, identityConfirmation: config.agency.identityConfirmation },
  );

  const { transport } = await startOutboxRelay(runtime, pool, config.database, { ...config.events, extraProducers: [config.events.auditProducer] });
  // Declares the topics ra writes (created only when missing). A cluster provisioned with its own
  // settings and ACLs may refuse: the relay keeps retrying delivery either way, so only warn.
  await transport.ensureTopics([Topics.certificateStatus, Topics.audit, Topics.usage]).catch((err: unknown) => logger.warn({ err }, 'could not check or create the event topics; delivery retries until they exist'));
  // The OCSP responders' usage windows, credited to registered systems (each window once).
  await transport.subscriber.subscribe({
    topic: Topics.usage,
    group: config.agency.usageGroup,
    handler: async (event) => {
      const counted = fromBinary(eventsV1.OcspUsageCountedSchema, event.payload);
      await ra.usage.applyOcspWindow({
        responderInstance: counted.responderInstance,
        windowSequence: counted.windowSequence,
        windowStart: counted.windowStart ? timestampDate(counted.windowStart) : event.createdAt,
        anonymousRequests: Number(counted.anonymousRequests),
        overflowRequests: Number(counted.overflowRequests),
        entries: counted.entries.map((e) => ({ identification: OCSP_IDENTIFICATION[e.identification] ?? 'UNSPECIFIED', callerKey: e.callerKey, requests: Number(e.requests) })),
      });
    },
  });

  const http = buildHttpApp({
    ra,
    principals: registry,
    fingerprint: (data) => vault.fingerprint(data),
    logger,
    rateLimits: config.http.rateLimits,
    https: { cert: readFileSync(config.http.certFile), key: readFileSync(config.http.keyFile), ca: config.http.clientCaFiles.map((f) => readFileSync(f)) },
    bodyLimitBytes: config.http.bodyLimitBytes,
    agency: { agencies: ra.agencies, identityConfirmation: ra.identityConfirmation, statistics: ra.statistics, identityPolicy: config.agency.identityConfirmation, validator },
  });
  instrumentHttp(http, runtime);
  await http.listen({ host: config.http.host, port: config.http.port });
  lifecycle.onStopAccepting({ name: 'https', stop: () => http.close() });
  const address = http.server.address();
  const httpUrl = `https://${config.http.host}:${typeof address === 'object' && address ? address.port : config.http.port}`;

  const handlers: ServiceHandlers<typeof raV1.RaService> = {
    ...raServiceHandlers(registry.reads, clock),
    ...counterOperationHandlers({ ra, principals: registry, reads: registry.reads, fingerprint: (data) => vault.fingerprint(data), callerName: 'card-mgmt' }),
  };
  const grpc = new GrpcServer(
    { host: config.grpc.host, port: config.grpc.port, tls: config.tls, logger, registry: runtime.registry, readiness: runtime.readiness },
    [{ service: raV1.RaService, handlers, allow: config.allow }],
  );
  const { address: grpcAddress } = await grpc.listen();
  lifecycle.onStopAccepting({ name: 'grpc', stop: () => grpc.stop() });

  if (deps.backgroundJobs !== false) startBackgroundJobs(config, runtime, registry, ra);
  const opsUrl = await runtime.startOps();
  logger.info({ httpUrl, grpcAddress, opsUrl }, 'ra started');
  return { runtime, ra, registry, validator, httpUrl, grpcAddress, opsUrl };
}

/**
 * Reconciliation against ca-signer, expiry of approval requests and re-sealing of personal data
 * under the active keys. One replica at a time runs each (advisory locks); a failed pass is
 * logged and tried again at the next interval.
 */
function startBackgroundJobs(config: RaConfig, runtime: ServiceRuntime, registry: PostgresRegistry, ra: RegistrationAuthority): void {
  const { logger, lifecycle } = runtime;
  const repairs = new Counter({ name: 'ra_reconciliation_repairs_total', help: 'Certificates adopted or revoked, and applications finished, by reconciliation', labelNames: ['kind'], registers: [runtime.registry] });
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  const pass = async () => {
    try {
      const report = await registry.exclusively('reconciliation', () => ra.reconciliation.run());
      if (report) {
        repairs.inc({ kind: 'adopted' }, report.adopted);
        repairs.inc({ kind: 'revoked' }, report.revoked);
        repairs.inc({ kind: 'resumed' }, report.resumed);
      }
      await registry.exclusively('approval-expiry', () => ra.approvals.expireOverdue());
      await registry.exclusively('reseal', () => registry.resealBatch(config.personalData.resealBatch));
      await ra.agencies.purgeExpiredNonces();
    } catch (err) {
      logger.warn({ err }, 'background pass failed; trying again at the next interval');
    }
  };
  const schedule = (delayMs: number) => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = pass().finally(() => schedule(config.reconciliation.intervalSeconds * 1000));
    }, delayMs);
  };
  let timer: NodeJS.Timeout | undefined;
  schedule(1000);
  lifecycle.onDrain({
    name: 'background jobs',
    stop: async () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  });
}

function instrumentHttp(http: ReturnType<typeof buildHttpApp>, runtime: ServiceRuntime): void {
  const registers = [runtime.registry];
  const requests = new Counter({ name: 'http_requests_total', help: 'REST requests by route and status', labelNames: ['method', 'route', 'status'], registers });
  const latency = new Histogram({ name: 'http_request_duration_seconds', help: 'REST request latency by route', labelNames: ['method', 'route'], registers, buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] });
  http.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unknown';
    requests.inc({ method: request.method, route, status: String(reply.statusCode) });
    latency.observe({ method: request.method, route }, reply.elapsedTime / 1000);
  });
}
