// Generated contracts (packages/proto/src/gen, from proto/ by `make proto`); never edit gen/ by hand.
export * as caSignerV1 from './gen/pki/ca_signer/v1/ca_signer_pb';
export * as eventsV1 from './gen/pki/events/v1/events_pb';
export * as raV1 from './gen/pki/ra/v1/ra_pb';
export * as healthV1 from './gen/grpc/health/v1/health_pb';

/** Outbox topics; the message type of each is documented in proto/pki/events/v1/events.proto. */
export const Topics = {
  certificateStatus: 'pki.certificate-status.v1',
  audit: 'pki.audit.v1',
  auditCheckpoints: 'pki.audit-checkpoints.v1',
  usage: 'pki.usage.v1',
} as const;
