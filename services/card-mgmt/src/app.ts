import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PkiError, ServiceRuntime, systemClock, type Clock, type Logger } from '@pki/kit';
import { createGrpcClient } from '@pki/grpc';
import { eventsV1, raV1, Topics } from '@pki/proto';
import { connectServiceDatabase, inboxMigration, startOutboxRelay } from '@pki/outbox';
import { fromBinary } from '@bufbuild/protobuf';
import type { CardMgmtConfig } from './config';
import { PostgresCardStore } from './adapters/postgres/card-store';
import { GrpcRegistrationAuthority } from './adapters/grpc/ra-client';
import { CardStock } from './domain/card-stock';
import { Counter } from './domain/counter';
import { Reconciliation } from './domain/reconciliation';
import { MobileCredentials } from './domain/mobile';
import { StatusFollower } from './domain/status-follower';
import { buildHttpApp } from './http/app';
import type { RegistrationAuthority } from './ports/registration-authority';

export const MIGRATIONS_DIRECTORY = path.join(__dirname, '..', 'migrations');
/** Migrations from packages applied before this service's own files (its migrate.js applies the same). */
export const SHARED_MIGRATIONS = [inboxMigration(2)];

export interface CardMgmtDependencies {
  clock?: Clock;
  logger?: Logger;
  /** Wraps the gRPC client of ra (tests that make ra fail at a chosen point). */
  wrapRa?: (ra: RegistrationAuthority) => RegistrationAuthority;
}

export interface RunningCardMgmt {
  runtime: ServiceRuntime;
  store: PostgresCardStore;
  httpUrl: string;
  opsUrl: string;
}

/** A 32-byte key from a secret file (base64 or hex). */
export function decodeKey(text: string, name: string): Buffer {
  const trimmed = text.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(trimmed) ? Buffer.from(trimmed, 'hex') : Buffer.from(trimmed, 'base64');
  if (key.length !== 32) throw new PkiError('INVALID_ARGUMENT', `card-mgmt: ${name} must hold 32 random bytes as base64 or hex`);
  return key;
}

/** Builds card-mgmt from a validated config and starts its listeners; main.ts only loads the config. */
export async function startCardMgmt(config: CardMgmtConfig, deps: CardMgmtDependencies = {}): Promise<RunningCardMgmt> {
  const runtime = new ServiceRuntime('card-mgmt', config, deps.logger);
  try {
    return await start(config, deps, runtime);
  } catch (err) {
    await runtime.stop().catch(() => undefined);
    throw err;
  }
}

async function start(config: CardMgmtConfig, deps: CardMgmtDependencies, runtime: ServiceRuntime): Promise<RunningCardMgmt> {
  const { logger, lifecycle } = runtime;
  const clock = deps.clock ?? systemClock;
  const adminSecretKey = decodeKey(config.adminSecretKeyFile.reveal(), 'adminSecretKeyFile');
  const transportKey = decodeKey(config.transportKeyFile.reveal(), 'transportKeyFile');
  const fingerprintKey = decodeKey(config.fingerprintKeyFile.reveal(), 'fingerprintKeyFile');
  const pool = await connectServiceDatabase(runtime, config.database, MIGRATIONS_DIRECTORY, SHARED_MIGRATIONS);
  const client = createGrpcClient(raV1.RaService, { ...config.ra, tls: config.tls });
  lifecycle.onClose({ name: 'ra client', stop: async () => client.close() });
  const grpcRa = new GrpcRegistrationAuthority(client, config.ra.deadlineMs);
  const ra = deps.wrapRa ? deps.wrapRa(grpcRa) : grpcRa;
  const store = new PostgresCardStore({ pool, clock, auditProducer: config.events.auditProducer });

  const { transport } = await startOutboxRelay(runtime, pool, config.database, { transport: config.events.transport, producer: config.events.auditProducer, pollIntervalMs: config.events.pollIntervalMs });
  await transport.ensureTopics([Topics.audit, Topics.certificateStatus]).catch((err: unknown) => logger.warn({ err }, 'could not check or create the event topics; delivery retries until they exist'));
  // What ra does to a card's certificates elsewhere (revocation, household events, self-service)
  // moves the physical card and the devices too (decision 0023).
  const follower = new StatusFollower(store, clock, logger);
  // RFC 5280 §5.3.1 names, as ra records them.
  const REASON: Record<number, string> = {
    [eventsV1.RevocationReason.KEY_COMPROMISE]: 'keyCompromise',
    [eventsV1.RevocationReason.CA_COMPROMISE]: 'cACompromise',
    [eventsV1.RevocationReason.AFFILIATION_CHANGED]: 'affiliationChanged',
    [eventsV1.RevocationReason.SUPERSEDED]: 'superseded',
    [eventsV1.RevocationReason.CESSATION_OF_OPERATION]: 'cessationOfOperation',
    [eventsV1.RevocationReason.CERTIFICATE_HOLD]: 'certificateHold',
    [eventsV1.RevocationReason.REMOVE_FROM_CRL]: 'removeFromCRL',
    [eventsV1.RevocationReason.PRIVILEGE_WITHDRAWN]: 'privilegeWithdrawn',
  };
  const STATUS = { [eventsV1.CertificateStatus.VALID]: 'VALID', [eventsV1.CertificateStatus.SUSPENDED]: 'SUSPENDED', [eventsV1.CertificateStatus.REVOKED]: 'REVOKED' } as Record<number, 'VALID' | 'SUSPENDED' | 'REVOKED'>;
  await transport.subscriber.subscribe({
    topic: Topics.certificateStatus,
    group: config.events.group,
    handler: async (event) => {
      const change = fromBinary(eventsV1.CertificateStatusChangedSchema, event.payload);
      const status = STATUS[change.status];
      if (!status) return;
      const previous = STATUS[change.previousStatus];
      const reason = REASON[change.reason];
      await follower.apply({ producer: event.producer, seq: event.seq, serialHex: change.serialHex, status, ...(previous ? { previousStatus: previous } : {}), ...(reason ? { reason } : {}) });
    },
  });

  const http = buildHttpApp({
    stock: new CardStock({ store, clock, cardCentre: config.cardCentreOffice }),
    counter: new Counter({ store, ra, clock, logger, adminSecretKey, transportKey }),
    reconciliation: new Reconciliation(store, config.reportUtcOffsetMinutes),
    mobile: new MobileCredentials({ store, ra, clock, logger }),
    officers: { resolveOfficer: (sha256) => ra.resolveOfficer(sha256) },
    logger,
    fingerprintKey,
    https: { cert: readFileSync(config.http.certFile), key: readFileSync(config.http.keyFile), ca: config.http.clientCaFiles.map((f) => readFileSync(f)) },
    bodyLimitBytes: config.http.bodyLimitBytes,
    rateLimits: config.http.rateLimits,
  });
  await http.listen({ host: config.http.host, port: config.http.port });
  lifecycle.onStopAccepting({ name: 'https', stop: () => http.close() });
  const address = http.server.address();
  const httpUrl = `https://${config.http.host}:${typeof address === 'object' && address ? address.port : config.http.port}`;
  const opsUrl = await runtime.startOps();
  logger.info({ httpUrl, opsUrl }, 'card-mgmt started');
  return { runtime, store, httpUrl, opsUrl };
}
