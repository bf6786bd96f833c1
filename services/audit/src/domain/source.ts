import type { IncomingEvent } from './ingest';

/** Hands batches of the audit topic to the recorder; a batch is acknowledged only after the handler resolves. */
export interface AuditEventSource {
  start(handler: (batch: IncomingEvent[]) => Promise<void>): Promise<void>;
  /** Stops after the batch in flight. */
  stop(): Promise<void>;
  /** Messages in the topic not yet consumed, when the transport knows (Kafka). */
  lag(): number | undefined;
}
