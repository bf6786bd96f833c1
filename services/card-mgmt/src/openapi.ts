import { createLogger } from '@pki/kit';
import { buildHttpApp } from './http/app';
import type { CardStock } from './domain/card-stock';
import type { Counter } from './domain/counter';
import type { Reconciliation } from './domain/reconciliation';
import type { MobileCredentials } from './domain/mobile';

/**
 * card-mgmt's OpenAPI 3.1 document, generated from the route schemas. Committed as
 * services/card-mgmt/openapi.json; a test fails when the two differ (`make openapi`).
 */
export async function cardMgmtOpenApiDocument(): Promise<unknown> {
  const app = buildHttpApp({
    // No route runs: the document only needs the routes' schemas.
    stock: {} as CardStock,
    counter: {} as Counter,
    reconciliation: {} as Reconciliation,
    mobile: {} as MobileCredentials,
    officers: { resolveOfficer: async () => undefined },
    logger: createLogger({ service: 'card-mgmt', level: 'silent' }),
    fingerprintKey: Buffer.alloc(32),
    bodyLimitBytes: 1024,
    rateLimits: { officerPerMinute: 1, citizenPerMinute: 1 },
  });
  await app.ready();
  const document = app.swagger();
  await app.close();
  return document;
}

if (require.main === module) {
  cardMgmtOpenApiDocument().then(
    (document) => process.stdout.write(JSON.stringify(document, null, 2) + '\n'),
    (err: unknown) => {
      process.stderr.write(`openapi: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}
