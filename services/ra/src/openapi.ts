import { createLogger } from '@pki/kit';
import { buildHttpApp } from './http/app';
import type { RegistrationAuthority } from './domain/registration-authority';
import type { AgencyHttpDeps } from './http/agency-routes';

/**
 * ra's OpenAPI 3.1 document, generated from the route schemas (the same ones that validate
 * requests and filter responses). Committed as services/ra/openapi.json; a test fails when the
 * two differ: `make openapi` regenerates it.
 */
export async function raOpenApiDocument(): Promise<unknown> {
  const app = buildHttpApp({
    // No route runs: the document only needs the routes' schemas.
    ra: {} as RegistrationAuthority,
    principals: { principalByCertificate: async () => undefined },
    fingerprint: () => Buffer.alloc(32),
    logger: createLogger({ service: 'ra', level: 'silent' }),
    rateLimits: { officerPerMinute: 1, householdPerMinute: 1, citizenPerMinute: 1, publicPerMinute: 1 },
    bodyLimitBytes: 1024,
    agency: {} as AgencyHttpDeps,
  });
  await app.ready();
  const document = app.swagger();
  await app.close();
  return document;
}

if (require.main === module) {
  raOpenApiDocument().then(
    (document) => process.stdout.write(JSON.stringify(document, null, 2) + '\n'),
    (err: unknown) => {
      process.stderr.write(`openapi: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}
