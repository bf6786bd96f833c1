import type { CallerKind } from '../http/usage-tally';

/** One closed metering window of one responder instance (OcspUsageCounted, issue 13). */
export interface UsageWindow {
  instance: string;
  /** 1, 2, 3... within the instance: (instance, sequence) names the window uniquely. */
  sequence: number;
  start: Date;
  end: Date;
  entries: Array<{ kind: CallerKind; callerKey: string; requests: number }>;
  anonymous: number;
  /** Identified requests not attributed because a thread's caller table was full. */
  overflow: number;
}

/** Where closed windows go: durably (an outbox), at least once. A rejection means "not recorded, retry". */
export interface UsagePublishingPort {
  publish(window: UsageWindow): Promise<void>;
}
