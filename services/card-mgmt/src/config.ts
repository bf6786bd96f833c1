import { databaseConfig, eventTransportConfig, grpcClientConfig, logConfig, opsConfig, secretFile, tlsIdentityConfig, z } from '@pki/kit';

/** card-mgmt's whole configuration, decoded strictly at start (see packages/kit/src/config.ts). */
export const cardMgmtConfigSchema = z.strictObject({
  log: logConfig,
  ops: opsConfig,
  /** The REST API (HTTPS) for the card centre and the counters; officers present client certificates. */
  http: z.strictObject({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535),
    certFile: z.string().min(1),
    keyFile: z.string().min(1),
    /** CAs of the officers' client certificates (the officer CA ra trusts too). */
    clientCaFiles: z.array(z.string().min(1)).min(1),
    bodyLimitBytes: z.number().int().min(1024).max(16 * 1024 * 1024).default(2 * 1024 * 1024),
    /** Requests a minute per officer, and per address for citizens' routes (mobile binding, self-service). */
    rateLimits: z
      .strictObject({ officerPerMinute: z.number().int().min(1).default(6000), citizenPerMinute: z.number().int().min(1).default(30) })
      .default({ officerPerMinute: 6000, citizenPerMinute: 30 }),
  }),
  database: databaseConfig,
  /** This service's mTLS identity (spiffe://pki.internal/card-mgmt), for its calls to ra. */
  tls: tlsIdentityConfig,
  ra: grpcClientConfig,
  events: z
    .strictObject({
      transport: eventTransportConfig,
      /** Outbox producer of card-mgmt's audit events. */
      auditProducer: z.string().min(1).default('card-mgmt.audit'),
      /** Consumer group of ra's certificate status events (cards and devices follow them). */
      group: z.string().min(1).default('card-mgmt'),
      pollIntervalMs: z.number().int().min(10).default(500),
    }),
  /** The card centre's office code: where batches arrive and returned cards go. */
  cardCentreOffice: z.string().regex(/^[A-Z0-9-]{2,32}$/).default('CARD-CENTRE'),
  /** 32 random bytes (base64 or hex): the key the per-card administrative secrets derive from (decision 0024). */
  adminSecretKeyFile: secretFile,
  /** 32 random bytes (base64 or hex): the key agreed with the card supplier, from which each chip's transport SO PIN derives. */
  transportKeyFile: secretFile,
  /** 32 random bytes (base64 or hex): keys the idempotency fingerprints of requests. */
  fingerprintKeyFile: secretFile,
  /** Minutes east of UTC of the programme's day, for the daily reconciliation (Taiwan: 480). */
  reportUtcOffsetMinutes: z.number().int().min(-720).max(840).default(480),
});

export type CardMgmtConfig = z.output<typeof cardMgmtConfigSchema>;
