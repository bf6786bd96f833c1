import { baseServiceConfig, type z } from '@pki/kit';

/**
 * crl's configuration. CRL publication (full, delta and partitioned CRLs) comes with its own
 * issue; until then the service runs with its database, metrics, health endpoints and shutdown.
 */
export const crlConfigSchema = baseServiceConfig;
export type CrlConfig = z.output<typeof crlConfigSchema>;
