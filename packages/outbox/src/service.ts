import type { Pool } from 'pg';
import { Gauge, Counter } from 'prom-client';
import { databaseConfig, eventTransportConfig, type Logger, type ServiceRuntime, type z } from '@pki/kit';
import { checkDatabase, createPool, migrate, type Migration } from '@pki/db';
import { outboxMigration } from './schema';
import { OutboxRelay } from './relay';
import { createEventTransport, type EventTransport } from './transport';

type DatabaseSettings = z.output<typeof databaseConfig>;

/** The connection string, from the config or from its secret file. */
export function databaseUrl(config: DatabaseSettings): string {
  return config.urlFile ? config.urlFile.reveal() : config.url!;
}

/**
 * Applies a service's schema: the outbox tables as migration 1, then `shared` (migrations from
 * packages, e.g. a consumer's inboxMigration(2)), then its own files.
 */
export async function migrateServiceSchema(pool: Pool, schema: string, migrationsDirectory: string | undefined, logger: Logger, shared: Migration[] = []): Promise<void> {
  await migrate(pool, { schema, directory: migrationsDirectory, migrations: [outboxMigration(1), ...shared], logger });
}

/**
 * Connects a service to its schema: creates the pool, applies the outbox tables (migration 1 of
 * every service) and the service's own migrations (files numbered from 002), adds the database
 * readiness check and closes the pool last on shutdown.
 */
export async function connectServiceDatabase(runtime: ServiceRuntime, config: DatabaseSettings, migrationsDirectory?: string, sharedMigrations: Migration[] = []): Promise<Pool> {
  const pool = createPool({
    url: databaseUrl(config),
    schema: config.schema,
    maxConnections: config.maxConnections,
    statementTimeoutMs: config.statementTimeoutMs,
    applicationName: runtime.service,
  });
  runtime.lifecycle.onClose({ name: 'database pool', stop: () => pool.end() });
  await migrateServiceSchema(pool, config.schema, migrationsDirectory, runtime.logger, sharedMigrations);
  runtime.addReadinessCheck({ name: 'database', check: () => checkDatabase(pool) });
  return pool;
}

export interface ServiceEventsConfig {
  transport: z.output<typeof eventTransportConfig>;
  producer: string;
  /** Further producers this service writes (e.g. its audit events, kept in a gapless sequence of their own). */
  extraProducers?: readonly string[];
  pollIntervalMs: number;
}

/**
 * Starts delivering this service's outbox through the configured transport (Kafka, or the
 * PostgreSQL bus in the embedded mode, which then shares the service's database). The relay
 * drains on shutdown before the transport and the pool close.
 */
export async function startOutboxRelay(runtime: ServiceRuntime, pool: Pool, database: DatabaseSettings, events: ServiceEventsConfig): Promise<{ transport: EventTransport; relay: OutboxRelay }> {
  const transport = await createEventTransport(
    events.transport.type === 'kafka'
      ? { type: 'kafka', brokers: events.transport.brokers, clientId: events.transport.clientId }
      : { type: 'postgres', url: databaseUrl(database) },
    { logger: runtime.logger },
  );
  runtime.lifecycle.onClose({ name: 'event transport', stop: () => transport.close() });
  const relay = new OutboxRelay({ pool, publisher: transport.publisher, producers: [events.producer, ...(events.extraProducers ?? [])], pollIntervalMs: events.pollIntervalMs, logger: runtime.logger });
  await relay.start();
  runtime.lifecycle.onDrain({ name: 'outbox relay', stop: () => relay.stop() });

  const registers = [runtime.registry];
  const published = new Counter({ name: 'outbox_events_published_total', help: 'Outbox events delivered and confirmed', registers });
  const failures = new Counter({ name: 'outbox_delivery_failures_total', help: 'Failed outbox delivery attempts (each is retried)', registers });
  let seen = { published: 0, failures: 0 };
  new Gauge({
    name: 'outbox_lag_events',
    help: 'Committed outbox events not yet delivered, per producer',
    labelNames: ['producer'],
    registers,
    collect() {
      const c = relay.counters();
      published.inc(c.published - seen.published);
      failures.inc(c.failures - seen.failures);
      seen = { published: c.published, failures: c.failures };
      for (const [producer, lag] of Object.entries(c.lag)) this.set({ producer }, lag);
    },
  });
  return { transport, relay };
}
