import type { EventSubscriber } from '@pki/outbox';
import type { IncomingEvent } from '../../domain/ingest';
import type { AuditEventSource } from '../../domain/source';

/**
 * The embedded deployment's audit topic (the PostgreSQL bus): one event per handler call, in
 * order. Throughput there is the counter's, not the ministry's.
 */
export class BusAuditSource implements AuditEventSource {
  constructor(
    private readonly subscriber: EventSubscriber,
    private readonly options: { topic: string; group: string },
  ) {}

  async start(handler: (batch: IncomingEvent[]) => Promise<void>): Promise<void> {
    await this.subscriber.subscribe({
      topic: this.options.topic,
      group: this.options.group,
      handler: (event) => handler([{ producer: event.producer, seq: event.seq, payload: event.payload, committedAt: event.createdAt, source: `${event.topic}/${event.producer}/${event.seq}` }]),
    });
  }

  async stop(): Promise<void> {
    await this.subscriber.close();
  }

  lag(): number | undefined {
    return undefined;
  }
}
