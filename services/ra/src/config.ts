import { databaseConfig, eventTransportConfig, grpcClientConfig, httpListenConfig, logConfig, opsConfig, tlsIdentityConfig, z } from '@pki/kit';

/** ra's whole configuration, decoded strictly at start (see packages/kit/src/config.ts). */
export const raConfigSchema = z.strictObject({
  log: logConfig,
  ops: opsConfig,
  /** The REST API for registration counters (and later the agencies' validation APIs). */
  http: httpListenConfig,
  database: databaseConfig,
  /** This service's mTLS identity (spiffe://pki.internal/ra). */
  tls: tlsIdentityConfig,
  caSigner: grpcClientConfig,
  events: z.strictObject({
    transport: eventTransportConfig,
    /** Outbox producer name: one sequence per producer. */
    producer: z.string().min(1).default('ra'),
    pollIntervalMs: z.number().int().min(10).default(500),
  }),
});

export type RaConfig = z.output<typeof raConfigSchema>;
