import { baseServiceConfig, type z } from '@pki/kit';

/**
 * card-mgmt's configuration. Card stock, card lifecycle, PIN unlock and mobile credentials come with its own
 * issue; until then the service runs with its database, metrics, health endpoints and shutdown.
 */
export const cardMgmtConfigSchema = baseServiceConfig;
export type CardMgmtConfig = z.output<typeof cardMgmtConfigSchema>;
