import path from 'node:path';
import { Client } from 'pg';
import { fromBinary } from '@bufbuild/protobuf';
import { Counter, Gauge, Histogram } from 'prom-client';
import { PkiError, ServiceRuntime, systemClock, type Clock, type Logger } from '@pki/kit';
import { createGrpcClient } from '@pki/grpc';
import { caSignerV1, eventsV1, Topics } from '@pki/proto';
import { connectServiceDatabase, databaseUrl, inboxMigration, skipRedeliveries, startOutboxRelay } from '@pki/outbox';
import type { CrlConfig } from './config';
import { PostgresCrlStore } from './adapters/postgres/crl-store';
import { GrpcCrlSigningClient } from './adapters/grpc/ca-signer-client';
import { CrlGenerator } from './domain/crl-generator';
import { CrlScheduler } from './domain/crl-scheduler';
import { revocationChangeOf } from './domain/status-change';
import { buildPublicationApp } from './http/publication';
import { buildAdminApp } from './http/admin';
import type { CrlSigningClient } from './ports/crl-signer';

export const MIGRATIONS_DIRECTORY = path.join(__dirname, '..', 'migrations');
/** Migrations from packages applied before this service's own files (its migrate.js applies the same). */
export const SHARED_MIGRATIONS = [inboxMigration(2)];
const CHANGES_CHANNEL = 'pki_crl_changes';

export interface CrlDependencies {
  clock?: Clock;
  logger?: Logger;
  /** Replaces the gRPC client of ca-signer (unit tests only). */
  signer?: CrlSigningClient;
  /** The name this pod holds the generator lease under (default a random id). */
  holder?: string;
}

export interface Running {
  runtime: ServiceRuntime;
  opsUrl: string;
  httpUrl: string;
  adminUrl: string;
  store: PostgresCrlStore;
  scheduler: CrlScheduler;
  generator: CrlGenerator;
}

/** Builds and starts crl from a validated config; main.ts only loads the config and calls this. */
export async function startCrl(config: CrlConfig, depsOrLogger: CrlDependencies | Logger = {}): Promise<Running> {
  const deps: CrlDependencies = 'info' in depsOrLogger ? { logger: depsOrLogger } : depsOrLogger;
  const runtime = new ServiceRuntime('crl', config, deps.logger);
  const { logger, lifecycle } = runtime;
  const clock = deps.clock ?? systemClock;
  const pool = await connectServiceDatabase(runtime, config.database, MIGRATIONS_DIRECTORY, SHARED_MIGRATIONS);
  const { transport } = await startOutboxRelay(runtime, pool, config.database, config.events);
  const audit = { producer: config.events.producer, clock };
  const store = new PostgresCrlStore(pool, audit, 'spiffe://pki.internal/crl', config.schedule.leaseSeconds);

  let signer = deps.signer;
  if (!signer) {
    const client = createGrpcClient(caSignerV1.CaSignerService, { ...config.caSigner, tls: config.tls });
    lifecycle.onClose({ name: 'ca-signer client', stop: async () => client.close() });
    signer = new GrpcCrlSigningClient(client);
  }

  const metrics = crlMetrics(runtime, store, config, clock);
  const generator = new CrlGenerator({ store, signer, schedule: config.schedule, clock, logger, metrics });
  const changeOf = (payload: Uint8Array) => revocationChangeOf(fromBinary(eventsV1.CertificateStatusChangedSchema, payload));
  const scheduler = new CrlScheduler({
    store,
    signer,
    generator,
    schedule: config.schedule,
    clock,
    logger,
    ...(deps.holder ? { holder: deps.holder } : {}),
    afterIssuerRefresh: async () => {
      const applied = await store.applyParkedEvents(changeOf);
      if (applied > 0) logger.info({ applied }, 'applied status events parked for generations now known');
    },
  });
  new Gauge({ name: 'crl_generator_lease_held', help: '1 when this pod holds the generator lease', registers: [runtime.registry], collect() {
    this.set(scheduler.leaseHeld ? 1 : 0);
  } });

  // Status changes committed by any pod wake this pod's generator (the lease holder acts on them).
  const listener = new Client({ connectionString: databaseUrl(config.database) });
  listener.on('error', (err) => logger.warn({ err }, 'CRL change listener failed; the schedule still runs'));
  await listener.connect();
  await listener.query(`LISTEN ${CHANGES_CHANNEL}`);
  listener.on('notification', () => scheduler.wake());
  lifecycle.onClose({ name: 'change listener', stop: () => listener.end() });

  // Status events from ra: each applied once, in the same transaction as its effect.
  const events = new Counter({ name: 'crl_status_events_total', help: 'Certificate status events by outcome', labelNames: ['outcome'] as const, registers: [runtime.registry] });
  let partitions = new Map((await store.issuers()).map((i) => [i.keyId, i.crlPartitions ?? undefined]));
  // Unknown generations make the consumer ask ca-signer again, at most this often.
  let lastUnknownRefresh = 0;
  await transport.subscriber.subscribe({
    topic: Topics.certificateStatus,
    group: config.events.group,
    handler: skipRedeliveries(async (event) => {
      const change = changeOf(event.payload);
      if (change.kind === 'rejected') {
        // Retrying would fail the same way; it is logged, counted and alerted on instead.
        logger.error({ producer: event.producer, seq: event.seq, key: event.key, why: change.why }, 'status event cannot be put on a CRL; skipped');
        events.inc({ outcome: 'rejected' });
      }
      if ((change.kind === 'listed' || change.kind === 'unlisted') && !partitions.has(change.issuerKeyId)) {
        // A generation created since the last refresh: look again, and if ca-signer does not know
        // it either, keep the event until it does (the stream must not stall on it).
        if (Date.now() - lastUnknownRefresh > 10_000) {
          lastUnknownRefresh = Date.now();
          await scheduler.refreshIssuers().catch((err: unknown) => logger.warn({ err }, 'could not read the CA generations from ca-signer'));
        }
        partitions = new Map((await store.issuers()).map((i) => [i.keyId, i.crlPartitions ?? undefined]));
        if (!partitions.has(change.issuerKeyId)) {
          logger.warn({ producer: event.producer, seq: event.seq, issuerKeyId: change.issuerKeyId }, 'status event of an unknown CA generation parked until ca-signer reports it');
          events.inc({ outcome: await store.parkStatusEvent(event, change.issuerKeyId) });
          return;
        }
      }
      const issuer = change.kind === 'listed' || change.kind === 'unlisted' ? change.issuerKeyId : undefined;
      const outcome = await store.applyStatusChange(event, change, issuer ? partitions.get(issuer) : undefined);
      events.inc({ outcome: change.kind === 'rejected' ? 'rejected_recorded' : outcome });
    }),
  });
  await transport.ensureTopics([Topics.certificateStatus]);

  const publication = buildPublicationApp({ store, clock, logger, http: config.http });
  await publication.listen({ host: config.http.host, port: config.http.port });
  lifecycle.onStopAccepting({ name: 'http', stop: () => publication.close() });
  const admin = buildAdminApp({
    pool,
    audit,
    logger,
    admin: config.admin,
    waitMs: 30_000,
    wake: async () => {
      await pool.query(`SELECT pg_notify('${CHANGES_CHANNEL}', 'regenerate')`);
    },
  });
  await admin.listen({ host: config.admin.host, port: config.admin.port });
  lifecycle.onStopAccepting({ name: 'admin', stop: () => admin.close() });

  scheduler.start();
  lifecycle.onDrain({ name: 'CRL generator', stop: () => scheduler.stop() });

  runtime.addHealthCheck({ name: 'crl-freshness', check: () => assertFresh(store, config, clock) });
  const url = (server: typeof publication, scheme: string, host: string) => {
    const address = server.server.address();
    return `${scheme}://${host}:${typeof address === 'object' && address ? address.port : 0}`;
  };
  const opsUrl = await runtime.startOps();
  const httpUrl = url(publication, 'http', config.http.host);
  const adminUrl = url(admin, 'https', config.admin.host);
  logger.info({ httpUrl, adminUrl, opsUrl, holder: scheduler.holder }, 'crl started');
  return { runtime, opsUrl, httpUrl, adminUrl, store, scheduler, generator };
}

/** Fails when a generation's latest CRL of some kind is older than its schedule allows, or missing. */
async function assertFresh(store: PostgresCrlStore, config: CrlConfig, clock: Clock): Promise<void> {
  const now = clock.now();
  const s = config.schedule;
  // A CRL is late once its successor is overdue by more than a couple of ticks (generation time included).
  const slack = 3 * s.tickSeconds + 60;
  const latest = await store.latest();
  const problems: string[] = [];
  for (const issuer of (await store.issuers()).filter((i) => i.role === 'ISSUING' && i.notAfter > now)) {
    const mine = latest.filter((c) => c.issuerKeyId === issuer.keyId);
    const check = (kind: string, scope: string, interval: number) => {
      const crl = mine.find((c) => c.kind === kind && c.scope === scope);
      if (!crl) problems.push(`${issuer.keyId} ${scope} ${kind.toLowerCase()}: none published`);
      else if ((now.getTime() - crl.thisUpdate.getTime()) / 1000 > interval + slack) problems.push(`${issuer.keyId} ${scope} ${kind.toLowerCase()}: published ${crl.thisUpdate.toISOString()}, due every ${interval} s`);
    };
    check('FULL', 'full', s.fullIntervalSeconds);
    check('DELTA', 'full', s.deltaIntervalSeconds);
    for (let p = 0; p < (issuer.crlPartitions ?? 0); p++) check('PARTITION', `p${p}`, s.partitionIntervalSeconds);
  }
  for (const arl of latest.filter((c) => c.kind === 'ARL')) if (arl.nextUpdate <= now) problems.push(`${arl.issuerKeyId} ARL: past its nextUpdate ${arl.nextUpdate.toISOString()} (sign a new one at a key ceremony)`);
  if (problems.length > 0) throw new PkiError('UNAVAILABLE', `stale CRLs: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? `; and ${problems.length - 5} more` : ''}`);
}

/** Size, entries, age and generation time of each generation's CRLs (partitions summed or at their oldest). */
function crlMetrics(runtime: ServiceRuntime, store: PostgresCrlStore, config: CrlConfig, clock: Clock) {
  const registers = [runtime.registry];
  const labelNames = ['issuer', 'kind'] as const;
  const latest = () => store.latest();
  const group = async () => {
    const byKey = new Map<string, { issuer: string; kind: string; size: number; entries: number; oldest: Date; nextUpdate: Date }>();
    for (const c of await latest()) {
      const key = `${c.issuerKeyId}/${c.kind}`;
      const g = byKey.get(key);
      if (!g) byKey.set(key, { issuer: c.issuerKeyId, kind: c.kind.toLowerCase(), size: c.size, entries: c.entries, oldest: c.thisUpdate, nextUpdate: c.nextUpdate });
      else {
        g.size += c.size;
        g.entries += c.entries;
        if (c.thisUpdate < g.oldest) g.oldest = c.thisUpdate;
        if (c.nextUpdate < g.nextUpdate) g.nextUpdate = c.nextUpdate;
      }
    }
    return [...byKey.values()];
  };
  new Gauge({ name: 'crl_size_bytes', help: 'Size of the latest published CRL (partitions: all summed)', labelNames, registers, async collect() {
    this.reset();
    for (const g of await group()) this.set({ issuer: g.issuer, kind: g.kind }, g.size);
  } });
  new Gauge({ name: 'crl_entries', help: 'Entries of the latest published CRL (partitions: all summed)', labelNames, registers, async collect() {
    this.reset();
    for (const g of await group()) this.set({ issuer: g.issuer, kind: g.kind }, g.entries);
  } });
  new Gauge({ name: 'crl_age_seconds', help: 'Age of the latest published CRL (partitions: the oldest)', labelNames, registers, async collect() {
    this.reset();
    for (const g of await group()) this.set({ issuer: g.issuer, kind: g.kind }, (clock.now().getTime() - g.oldest.getTime()) / 1000);
  } });
  new Gauge({ name: 'crl_next_update_seconds', help: 'Time until the nextUpdate of the latest published CRL (partitions: the soonest)', labelNames, registers, async collect() {
    this.reset();
    for (const g of await group()) this.set({ issuer: g.issuer, kind: g.kind }, (g.nextUpdate.getTime() - clock.now().getTime()) / 1000);
  } });
  const duration = new Histogram({ name: 'crl_generation_seconds', help: 'Time to build, sign and publish one CRL', labelNames, registers, buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120] });
  const failures = new Counter({ name: 'crl_generation_failures_total', help: 'CRL generations that failed (retried at the next tick)', labelNames, registers });
  void config;
  return {
    generated: (issuer: string, kind: string, seconds: number) => duration.observe({ issuer, kind: kind.toLowerCase() }, seconds),
    failed: (issuer: string, kind: string) => failures.inc({ issuer, kind: kind.toLowerCase() }),
  };
}
