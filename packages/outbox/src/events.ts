/**
 * The event model shared by the outbox, the relay and both delivery adapters.
 *
 * Delivery is at-least-once and in order per producer; every event carries its producer and its
 * gapless per-producer sequence number, so a consumer turns at-least-once into an exactly-once
 * effect by skipping what it has already applied (see dedupe.ts).
 */
export interface OutboxEvent {
  /** Who wrote it, e.g. `ra.status` or `ra.audit`; the unit of ordering. */
  producer: string;
  /** 1, 2, 3, ... per producer, in commit order, without gaps. */
  seq: number;
  topic: string;
  /** What the event is about (a certificate serial, a card id); consumers may partition on it. */
  key: string;
  /** The encoded message (protobuf in this project); opaque to the transport. */
  payload: Uint8Array;
  /** Small string metadata (content type, trace id). Names starting with `pki-` are reserved. */
  headers: Record<string, string>;
  /** When the writing transaction appended it. */
  createdAt: Date;
}

/** Hands events to a transport. Resolves only once the transport has durably accepted all of them. */
export interface EventPublisher {
  /** Events arrive in seq order per producer; an implementation must keep that order. */
  publish(events: readonly OutboxEvent[]): Promise<void>;
  close(): Promise<void>;
}

export type EventHandler = (event: OutboxEvent) => Promise<void>;

export interface Subscription {
  topic: string;
  /** Consumers of one group share the work (and the committed position); groups are independent. */
  group: string;
  /**
   * Called once per event, in order per producer. Throwing leaves the event unacknowledged: it is
   * delivered again (after a pause), as are the ones after it.
   */
  handler: EventHandler;
}

export interface EventSubscriber {
  /** Starts consuming; resolves once the subscription is established. A new group starts at the oldest event. */
  subscribe(subscription: Subscription): Promise<void>;
  close(): Promise<void>;
}

/** Header names the transports use to carry the event's identity; application headers must not use the prefix. */
export const RESERVED_HEADER_PREFIX = 'pki-';
export const HEADER_PRODUCER = 'pki-producer';
export const HEADER_SEQ = 'pki-seq';
export const HEADER_KEY = 'pki-key';
export const HEADER_CREATED_AT = 'pki-created-at';
