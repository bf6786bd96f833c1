import { baseServiceConfig, type z } from '@pki/kit';

/**
 * audit's configuration. The verified audit record (hash chains per producer, signed checkpoints) comes with its own
 * issue; until then the service runs with its database, metrics, health endpoints and shutdown.
 */
export const auditConfigSchema = baseServiceConfig;
export type AuditConfig = z.output<typeof auditConfigSchema>;
