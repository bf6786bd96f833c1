import { PkiError, type Logger } from '@pki/kit';
import { Kafka, logLevel, Partitioners, type Admin, type Consumer, type IHeaders, type KafkaMessage, type Producer } from 'kafkajs';
import {
  HEADER_CREATED_AT,
  HEADER_KEY,
  HEADER_PRODUCER,
  HEADER_SEQ,
  type EventPublisher,
  type EventSubscriber,
  type OutboxEvent,
  type Subscription,
} from './events';

export interface KafkaTransportConfig {
  type: 'kafka';
  brokers: string[];
  clientId: string;
  connectionTimeoutMs?: number;
  requestTimeoutMs?: number;
  /**
   * How long the group coordinator waits for a silent consumer before reassigning its partitions
   * (default 30 s, broker minimum 6 s). It also bounds the pause after a broker restart: a
   * consumer that rejoins under a new member id waits until its old membership expires. kafkajs
   * heartbeats between messages, so a handler must finish well within it.
   */
  sessionTimeoutMs?: number;
}

/**
 * One kafkajs client per transport. Retries inside kafkajs are kept short: the relay owns the
 * retry policy (backoff, counters), and a publish that hangs for minutes inside the client would
 * only delay that.
 */
export function createKafkaClient(config: KafkaTransportConfig, logger: Logger): Kafka {
  return new Kafka({
    clientId: config.clientId,
    brokers: config.brokers,
    connectionTimeout: config.connectionTimeoutMs ?? 3000,
    requestTimeout: config.requestTimeoutMs ?? 10_000,
    retry: { initialRetryTime: 200, retries: 3, maxRetryTime: 2000 },
    logLevel: logLevel.WARN,
    logCreator: () => ({ level, log }) => {
      const { message, ...extra } = log;
      const line = `kafka: ${message}`;
      if (level === logLevel.ERROR) logger.error(extra, line);
      else if (level === logLevel.WARN) logger.warn(extra, line);
      else logger.debug(extra, line);
    },
  });
}

/**
 * Publishes outbox events to Kafka.
 *
 * - Message key = producer: with the default partitioner all of a producer's events land in one
 *   partition of the topic, the only place Kafka keeps order.
 * - Idempotent producer, acks = all, one request in flight: the broker discards a retried write
 *   it already has, and a retry cannot overtake the request before it.
 * - Headers carry producer, seq, the event's own key and its creation time.
 *
 * After a failed send the producer is discarded and the next publish opens a new one (a new
 * producer id). A failed send leaves the idempotent producer's sequence state unknown: the relay
 * re-sends from the first unconfirmed event, possibly as a different batch, which the old
 * producer's sequence numbers could make the broker reject as out of order forever. Duplicates
 * that the new producer id lets through are removed by the consumers' (producer, seq) dedupe.
 */
export class KafkaEventPublisher implements EventPublisher {
  private producer?: Promise<Producer>;

  constructor(
    private readonly kafka: Kafka,
    private readonly logger: Logger,
  ) {}

  async publish(events: readonly OutboxEvent[]): Promise<void> {
    if (events.length === 0) return;
    const byTopic = new Map<string, { key: string; value: Buffer; headers: IHeaders; timestamp: string }[]>();
    for (const event of events) {
      const messages = byTopic.get(event.topic) ?? [];
      messages.push({
        key: event.producer,
        value: Buffer.from(event.payload.buffer, event.payload.byteOffset, event.payload.byteLength),
        headers: {
          ...event.headers,
          [HEADER_PRODUCER]: event.producer,
          [HEADER_SEQ]: String(event.seq),
          [HEADER_KEY]: event.key,
          [HEADER_CREATED_AT]: event.createdAt.toISOString(),
        },
        timestamp: String(event.createdAt.getTime()),
      });
      byTopic.set(event.topic, messages);
    }
    try {
      const producer = await this.connectedProducer();
      await producer.sendBatch({ acks: -1, topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })) });
    } catch (err) {
      await this.discardProducer();
      throw new PkiError('UNAVAILABLE', `outbox kafka publish: ${(err as Error).message}`, { cause: err });
    }
  }

  async close(): Promise<void> {
    await this.discardProducer();
  }

  private connectedProducer(): Promise<Producer> {
    if (!this.producer) {
      const producer = this.kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: false,
        // The murmur2 partitioner of the Java client, so keys map to the same partitions as there.
        createPartitioner: Partitioners.DefaultPartitioner,
      });
      const connecting = producer.connect().then(() => producer);
      this.producer = connecting;
      connecting.catch(() => {
        if (this.producer === connecting) this.producer = undefined;
      });
    }
    return this.producer;
  }

  private async discardProducer(): Promise<void> {
    const current = this.producer;
    this.producer = undefined;
    const producer = await current?.catch(() => undefined);
    await producer?.disconnect().catch((err: unknown) => this.logger.debug({ err }, 'outbox kafka publish: disconnect failed'));
  }
}

/**
 * Consumes with Kafka consumer groups: one kafkajs consumer per subscription, offsets committed
 * after the handler returns (at-least-once). A handler that throws makes kafkajs seek back and
 * deliver the same message again after its retry backoff; the order is kept.
 */
export class KafkaEventSubscriber implements EventSubscriber {
  private readonly consumers: Consumer[] = [];

  constructor(
    private readonly kafka: Kafka,
    private readonly logger: Logger,
    private readonly sessionTimeoutMs = 30_000,
  ) {}

  async subscribe({ topic, group, handler }: Subscription): Promise<void> {
    const consumer = this.kafka.consumer({
      groupId: group,
      allowAutoTopicCreation: false,
      sessionTimeout: this.sessionTimeoutMs,
      heartbeatInterval: Math.max(500, Math.floor(this.sessionTimeoutMs / 10)),
      retry: { initialRetryTime: 300, retries: 8, maxRetryTime: 5000, restartOnFailure: async () => true },
    });
    this.consumers.push(consumer);
    try {
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({
        autoCommit: true,
        eachMessage: async ({ message, partition }) => {
          const event = decodeKafkaMessage(topic, message);
          if (!event) {
            // Not written by an outbox: it has no place in any producer's sequence, and retrying
            // it would block the partition forever.
            this.logger.error({ topic, partition, offset: message.offset, group }, 'outbox kafka consume: skipping a message without producer and seq headers');
            return;
          }
          await handler(event);
        },
      });
    } catch (err) {
      throw new PkiError('UNAVAILABLE', `outbox kafka subscribe ${topic} as ${group}: ${(err as Error).message}`, { cause: err });
    }
    this.logger.debug({ topic, group }, 'outbox kafka subscribe: consuming');
  }

  async close(): Promise<void> {
    const consumers = this.consumers.splice(0);
    await Promise.allSettled(consumers.map((c) => c.disconnect()));
  }
}

/** Creates missing topics (one partition unless told otherwise); existing ones are left as they are. */
export async function ensureKafkaTopics(kafka: Kafka, topics: string[], partitions = 1): Promise<void> {
  const admin: Admin = kafka.admin();
  try {
    await admin.connect();
    const existing = new Set(await admin.listTopics());
    const missing = topics.filter((t) => !existing.has(t));
    if (missing.length > 0) {
      await admin.createTopics({ waitForLeaders: true, topics: missing.map((topic) => ({ topic, numPartitions: partitions })) });
    }
  } catch (err) {
    throw new PkiError('UNAVAILABLE', `outbox kafka topics: cannot create ${topics.join(', ')}: ${(err as Error).message}`, { cause: err });
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/** The outbox event a message carries, or undefined when it lacks the producer and seq headers. */
export function decodeKafkaMessage(topic: string, message: KafkaMessage): OutboxEvent | undefined {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    if (value === undefined) continue;
    headers[name] = Array.isArray(value) ? String(value[value.length - 1]) : String(value);
  }
  const producer = headers[HEADER_PRODUCER];
  const seq = Number(headers[HEADER_SEQ]);
  if (!producer || !Number.isSafeInteger(seq) || seq <= 0) return undefined;
  const key = headers[HEADER_KEY] ?? '';
  const createdAt = headers[HEADER_CREATED_AT] ? new Date(headers[HEADER_CREATED_AT]) : new Date(Number(message.timestamp));
  for (const name of [HEADER_PRODUCER, HEADER_SEQ, HEADER_KEY, HEADER_CREATED_AT]) delete headers[name];
  const value = message.value ?? Buffer.alloc(0);
  return { producer, seq, topic, key, payload: new Uint8Array(value.buffer, value.byteOffset, value.byteLength), headers, createdAt };
}
