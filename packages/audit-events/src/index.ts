export {
  appendAuditEvent,
  appendAuditEvents,
  auditOutboxEvent,
  decodeAuditEvent,
  serviceActor,
  AuditOutcome,
  AuditActorType,
  type AuditChannel,
  type AuditActor,
  type AuditObject,
  type NewAuditEvent,
} from './audit-event';
