import type { z } from 'zod';
import { loadConfigFile } from './config';
import { PkiError } from './errors';
import { createLogger } from './logging';
import type { ServiceRuntime } from './runtime';

/**
 * The whole of a service's main.ts: load the config named by the first argument (or
 * PKI_CONFIG), refuse to start with a message naming the bad key, start, and stop gracefully on
 * SIGTERM/SIGINT. Exit codes: 78 (EX_CONFIG) for a bad config, 1 for a failed start.
 */
export function runMain<S extends z.ZodType>(service: string, schema: S, start: (config: z.output<S>) => Promise<ServiceRuntime>): void {
  const logger = createLogger({ service });
  const file = process.argv[2] || process.env.PKI_CONFIG;
  if (!file) {
    logger.fatal(`${service}: no config file (pass its path as the first argument or set PKI_CONFIG)`);
    process.exit(78);
  }
  let config: z.output<S>;
  try {
    config = loadConfigFile(schema, file);
  } catch (err) {
    logger.fatal({ code: err instanceof PkiError ? err.code : 'INTERNAL' }, `${service} refuses to start: ${(err as Error).message}`);
    process.exit(78);
  }
  start(config).then(
    (runtime) => runtime.lifecycle.handleSignals(),
    (err: unknown) => {
      logger.fatal({ err }, `${service} failed to start: ${(err as Error).message}`);
      process.exit(1);
    },
  );
}
