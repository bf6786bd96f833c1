import { baseServiceConfig, eventTransportConfig, grpcClientConfig, tlsIdentityConfig, z } from '@pki/kit';

/** audit's whole configuration, decoded strictly at start (see packages/kit/src/config.ts). */
export const auditConfigSchema = baseServiceConfig.extend({
  /** The auditors' REST API (HTTPS; auditors present client certificates from the officer CA). */
  http: z.strictObject({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535),
    certFile: z.string().min(1),
    keyFile: z.string().min(1),
    /** CAs whose client certificates may identify auditors (then registered with `cli.js auditors add`). */
    clientCaFiles: z.array(z.string().min(1)).min(1),
    /** Most records one query returns. */
    maxPageSize: z.number().int().min(1).max(10_000).default(1000),
  }),
  /** This service's mTLS identity (spiffe://pki.internal/audit), for ca-signer. */
  tls: tlsIdentityConfig,
  caSigner: grpcClientConfig,
  auditLog: z.strictObject({
    /** Names this log in every checkpoint (C2SP tlog-checkpoint origin), e.g. "moica.nat.gov.tw/audit/v1". */
    origin: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._/:-]{0,199}$/, 'must be one line of letters, digits and . _ / : -'),
    /** Most events recorded in one database transaction. */
    maxBatch: z.number().int().min(1).max(10_000).default(1000),
    /** The service's own identity: the actor of its alerts. */
    identity: z.string().min(1).default('spiffe://pki.internal/audit'),
  }),
  checkpoints: z.strictObject({
    /** A checkpoint is signed this often when the tree grew; keep it well under ca-signer's auditConfirmation bound. */
    intervalMs: z.number().int().min(100).default(10_000),
    /** PEM files of the CA certificates (root and issuing) the checkpoint key must chain to. */
    trustAnchorFiles: z.array(z.string().min(1)).min(1),
  }),
  events: z.strictObject({
    transport: eventTransportConfig,
    /** Outbox producer of this service's own audit events (alerts, exports, auditor changes). */
    producer: z.string().min(1).default('audit'),
    /** Outbox producer of published checkpoints (topic pki.audit-checkpoints.v1). */
    checkpointProducer: z.string().min(1).default('audit.checkpoints'),
    /** Consumer group on the audit topic. */
    group: z.string().min(1).default('audit'),
    pollIntervalMs: z.number().int().min(10).default(500),
    /** Kafka: how long the broker waits for a silent consumer (also bounds the pause after a broker restart). */
    sessionTimeoutMs: z.number().int().min(6000).default(30_000),
  }),
});

export type AuditConfig = z.output<typeof auditConfigSchema>;
