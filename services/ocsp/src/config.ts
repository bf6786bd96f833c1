import { baseServiceConfig, type z } from '@pki/kit';

/**
 * ocsp's configuration. The responder itself (RFC 6960 / RFC 5019, pre-signed responses) comes with its own
 * issue; until then the service runs with its database, metrics, health endpoints and shutdown.
 */
export const ocspConfigSchema = baseServiceConfig;
export type OcspConfig = z.output<typeof ocspConfigSchema>;
