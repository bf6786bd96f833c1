export {
  type OutboxEvent,
  type EventPublisher,
  type EventSubscriber,
  type EventHandler,
  type Subscription,
  RESERVED_HEADER_PREFIX,
  HEADER_PRODUCER,
  HEADER_SEQ,
  HEADER_KEY,
  HEADER_CREATED_AT,
} from './events';
export { OUTBOX_MIGRATION_SQL, INBOX_MIGRATION_SQL, outboxMigration, inboxMigration } from './schema';
export { appendEvent, appendEvents, appendEventsFrom, eventColumns, eventRows, outboxChannel, type NewEvent } from './append';
export { OutboxRelay, type OutboxRelayOptions, type OutboxRelayCounters } from './relay';
export { ProducerSequenceTracker, skipRedeliveries, acceptEventOnce } from './dedupe';
export { KafkaEventPublisher, KafkaEventSubscriber, createKafkaClient, ensureKafkaTopics, decodeKafkaMessage, type KafkaTransportConfig } from './kafka';
export {
  PostgresBusPublisher,
  PostgresBusSubscriber,
  prepareBus,
  createBusPool,
  BUS_SCHEMA,
  BUS_MIGRATIONS,
  type PostgresTransportConfig,
} from './postgres-bus';
export { createEventTransport, type EventTransport, type EventTransportConfig } from './transport';
export { connectServiceDatabase, migrateServiceSchema, startOutboxRelay, databaseUrl, type ServiceEventsConfig } from './service';
export { runMigrateCli } from './migrate-cli';
