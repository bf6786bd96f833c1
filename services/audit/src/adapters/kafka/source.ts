import type { Consumer, Kafka } from 'kafkajs';
import { PkiError, type Logger } from '@pki/kit';
import { decodeKafkaMessage } from '@pki/outbox';
import type { IncomingEvent } from '../../domain/ingest';
import type { AuditEventSource } from '../../domain/source';

/**
 * Consumes the audit topic in batches (kafkajs eachBatch): each slice of up to `maxBatch`
 * messages is recorded in one database transaction, then its offsets are resolved and committed.
 * A crash between the two redelivers the slice, which the log recognises as recorded (same
 * producer, sequence and content) and skips: exactly once in the log.
 */
export class KafkaAuditSource implements AuditEventSource {
  #consumer?: Consumer;
  #lag?: number;

  constructor(
    private readonly kafka: Kafka,
    private readonly options: { topic: string; group: string; maxBatch: number; sessionTimeoutMs: number; logger: Logger },
  ) {}

  async start(handler: (batch: IncomingEvent[]) => Promise<void>): Promise<void> {
    const { topic, group, maxBatch, sessionTimeoutMs, logger } = this.options;
    const consumer = this.kafka.consumer({
      groupId: group,
      allowAutoTopicCreation: false,
      sessionTimeout: sessionTimeoutMs,
      heartbeatInterval: Math.max(500, Math.floor(sessionTimeoutMs / 10)),
      maxBytes: 16 * 1024 * 1024,
      retry: { initialRetryTime: 300, retries: 8, maxRetryTime: 5000, restartOnFailure: async () => true },
    });
    this.#consumer = consumer;
    try {
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({
        autoCommit: true,
        eachBatchAutoResolve: false,
        eachBatch: async ({ batch, resolveOffset, heartbeat, commitOffsetsIfNecessary, isRunning, isStale }) => {
          const messages = batch.messages;
          for (let at = 0; at < messages.length; at += maxBatch) {
            if (!isRunning() || isStale()) return;
            const slice = messages.slice(at, at + maxBatch);
            await handler(
              slice.map((message): IncomingEvent => {
                const event = decodeKafkaMessage(topic, message);
                const source = `${topic}/${batch.partition}/${message.offset}`;
                const payload = message.value ?? Buffer.alloc(0);
                return event
                  ? { producer: event.producer, seq: event.seq, payload: event.payload, committedAt: event.createdAt, source }
                  : { payload: new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength), committedAt: new Date(Number(message.timestamp)), source };
              }),
            );
            resolveOffset(slice[slice.length - 1]!.offset);
            await commitOffsetsIfNecessary();
            await heartbeat();
          }
          const lag = Number(batch.offsetLag());
          this.#lag = Number.isFinite(lag) ? lag : undefined;
        },
      });
    } catch (err) {
      throw new PkiError('UNAVAILABLE', `audit consume ${topic} as ${group}: ${(err as Error).message}`, { cause: err });
    }
    logger.info({ topic, group }, 'audit: consuming the audit topic');
  }

  async stop(): Promise<void> {
    await this.#consumer?.disconnect().catch(() => undefined);
  }

  lag(): number | undefined {
    return this.#lag;
  }
}
