import type { Logger } from '@pki/kit';
import type { Pool } from 'pg';
import type { EventPublisher, EventSubscriber } from './events';
import { createKafkaClient, ensureKafkaTopics, KafkaEventPublisher, KafkaEventSubscriber, type KafkaTransportConfig } from './kafka';
import { createBusPool, prepareBus, PostgresBusPublisher, PostgresBusSubscriber, type PostgresTransportConfig } from './postgres-bus';

/** Which transport carries the events: Kafka in production and tests, PostgreSQL in the embedded mode. */
export type EventTransportConfig = KafkaTransportConfig | PostgresTransportConfig;

export interface EventTransport {
  readonly publisher: EventPublisher;
  readonly subscriber: EventSubscriber;
  /**
   * Declares the topics a service uses: created when missing (Kafka: one partition each; the
   * production cluster is provisioned with its own settings beforehand), nothing to do on PostgreSQL.
   */
  ensureTopics(topics: string[]): Promise<void>;
  /** Closes the publisher, the subscriptions and the connections. */
  close(): Promise<void>;
}

export async function createEventTransport(config: EventTransportConfig, deps: { logger: Logger }): Promise<EventTransport> {
  const logger = deps.logger.child({ component: 'event-transport', transport: config.type });
  if (config.type === 'kafka') {
    const kafka = createKafkaClient(config, logger);
    const publisher = new KafkaEventPublisher(kafka, logger);
    const subscriber = new KafkaEventSubscriber(kafka, logger, config.sessionTimeoutMs);
    return {
      publisher,
      subscriber,
      ensureTopics: (topics) => ensureKafkaTopics(kafka, topics),
      close: async () => {
        await Promise.allSettled([subscriber.close(), publisher.close()]);
      },
    };
  }
  const pool: Pool = createBusPool(config);
  try {
    await prepareBus(pool, logger);
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw err;
  }
  const publisher = new PostgresBusPublisher(pool);
  const subscriber = new PostgresBusSubscriber(pool, config.url, logger, {
    pollIntervalMs: config.pollIntervalMs ?? 1000,
    batchSize: config.batchSize ?? 200,
  });
  return {
    publisher,
    subscriber,
    ensureTopics: async () => undefined,
    close: async () => {
      await subscriber.close();
      await publisher.close();
      await pool.end();
    },
  };
}
