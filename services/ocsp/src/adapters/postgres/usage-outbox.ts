import { create, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { withTransaction, type Pool } from '@pki/db';
import { appendEvent } from '@pki/outbox';
import { eventsV1 } from '@pki/proto';
import type { CallerKind } from '../../http/usage-tally';
import type { UsagePublishingPort, UsageWindow } from '../../ports/usage-publishing';

const IDENTIFICATION: Record<CallerKind, eventsV1.OcspCallerIdentification> = {
  mtls: eventsV1.OcspCallerIdentification.MTLS,
  signedRequest: eventsV1.OcspCallerIdentification.SIGNED_REQUEST,
  systemUrl: eventsV1.OcspCallerIdentification.SYSTEM_URL,
};

/**
 * Closed metering windows as OcspUsageCounted events in this service's outbox (decision 0005), which
 * the relay delivers to Kafka or the PostgreSQL bus at least once. Every pod writes as the same
 * producer (one relay at a time delivers it); the event is keyed by responder_instance.
 */
export class UsageOutbox implements UsagePublishingPort {
  constructor(
    private readonly pool: Pool,
    private readonly settings: { producer: string; topic: string },
  ) {}

  async publish(window: UsageWindow): Promise<void> {
    const event = create(eventsV1.OcspUsageCountedSchema, {
      responderInstance: window.instance,
      windowSequence: BigInt(window.sequence),
      windowStart: timestampFromDate(window.start),
      windowEnd: timestampFromDate(window.end),
      entries: window.entries.map((e) => ({ identification: IDENTIFICATION[e.kind], callerKey: e.callerKey, requests: BigInt(e.requests) })),
      anonymousRequests: BigInt(window.anonymous),
      overflowRequests: BigInt(window.overflow),
    });
    await withTransaction(this.pool, (tx) => appendEvent(tx, { producer: this.settings.producer, topic: this.settings.topic, key: window.instance, payload: toBinary(eventsV1.OcspUsageCountedSchema, event) }));
  }
}
