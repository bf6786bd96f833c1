import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createLogger, PkiError } from '@pki/kit';
import { createPool, type Migration } from '@pki/db';
import { migrateServiceSchema } from './service';

const USAGE = (service: string) => `Applies ${service}'s database migrations and exits (the Helm chart's pre-install/pre-upgrade Job).

  node dist/migrate.js --schema <schema> --url-file <file holding the postgres:// URL>
  node dist/migrate.js --schema <schema> --url <postgres:// URL>`;

/**
 * The whole of a service's migrate.js: the migrations the service applies when it starts
 * (connectServiceDatabase), applied alone, from a database URL only. It needs none of the
 * service's other secrets, so the migration Job mounts nothing but the database Secret.
 * Exit codes: 0 applied (or nothing pending), 64 bad arguments, 1 failed.
 */
export function runMigrateCli(service: string, migrationsDirectory: string, shared: Migration[] = [], argv = process.argv.slice(2)): void {
  const logger = createLogger({ service: `${service}-migrate` });
  let schema: string;
  let url: string;
  try {
    const { values } = parseArgs({ args: argv, options: { schema: { type: 'string' }, url: { type: 'string' }, 'url-file': { type: 'string' }, help: { type: 'boolean' } }, strict: true });
    if (values.help) {
      process.stdout.write(`${USAGE(service)}\n`);
      process.exit(0);
    }
    if (!values.schema || !/^[a-z_][a-z0-9_]*$/.test(values.schema)) throw new PkiError('INVALID_ARGUMENT', 'migrate: --schema must be a lower-case SQL identifier');
    if ((values.url === undefined) === (values['url-file'] === undefined)) throw new PkiError('INVALID_ARGUMENT', 'migrate: give exactly one of --url and --url-file');
    schema = values.schema;
    url = values.url ?? readFileSync(values['url-file']!, 'utf8').trim();
    if (!/^postgres(ql)?:\/\//.test(url)) throw new PkiError('INVALID_ARGUMENT', 'migrate: the database URL must be a postgres:// URL');
  } catch (err) {
    logger.fatal(`${(err as Error).message}\n${USAGE(service)}`);
    process.exit(64);
  }
  const pool = createPool({ url, schema, maxConnections: 2, applicationName: `${service}-migrate` });
  migrateServiceSchema(pool, schema, migrationsDirectory, logger, shared)
    .then(() => logger.info({ schema }, `${service}: schema ${schema} is migrated`))
    .then(
      () => pool.end().then(() => process.exit(0)),
      (err: unknown) => {
        logger.fatal({ err }, `${service}: migrating schema ${schema} failed: ${(err as Error).message}`);
        void pool.end().finally(() => process.exit(1));
      },
    );
}
