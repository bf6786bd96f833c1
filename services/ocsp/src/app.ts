import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Counter, Gauge, Histogram } from 'prom-client';
import { PkiError, ServiceRuntime, systemClock, type Clock, type Logger } from '@pki/kit';
import { checkDatabase, createPool, migrate, type Pool } from '@pki/db';
import { createEventTransport, createKafkaClient, databaseUrl, inboxMigration, outboxMigration, startOutboxRelay, type EventTransport } from '@pki/outbox';
import type { OcspConfig } from './config';
import { StatusStore } from './adapters/postgres/status-store';
import { GrpcOcspSigner } from './adapters/grpc/ca-signer-client';
import { UsageOutbox } from './adapters/postgres/usage-outbox';
import { UsageMeter } from './domain/usage-meter';
import type { OcspSigningPort } from './ports/ocsp-signing';
import { ChangeFollower } from './domain/change-follower';
import { DependencyHealth, type Dependency } from './domain/dependency-health';
import { IssuerDirectory } from './domain/issuer-directory';
import { LiveSigner } from './domain/live-signer';
import { RequestResolver } from './domain/request-resolver';
import { ResponseMemory } from './domain/response-memory';
import { ResponseUpdater } from './domain/response-updater';
import { statusEventHandler } from './domain/status-consumer';
import { ResponseStoreWriter } from './store/shared-response-store';
import { ServingPool } from './http/serving-pool';
import { ANSWERS, COUNTERS, createMetricsBuffer, ISSUER_ANSWERS, LATENCY_BUCKETS, MAX_ISSUERS, readMetrics } from './http/serving-metrics';

export const MIGRATIONS_DIRECTORY = path.join(__dirname, '..', 'migrations');
/** Migrations from packages applied before this service's own files (its migrate.js applies the same). */
export const SHARED_MIGRATIONS = [inboxMigration(2)];
/** The consumer name of the status events in inbox_position. */
export const STATUS_CONSUMER = 'ocsp.certificate-status';

export interface OcspDependencies {
  clock?: Clock;
  logger?: Logger;
  /** Replaces the gRPC client to ca-signer (unit tests of the wiring only). */
  signer?: OcspSigningPort;
}

export interface RunningOcsp {
  runtime: ServiceRuntime;
  /** Base URL of the responder, e.g. http://127.0.0.1:8080/ (with the path prefix). */
  url: string;
  /** Base URL of the HTTPS listener (optional client certificates), when configured. */
  httpsUrl?: string;
  /** The metering of this process (absent when `metering.enabled` is false). */
  usage?: UsageMeter;
  opsUrl: string;
  memory: ResponseMemory;
  health: DependencyHealth;
  /** Resolves once the whole store has been read into memory (the responder is ready). */
  loaded: Promise<void>;
}

/** Builds and starts ocsp from a validated config; main.ts only loads the config and calls this. */
export async function startOcsp(config: OcspConfig, deps: OcspDependencies = {}): Promise<RunningOcsp> {
  const runtime = new ServiceRuntime('ocsp', config, deps.logger);
  try {
    return await wire(config, runtime, deps.clock ?? systemClock, deps);
  } catch (err) {
    // Whatever started (threads, pools) is stopped before the error reaches the caller.
    await runtime.stop().catch(() => undefined);
    throw err;
  }
}

async function wire(config: OcspConfig, runtime: ServiceRuntime, clock: Clock, deps: OcspDependencies): Promise<RunningOcsp> {
  const { logger, lifecycle, registry } = runtime;
  const registers = [registry];
  const dependencyUp = new Gauge({ name: 'ocsp_dependency_up', help: 'Whether the responder reaches a dependency (it answers from memory when not)', labelNames: ['dependency'] as const, registers });
  const health = new DependencyHealth((dependency: Dependency, up: boolean, detail: string) => {
    dependencyUp.set({ dependency }, up ? 1 : 0);
    if (up) logger.info({ dependency }, `ocsp: ${dependency} is back`);
    else logger.warn({ dependency, detail }, `ocsp: ${dependency} is unavailable; answering from memory`);
  });

  // --- store -------------------------------------------------------------------------------------
  const pool: Pool = createPool({
    url: databaseUrl(config.database),
    schema: config.database.schema,
    maxConnections: config.database.maxConnections,
    statementTimeoutMs: config.database.statementTimeoutMs,
    applicationName: 'ocsp',
    connectionTimeoutMs: 2_000,
  });
  lifecycle.onClose({ name: 'database pool', stop: () => pool.end() });
  // Unlike most services, a broken database at runtime is not fatal: the pool must not crash us.
  pool.on('error', (err) => logger.warn({ err }, 'ocsp: idle database connection failed'));
  await migrate(pool, { schema: config.database.schema, directory: MIGRATIONS_DIRECTORY, migrations: [outboxMigration(1), ...SHARED_MIGRATIONS], logger });
  const store = new StatusStore(pool);
  health.up('database');

  const signer = deps.signer ?? new GrpcOcspSigner({ address: config.caSigner.address, serverIdentity: config.caSigner.serverIdentity, tls: config.tls, deadlineMs: config.caSigner.deadlineMs });
  lifecycle.onClose({ name: 'ca-signer client', stop: async () => signer.close() });

  // --- memory ------------------------------------------------------------------------------------
  const directory = new IssuerDirectory();
  const writer = ResponseStoreWriter.create({ maxCertificates: config.memory.maxCertificates, arenaBytes: config.memory.maxResponseBytes });
  const threads: { pool?: ServingPool } = {};
  let sentVersion = -1;
  const broadcast = () => {
    if (threads.pool && directory.version !== sentVersion) {
      sentVersion = directory.version;
      threads.pool.broadcast(directory.snapshot());
    }
  };
  const memory = new ResponseMemory(writer, directory, broadcast, logger);
  for (const issuer of await store.loadIssuers()) directory.setIssuer(issuer.keyId, issuer.certificateDer, issuer.responderCertificateDer);
  const refreshIssuers = async () => {
    const issuers = await signer.issuers();
    health.up('ca-signer');
    let changed = false;
    for (const i of issuers) changed = directory.setIssuer(i.keyId, i.certificateDer, i.responderCertificateDer) || changed;
    if (changed) {
      await store.saveIssuers(issuers);
      broadcast();
    }
  };
  await refreshIssuers().catch((err: unknown) => {
    health.down('ca-signer', (err as Error).message);
    logger.warn({ err }, 'ocsp: ca-signer unreachable at start; using the CA generations stored before');
  });

  const policy = { ...config.responses, neverIssued: config.policy.neverIssued };
  const signatures = new Counter({ name: 'ocsp_signatures_total', help: 'Responses signed through ca-signer, by cause', labelNames: ['cause'] as const, registers });
  const changeLatency = new Histogram({
    name: 'ocsp_status_change_to_served_seconds',
    help: 'From a status change committed in ra (changed_at) to its new response in this pod\'s memory',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers,
  });
  const updater = new ResponseUpdater({
    store,
    signer,
    directory,
    memory,
    health,
    settings: { ...config.responses },
    clock,
    logger,
    refreshIssuers,
    onSigned: (cause, count) => signatures.inc({ cause }, count),
    onServed: (state) => changeLatency.observe(Math.max(0, (clock.now().getTime() - state.changedAt.getTime()) / 1000)),
  });
  const liveBatches = new Counter({ name: 'ocsp_live_batches_total', help: 'SignLiveOcspResponses calls, by outcome', labelNames: ['outcome'] as const, registers });
  const liveSigned = new Counter({ name: 'ocsp_live_signatures_total', help: 'Live answers signed (nonce echoed, several CertIDs, never-issued revoked)', registers });
  const live = new LiveSigner(signer, config.live, health, logger, (size, outcome) => {
    liveBatches.inc({ outcome });
    if (outcome === 'signed') liveSigned.inc(size);
  });
  const resolver = new RequestResolver({ memory, directory, store, live, health, policy, clock, logger });
  const follower = new ChangeFollower({ store, memory, directory, health, policy, certIdHashes: config.responses.certIdHashes, pollIntervalMs: config.changePollIntervalMs, clock, logger, refreshIssuers });

  // --- usage metering (issue 13) -----------------------------------------------------------------
  const https = config.https ? { host: config.https.host, port: config.https.port, cert: config.https.certFile, key: config.https.keyFile.reveal() } : undefined;
  const usage = config.metering.enabled ? await startUsageMeter(config, runtime, pool, clock, () => threads.pool) : undefined;

  // --- serving threads ---------------------------------------------------------------------------
  const metricsBuffer = createMetricsBuffer(config.http.threads);
  const serving = await ServingPool.start(
    config.http.threads,
    {
      host: config.http.host,
      port: config.http.port,
      pathPrefix: config.http.pathPrefix,
      maxRequestBytes: config.http.maxRequestBytes,
      requestTimeoutMs: config.http.requestTimeoutMs,
      headersTimeoutMs: config.http.headersTimeoutMs,
      keepAliveTimeoutMs: config.http.keepAliveTimeoutMs,
      maxAgeSeconds: config.http.maxAgeSeconds,
      maxCertIds: config.policy.maxCertIdsPerRequest,
      minNonceLength: config.policy.minNonceLength,
      nonce: config.policy.nonce,
      neverIssued: config.policy.neverIssued,
      maxLiveInFlight: config.live.maxInFlight,
      maxMissesInFlight: 4 * config.database.maxConnections * 64,
      mainTimeoutMs: config.live.timeoutMs + 1_000,
      store: writer.buffers,
      metrics: metricsBuffer,
      admission: new SharedArrayBuffer(8),
      directory: directory.snapshot(),
      ...(https ? { https } : {}),
      metering: { enabled: config.metering.enabled, maxCallersPerWindow: config.metering.maxCallersPerWindow },
    },
    {
      miss: (m) => resolver.miss(m.issuerIndex, m.single),
      live: (m) => resolver.live(m.issuerIndex, m.singles, m.nonce),
      usage: (tally) => usage?.add(tally),
    },
    logger,
  );
  threads.pool = serving;
  sentVersion = directory.version;
  usage?.start();
  lifecycle.onStopAccepting({
    name: 'ocsp serving threads',
    stop: async () => {
      await serving.stop();
      // After the threads: their last counts are in, and the open window is recorded.
      await usage?.stop();
    },
  });
  registerServingMetrics(runtime, metricsBuffer, config.http.threads, writer, directory);

  // --- background work ---------------------------------------------------------------------------
  let loadedResolve: () => void = () => undefined;
  const loaded = new Promise<void>((resolve) => (loadedResolve = resolve));
  let isLoaded = false;
  const initialLoad = (async () => {
    for (let attempt = 1; ; attempt++) {
      try {
        const started = Date.now();
        const rows = await follower.catchUp();
        logger.info({ rows, ms: Date.now() - started, ...writer.stats() }, 'ocsp: store loaded into memory');
        isLoaded = true;
        loadedResolve();
        follower.start();
        updater.start();
        return;
      } catch (err) {
        logger.warn({ err, attempt }, 'ocsp: loading the store failed; retrying');
        await new Promise((r) => setTimeout(r, Math.min(10_000, 500 * attempt)));
      }
    }
  })();
  void initialLoad;
  const maintenance = setInterval(() => writer.maintain(), 250);
  // Renewed responder certificates and new generations, as ca-signer reports them.
  const issuerRefresh = setInterval(() => void refreshIssuers().catch((err: unknown) => health.down('ca-signer', (err as Error).message)), 5 * 60_000);
  lifecycle.onDrain({ name: 'issuer refresh', stop: async () => clearInterval(issuerRefresh) });
  lifecycle.onDrain({ name: 'memory maintenance', stop: async () => clearInterval(maintenance) });
  lifecycle.onDrain({ name: 'ocsp updater', stop: () => updater.stop() });
  lifecycle.onDrain({ name: 'ocsp change follower', stop: () => follower.stop() });

  const transport = await startStatusConsumer(config, runtime, health, statusEventHandler({ store, memory, updater, health, logger, consumer: STATUS_CONSUMER }));

  // --- readiness ---------------------------------------------------------------------------------
  runtime.addReadinessCheck({
    name: 'memory',
    check: async () => {
      if (!isLoaded) throw new PkiError('UNAVAILABLE', 'the store is still being read into memory');
    },
  });
  runtime.addReadinessCheck({
    name: 'database',
    critical: false,
    check: async () => {
      try {
        await checkDatabase(pool, 1_000);
        health.up('database');
      } catch (err) {
        health.down('database', (err as Error).message);
        throw new PkiError('UNAVAILABLE', `${(err as Error).message} (answering from memory)`);
      }
    },
  });
  runtime.addReadinessCheck({
    name: 'events',
    critical: false,
    check: async () => {
      if (!health.isUp('events')) throw new PkiError('UNAVAILABLE', `${health.describe('events')} (status changes wait in the outbox)`);
    },
  });
  runtime.addReadinessCheck({
    name: 'ca-signer',
    critical: false,
    check: async () => {
      if (!health.isUp('ca-signer')) throw new PkiError('UNAVAILABLE', `${health.describe('ca-signer')} (pre-produced answers still served; live answers are tryLater)`);
    },
  });
  void transport;

  const opsUrl = await runtime.startOps();
  const url = `http://${config.http.host}:${serving.port}${config.http.pathPrefix}`;
  const httpsUrl = config.https && serving.httpsPort !== undefined ? `https://${config.https.host}:${serving.httpsPort}${config.http.pathPrefix}` : undefined;
  logger.info({ url, httpsUrl, opsUrl, threads: config.http.threads, issuers: directory.issuers().map((i) => i.keyId), usageInstance: usage?.instance }, 'ocsp started');
  return { runtime, url, ...(httpsUrl ? { httpsUrl } : {}), ...(usage ? { usage } : {}), opsUrl, memory, health, loaded };
}

/**
 * The metering windows and their delivery: windows are appended to this service's outbox (the
 * schema already has it) and the outbox relay delivers them through the same transport the status
 * events come from (Kafka, or the PostgreSQL bus in the embedded mode).
 */
async function startUsageMeter(config: OcspConfig, runtime: ServiceRuntime, pool: Pool, clock: Clock, servingPool: () => ServingPool | undefined): Promise<UsageMeter> {
  const { logger, registry } = runtime;
  const registers = [registry];
  const { transport } = await startOutboxRelay(runtime, pool, config.database, { transport: config.events.transport, producer: config.metering.producer, pollIntervalMs: 1_000 });
  // The topic may not be creatable yet (Kafka down): delivery retries until it exists.
  void transport.ensureTopics([config.metering.topic]).catch((err: unknown) => logger.warn({ err }, 'ocsp: could not check or create the usage topic; delivery retries until it exists'));
  const windows = new Counter({ name: 'ocsp_usage_windows_total', help: 'Metering windows, by outcome: recorded in the outbox, or a failed attempt (retried)', labelNames: ['outcome'] as const, registers });
  const overflow = new Counter({ name: 'ocsp_usage_overflow_requests_total', help: 'Identified requests not attributed because a thread\'s caller table was full', registers });
  // A new instance per process start (issue 13: a restart must not reuse window sequences).
  const started = clock.now().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const meter = new UsageMeter({
    instance: `${config.metering.instanceName}-${started}-${randomBytes(3).toString('hex')}`,
    windowMs: config.metering.windowSeconds * 1000,
    collect: async (timeoutMs) => servingPool()?.collectUsage(timeoutMs),
    sink: new UsageOutbox(pool, { producer: config.metering.producer, topic: config.metering.topic }),
    clock,
    logger,
    onPublished: (w) => {
      windows.inc({ outcome: 'recorded' });
      overflow.inc(w.overflow);
    },
    onFailed: () => windows.inc({ outcome: 'failed' }),
  });
  new Gauge({
    name: 'ocsp_usage_windows_pending',
    help: 'Closed metering windows not yet recorded (the database was unavailable)',
    registers,
    collect() {
      this.set(meter.pending);
    },
  });
  return meter;
}

/**
 * Subscribes to the status events in the background: Kafka (or the PostgreSQL bus) may be down
 * at start; the responder answers from its store meanwhile and subscribes when it can. Kafka's
 * reachability is probed on its own, since the consumer hides its connection state.
 */
async function startStatusConsumer(config: OcspConfig, runtime: ServiceRuntime, health: DependencyHealth, handler: ReturnType<typeof statusEventHandler>): Promise<{ transport?: EventTransport }> {
  const { logger, lifecycle } = runtime;
  const holder: { transport?: EventTransport } = {};
  let stopping = false;
  const transportConfig =
    config.events.transport.type === 'kafka'
      ? ({ type: 'kafka', brokers: config.events.transport.brokers, clientId: config.events.transport.clientId, sessionTimeoutMs: 10_000 } as const)
      : ({ type: 'postgres', url: databaseUrl(config.database), pollIntervalMs: 100 } as const);
  const subscribing = (async () => {
    for (let attempt = 1; !stopping; attempt++) {
      try {
        const transport = await createEventTransport(transportConfig, { logger });
        holder.transport = transport;
        await transport.ensureTopics([config.events.topic]);
        await transport.subscriber.subscribe({ topic: config.events.topic, group: config.events.group, handler });
        health.up('events');
        return;
      } catch (err) {
        health.down('events', (err as Error).message);
        await holder.transport?.close().catch(() => undefined);
        holder.transport = undefined;
        await new Promise((r) => setTimeout(r, Math.min(10_000, 500 * attempt)));
      }
    }
  })();
  let probe: NodeJS.Timeout | undefined;
  if (transportConfig.type === 'kafka') {
    const kafka = createKafkaClient({ ...transportConfig, connectionTimeoutMs: 1_000, requestTimeoutMs: 2_000 }, logger.child({ component: 'kafka-probe' }));
    const admin = kafka.admin();
    const check = async () => {
      try {
        await admin.connect();
        await admin.describeCluster();
        if (holder.transport) health.up('events');
      } catch (err) {
        health.down('events', `kafka: ${(err as Error).message}`);
        await admin.disconnect().catch(() => undefined);
      }
    };
    probe = setInterval(() => void check(), 2_000);
    lifecycle.onClose({ name: 'kafka probe', stop: () => admin.disconnect().catch(() => undefined) });
  } else {
    // The bus is the database: events flow when it does.
    probe = setInterval(() => {
      if (holder.transport) (health.isUp('database') ? health.up : health.down).call(health, 'events', 'the event bus is the database, which is unavailable');
    }, 1_000);
  }
  lifecycle.onDrain({
    name: 'status events',
    stop: async () => {
      stopping = true;
      clearInterval(probe);
      await subscribing;
      await holder.transport?.close();
    },
  });
  return holder;
}

function registerServingMetrics(runtime: ServiceRuntime, buffer: SharedArrayBuffer, threads: number, writer: ResponseStoreWriter, directory: IssuerDirectory): void {
  const registers = [runtime.registry];
  const totals = () => readMetrics(buffer, threads);
  new Counter({
    name: 'ocsp_requests_total',
    help: 'OCSP requests by HTTP method',
    labelNames: ['method'] as const,
    registers,
    collect() {
      const t = totals();
      this.reset();
      this.inc({ method: 'GET' }, t.counters.requestsGet);
      this.inc({ method: 'POST' }, t.counters.requestsPost);
      this.inc({ method: 'other' }, t.counters.requestsOther);
    },
  });
  new Counter({
    name: 'ocsp_answers_total',
    help: 'Answers by OCSP status (good, revoked, unknown, malformedRequest, unauthorized, tryLater, internalError) or notModified',
    labelNames: ['status'] as const,
    registers,
    collect() {
      const t = totals();
      this.reset();
      for (const a of ANSWERS) this.inc({ status: a }, t.answers[a]);
    },
  });
  new Counter({
    name: 'ocsp_answers_by_issuer_total',
    help: 'Answers per CA generation (issuer key id) and status',
    labelNames: ['issuer', 'status'] as const,
    registers,
    collect() {
      const t = totals();
      this.reset();
      for (const issuer of directory.issuers()) {
        if (issuer.index >= MAX_ISSUERS) continue;
        ISSUER_ANSWERS.forEach((status, k) => this.inc({ issuer: issuer.keyId, status }, t.byIssuer[issuer.index]![k]!));
      }
    },
  });
  const counter = (name: string, help: string, key: (typeof COUNTERS)[number]) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(totals().counters[key]);
      },
    });
  counter('ocsp_memory_hits_total', 'Answers served from memory', 'memoryHits');
  counter('ocsp_memory_misses_total', 'Known certificates whose response was read from PostgreSQL', 'memoryMisses');
  counter('ocsp_live_requests_total', 'Requests admitted to live signing (nonce, several CertIDs, never-issued revoked)', 'liveRequests');
  counter('ocsp_shed_live_total', 'Live requests answered tryLater because the live limit was reached', 'shedLive');
  counter('ocsp_shed_misses_total', 'Store lookups answered tryLater because too many were in flight', 'shedMisses');
  counter('ocsp_never_issued_total', 'Requests for serials never issued by the issuer named', 'neverIssued');
  new Counter({
    name: 'ocsp_usage_requests_total',
    help: 'Requests counted for usage metering, by how the caller identified itself (mtls, signed_request, system_url, anonymous)',
    labelNames: ['identification'] as const,
    registers,
    collect() {
      const t = totals();
      this.reset();
      this.inc({ identification: 'mtls' }, t.counters.usageMtls);
      this.inc({ identification: 'signed_request' }, t.counters.usageSignedRequest);
      this.inc({ identification: 'system_url' }, t.counters.usageSystemUrl);
      this.inc({ identification: 'anonymous' }, t.counters.usageAnonymous);
    },
  });
  new Counter({
    name: 'ocsp_signed_requests_total',
    help: 'Signed requests (RFC 6960 §4.1.2) by outcome: verified (signer of ours), rejected (answered unauthorized)',
    labelNames: ['outcome'] as const,
    registers,
    collect() {
      const t = totals();
      this.reset();
      this.inc({ outcome: 'verified' }, t.counters.signedVerified);
      this.inc({ outcome: 'rejected' }, t.counters.signedRejected);
    },
  });
  counter('ocsp_tls_clients_unidentified_total', 'TLS connections with a client certificate not issued by our CA generations (answered, counted as anonymous)', 'mtlsUnidentified');
  new Histogram({
    name: 'ocsp_request_duration_seconds',
    help: 'Time from request to answer in the serving threads',
    buckets: LATENCY_BUCKETS,
    registers,
    collect() {
      const t = totals();
      this.reset();
      // prom-client has no bulk setter: rebuild the histogram from the shared buckets.
      const internal = this as unknown as { hashMap: Record<string, { labels: object; bucketValues: Record<number, number>; sum: number; count: number }> };
      const bucketValues: Record<number, number> = {};
      LATENCY_BUCKETS.forEach((upper, i) => (bucketValues[upper] = t.buckets[i]!));
      internal.hashMap[''] = { labels: {}, bucketValues, sum: t.sum, count: t.count };
    },
  });
  new Gauge({
    name: 'ocsp_memory_responses',
    help: 'Responses resident in memory',
    registers,
    collect() {
      this.set(writer.stats().residentResponses);
    },
  });
  new Gauge({
    name: 'ocsp_memory_certificates',
    help: 'Certificates the in-memory index knows (the whole population)',
    registers,
    collect() {
      this.set(writer.stats().knownCertificates);
    },
  });
  new Gauge({
    name: 'ocsp_memory_bytes',
    help: 'Bytes of response memory in use, and its size',
    labelNames: ['kind'] as const,
    registers,
    collect() {
      const s = writer.stats();
      this.set({ kind: 'in_use' }, s.arenaBytesInUse);
      this.set({ kind: 'size' }, s.arenaBytes);
    },
  });
  new Gauge({
    name: 'ocsp_responder_certificate_expiry_timestamp_seconds',
    help: 'notAfter of each generation\'s active delegated responder certificate: renew it before this',
    labelNames: ['issuer'] as const,
    registers,
    collect() {
      for (const i of directory.issuers()) if (i.responderCertificate) this.set({ issuer: i.keyId }, Math.floor(i.responderCertificate.notAfter.getTime() / 1000));
    },
  });
}
