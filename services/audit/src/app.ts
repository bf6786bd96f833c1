import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Counter, Gauge } from 'prom-client';
import { ServiceRuntime, systemClock, type Clock, type Logger } from '@pki/kit';
import { ClientCertificateAuthenticator, clientCertificateTlsOptions } from '@pki/client-auth';
import { connectServiceDatabase, createEventTransport, createKafkaClient, databaseUrl, ensureKafkaTopics, startOutboxRelay } from '@pki/outbox';
import { Topics } from '@pki/proto';
import type { AuditConfig } from './config';
import { createRecordPool, PostgresAuditLog, type StoredCheckpoint } from './adapters/postgres/audit-log';
import { KafkaAuditSource } from './adapters/kafka/source';
import { BusAuditSource } from './adapters/bus/source';
import { GrpcCheckpointSigner } from './adapters/grpc/checkpoint-signer';
import { Checkpointer, type CheckpointSigner } from './domain/checkpointer';
import { certificatesFromPem } from './domain/checkpoint';
import type { AuditEventSource } from './domain/source';
import type { IncomingEvent } from './domain/ingest';
import { buildHttpApp } from './http/app';

export const MIGRATIONS_DIRECTORY = path.join(__dirname, '..', 'migrations');

export interface AuditDependencies {
  clock?: Clock;
  logger?: Logger;
  /** Replaces the gRPC client of ca-signer (unit tests only). */
  signer?: CheckpointSigner;
}

export interface RunningAudit {
  runtime: ServiceRuntime;
  log: PostgresAuditLog;
  checkpointer: Checkpointer;
  httpUrl: string;
  opsUrl: string;
}

/** Builds audit from a validated config and starts it; main.ts only loads the config and calls this. */
export async function startAudit(config: AuditConfig, deps: AuditDependencies = {}): Promise<RunningAudit> {
  const runtime = new ServiceRuntime('audit', config, deps.logger);
  const { logger, lifecycle, registry } = runtime;
  const clock = deps.clock ?? systemClock;
  const ownerPool = await connectServiceDatabase(runtime, config.database, MIGRATIONS_DIRECTORY);
  // Everything the service records goes through a pool that cannot UPDATE or DELETE the records.
  const recordPool = createRecordPool({ url: databaseUrl(config.database), schema: config.database.schema, maxConnections: config.database.maxConnections, statementTimeoutMs: config.database.statementTimeoutMs });
  lifecycle.onClose({ name: 'record pool', stop: () => recordPool.end() });
  const log = new PostgresAuditLog(recordPool, { producer: config.events.producer, checkpointProducer: config.events.checkpointProducer, identity: config.auditLog.identity, clock });
  await startOutboxRelay(runtime, ownerPool, config.database, { ...config.events, extraProducers: [config.events.checkpointProducer] });

  const metrics = auditMetrics(registry);
  const trustAnchors = config.checkpoints.trustAnchorFiles.flatMap((f) => certificatesFromPem(readFileSync(f, 'utf8')));
  const signer = deps.signer ?? new GrpcCheckpointSigner({ address: config.caSigner.address, serverIdentity: config.caSigner.serverIdentity, tls: config.tls, deadlineMs: config.caSigner.deadlineMs });
  if (signer instanceof GrpcCheckpointSigner) lifecycle.onClose({ name: 'ca-signer client', stop: async () => signer.close() });
  let lastCheckpoint: StoredCheckpoint | undefined = await log.latestCheckpoint();
  const checkpointer = new Checkpointer({
    log,
    signer,
    origin: config.auditLog.origin,
    trustAnchors,
    logger,
    onSigned: (c) => (lastCheckpoint = c),
    onInconsistent: () => metrics.breaks.inc({ kind: 'checkpoint-inconsistent' }),
  });
  new Gauge({
    name: 'audit_checkpoint_age_seconds',
    help: 'Seconds since the last signed checkpoint (-1: none yet)',
    registers: [registry],
    collect() {
      this.set(lastCheckpoint ? (clock.now().getTime() - lastCheckpoint.signedAt.getTime()) / 1000 : -1);
    },
  });

  const source = await openSource(config, logger);
  new Gauge({
    name: 'audit_consumer_lag_messages',
    help: 'Messages in the audit topic not yet consumed (Kafka; 0 on the PostgreSQL bus)',
    registers: [registry],
    collect() {
      this.set(source.lag() ?? 0);
    },
  });
  const record = async (batch: IncomingEvent[]) => {
    const result = await log.append(batch);
    const now = clock.now().getTime();
    for (const [producer, n] of result.recorded) metrics.recorded.inc({ producer }, n);
    for (const [producer, head] of result.heads) metrics.producerLag.set({ producer }, Math.max(0, now - head.committedAt.getTime()) / 1000);
    for (const b of result.breaks) {
      metrics.breaks.inc({ kind: b.kind });
      logger.error({ kind: b.kind, producer: b.producer, expectedSeq: b.expectedSeq, receivedSeq: b.receivedSeq, leaf: b.index }, `audit log break: ${b.detail}`);
    }
    if (result.duplicates > 0) metrics.duplicates.inc(result.duplicates);
    metrics.treeSize.set(result.treeSize);
  };
  metrics.treeSize.set((await log.treeHead()).size);
  await source.start(record);
  lifecycle.onDrain({ name: 'audit consumer', stop: () => source.stop() });
  checkpointer.start(config.checkpoints.intervalMs);
  lifecycle.onDrain({ name: 'checkpointer', stop: () => checkpointer.stop() });

  const authenticator = new ClientCertificateAuthenticator({ lookup: (sha256) => log.auditorByCertificate(sha256), clock });
  const http = buildHttpApp({ log, checkpointer, authenticator, origin: config.auditLog.origin, clock, logger, maxPageSize: config.http.maxPageSize, https: clientCertificateTlsOptions(config.http) });
  await http.listen({ host: config.http.host, port: config.http.port });
  lifecycle.onStopAccepting({ name: 'http', stop: () => http.close() });
  const address = http.server.address();
  const httpUrl = `https://${config.http.host}:${typeof address === 'object' && address ? address.port : config.http.port}`;
  const opsUrl = await runtime.startOps();
  logger.info({ httpUrl, opsUrl, origin: config.auditLog.origin }, 'audit started');
  return { runtime, log, checkpointer, httpUrl, opsUrl };
}

async function openSource(config: AuditConfig, logger: Logger): Promise<AuditEventSource> {
  const transport = config.events.transport;
  if (transport.type === 'kafka') {
    const kafka = createKafkaClient({ type: 'kafka', brokers: transport.brokers, clientId: transport.clientId }, logger);
    await ensureKafkaTopics(kafka, [Topics.audit, Topics.auditCheckpoints]);
    return new KafkaAuditSource(kafka, { topic: Topics.audit, group: config.events.group, maxBatch: config.auditLog.maxBatch, sessionTimeoutMs: config.events.sessionTimeoutMs, logger });
  }
  const bus = await createEventTransport({ type: 'postgres', url: databaseUrl(config.database), pollIntervalMs: config.events.pollIntervalMs, batchSize: config.auditLog.maxBatch }, { logger });
  return new BusAuditSource(bus.subscriber, { topic: Topics.audit, group: config.events.group });
}

function auditMetrics(registry: ServiceRuntime['registry']) {
  const registers = [registry];
  return {
    recorded: new Counter({ name: 'audit_events_recorded_total', help: 'Audit events recorded in the log, per producer (rate() gives events per second)', labelNames: ['producer'] as const, registers }),
    breaks: new Counter({ name: 'audit_breaks_total', help: 'Breaks the log recorded and alerted on (sequence gaps, conflicts, reordering, undecodable events, inconsistent checkpoints)', labelNames: ['kind'] as const, registers }),
    duplicates: new Counter({ name: 'audit_redeliveries_total', help: 'Redelivered events recognised as recorded and skipped', registers }),
    treeSize: new Gauge({ name: 'audit_tree_size', help: 'Leaves in the Merkle tree', registers }),
    producerLag: new Gauge({ name: 'audit_producer_lag_seconds', help: 'Per producer: from its commit to the recording of its last event', labelNames: ['producer'] as const, registers }),
  };
}
