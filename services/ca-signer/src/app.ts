import path from 'node:path';
import { PkiError, ServiceRuntime, systemClock, type Clock, type Logger } from '@pki/kit';
import { GrpcServer } from '@pki/grpc';
import { caSignerV1 } from '@pki/proto';
import { connectServiceDatabase, startOutboxRelay } from '@pki/outbox';
import type { CaSignerConfig } from './config';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { Pkcs11KeyManager } from './adapters/pkcs11';
import { ResilientKeyManager, type HsmMetrics } from './adapters/resilient';
import type { KeyManager } from './ports/key-manager';
import { CertificateAuthority } from './domain/certificate-authority';
import { IssuerRegistry } from './domain/issuer-registry';
import { CrlSigner } from './domain/crl-signing';
import { recordMissingCrlPublication } from './domain/crl-publication';
import { OcspSigner } from './domain/ocsp-signing';
import { AuditCheckpointSigner } from './domain/audit-checkpoint';
import { ValidationReceiptSigner } from './domain/validation-receipt';
import { AuditConfirmationGate } from './domain/audit-gate';
import { caSignerHandlers, type CaSignerDomain } from './grpc/ca-signer-service';

export const MIGRATIONS_DIRECTORY = path.join(__dirname, '..', 'migrations');
/** How often the signer re-reads its generations and delegated signers from its database. */
export const REGISTRY_RELOAD_MS = 60_000;

export interface CaSignerDependencies {
  clock?: Clock;
  logger?: Logger;
  /** Replaces the PKCS#11 key manager (unit tests only). */
  keyManager?: KeyManager;
}

export interface RunningCaSigner {
  runtime: ServiceRuntime;
  domain: CaSignerDomain;
  grpcAddress: string;
  opsUrl: string;
}

/**
 * Opens the HSM named by the config behind the circuit breaker: device and session failures fail
 * fast with UNAVAILABLE while the module is re-initialised in the background, and signing resumes
 * by itself. The only place in the service that loads a PKCS#11 module.
 */
export async function openKeyManager(config: CaSignerConfig, logger: Logger, metricsRegistry?: Registry): Promise<KeyManager> {
  // SoftHSM reads its config location from the environment when the module initialises.
  if (config.hsm.softhsmConfigFile) process.env.SOFTHSM2_CONF = config.hsm.softhsmConfigFile;
  const hsm = { modulePath: config.hsm.modulePath, tokenLabel: config.hsm.tokenLabel, pin: config.hsm.pinFile.reveal(), sessionPoolSize: config.hsm.sessionPoolSize };
  return ResilientKeyManager.open({
    open: () => Pkcs11KeyManager.open(hsm, { logger }),
    probeIntervalMs: config.hsm.probeIntervalMs,
    operationTimeoutMs: config.hsm.operationTimeoutMs,
    recovery: config.hsm.recovery,
    logger,
    metrics: metricsRegistry && hsmMetrics(metricsRegistry),
  });
}

/**
 * The audit gate as operators see it: whether issuance is refused for want of the audit log's
 * confirmation, and how long the oldest unconfirmed event has waited (an alert can fire before
 * the bound is reached). Read from the database at each scrape; when it cannot be read the
 * series are absent rather than stale.
 */
function auditGateMetrics(registry: Registry, gate: AuditConfirmationGate, logger: Logger): void {
  const read = () =>
    gate.state().catch((err: unknown) => {
      logger.warn({ err }, 'could not read the audit gate for /metrics');
      return undefined;
    });
  new Gauge({ name: 'audit_gate_open', help: 'Issuance audit gate: 1 open, 0 closed (the audit log has not confirmed this signer\'s events within the bound)', registers: [registry], async collect() {
    const state = await read();
    this.reset();
    if (state) this.set(state.open ? 1 : 0);
  } });
  new Gauge({ name: 'audit_unconfirmed_age_seconds', help: 'Age of the oldest audit event of this signer that the audit log has not confirmed (0 when none)', registers: [registry], async collect() {
    const state = await read();
    this.reset();
    if (state) this.set(state.oldestUnconfirmedAgeMs / 1000);
  } });
}

function hsmMetrics(registry: Registry): HsmMetrics {
  return {
    circuitState: new Gauge({ name: 'hsm_circuit_state', help: 'HSM circuit breaker: 0 closed, 1 half-open (re-initialising), 2 open', registers: [registry] }),
    operations: new Counter({ name: 'hsm_operations_total', help: 'HSM operations by outcome (ok, rejected, unavailable, circuit_open, error)', labelNames: ['operation', 'outcome'] as const, registers: [registry] }),
    operationSeconds: new Histogram({
      name: 'hsm_operation_seconds',
      help: 'Duration of HSM operations that reached the HSM',
      labelNames: ['operation'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
  };
}

/** Builds ca-signer from a validated config and starts serving; main.ts only loads the config. */
export async function startCaSigner(config: CaSignerConfig, deps: CaSignerDependencies = {}): Promise<RunningCaSigner> {
  const runtime = new ServiceRuntime('ca-signer', config, deps.logger);
  const { logger, lifecycle } = runtime;
  const pool = await connectServiceDatabase(runtime, config.database, MIGRATIONS_DIRECTORY);
  const keyManager = deps.keyManager ?? (await openKeyManager(config, logger, runtime.registry));
  lifecycle.onClose({ name: 'hsm', stop: () => keyManager.close() });
  runtime.addReadinessCheck({
    name: 'hsm',
    check: async () => {
      const health = await keyManager.healthCheck();
      if (!health.healthy) throw new PkiError('UNAVAILABLE', `hsm: ${health.detail}`);
    },
  });

  await startOutboxRelay(runtime, pool, config.database, config.events);
  const clock = deps.clock ?? systemClock;
  const producer = config.events.producer;
  await recordMissingCrlPublication(pool, config.publication, logger);
  const auditGate = config.auditConfirmation.required
    ? new AuditConfirmationGate({ pool, producer, maxUnconfirmedMs: config.auditConfirmation.maxUnconfirmedSeconds * 1000 })
    : undefined;
  if (!auditGate) logger.warn('auditConfirmation.required is false: issuance does not stop when the audit log falls behind');
  else auditGateMetrics(runtime.registry, auditGate, logger);
  const registry = new IssuerRegistry(pool);
  await registry.load();
  // A key ceremony on the running system (a renewed OCSP responder, a new generation) takes
  // effect without a restart: the next signatures use what the ceremony recorded.
  const reload = setInterval(() => void registry.load().catch((err: unknown) => logger.warn({ err }, 'reloading the CA generations and delegated signers failed')), REGISTRY_RELOAD_MS);
  lifecycle.onDrain({ name: 'issuer registry reload', stop: async () => clearInterval(reload) });
  const domain: CaSignerDomain = {
    pool,
    registry,
    authority: new CertificateAuthority({ pool, registry, keyManager, clock, logger, producer, publication: config.publication, auditGate }),
    crls: new CrlSigner({ pool, registry, keyManager, clock, logger, producer }),
    ocsp: new OcspSigner({ pool, registry, keyManager, clock, logger, producer }),
    checkpoints: new AuditCheckpointSigner({ pool, registry, keyManager, clock, logger, producer }),
    receipts: new ValidationReceiptSigner({ pool, registry, keyManager, clock, logger, producer }),
  };
  const issuers = registry.all();
  if (!issuers.some((i) => i.role === 'ISSUING' && i.active)) {
    logger.warn('no active issuing CA generation: IssueCertificate refuses until a key ceremony records one');
  }

  const server = new GrpcServer(
    { host: config.grpc.host, port: config.grpc.port, tls: config.grpc.tls, logger, registry: runtime.registry, readiness: runtime.readiness },
    [{ service: caSignerV1.CaSignerService, handlers: caSignerHandlers(domain), allow: config.allow }],
  );
  const { address } = await server.listen();
  lifecycle.onStopAccepting({ name: 'grpc', stop: () => server.stop() });
  const opsUrl = await runtime.startOps();
  logger.info({ grpcAddress: address, opsUrl, hsmSessions: config.hsm.sessionPoolSize, hsmWorkerThreads: Number(process.env.UV_THREADPOOL_SIZE ?? 4), issuers: issuers.map((i) => ({ keyId: i.keyId, role: i.role, active: i.active })) }, 'ca-signer started');
  return { runtime, domain, grpcAddress: address, opsUrl };
}
