import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createLogger, loadConfigFile, PkiError, systemClock } from '@pki/kit';
import { createPool } from '@pki/db';
import { migrateServiceSchema } from '@pki/outbox';
import { raConfigSchema } from './config';
import { MIGRATIONS_DIRECTORY } from './app';
import { OFFICER_ROLES, type OfficerRole } from './domain/access';
import { addPrincipal, disablePrincipal } from './adapters/postgres/principals';

/* eslint-disable no-console -- this is an operator's terminal */

const USAGE = `ra principal management (officers and systems that call ra's REST API with a client certificate)

  node services/ra/dist/cli.js principal add --config ra.json --id <id> --kind officer --role <role> --office <code> --certificate <cert.pem>
  node services/ra/dist/cli.js principal add --config ra.json --id <id> --kind household-system --certificate <cert.pem>
  node services/ra/dist/cli.js principal disable --config ra.json --id <id>
  node services/ra/dist/cli.js principal list --config ra.json

roles: ${OFFICER_ROLES.join(', ')}
Adding a certificate to an existing principal binds one more certificate (renewal); the same
certificate twice changes nothing. Every change is audited.`;

async function main(argv: string[]): Promise<number> {
  const [group, command, ...rest] = argv;
  if (group !== 'principal' || !command || ['-h', '--help'].includes(command)) {
    console.log(USAGE);
    return group === undefined || command === '--help' || command === '-h' ? 0 : 64;
  }
  const { values } = parseArgs({
    args: rest,
    options: { config: { type: 'string' }, id: { type: 'string' }, kind: { type: 'string' }, role: { type: 'string' }, office: { type: 'string' }, certificate: { type: 'string' } },
    strict: true,
  });
  if (!values.config) throw new PkiError('INVALID_ARGUMENT', 'principal: --config is required');
  const config = loadConfigFile(raConfigSchema, values.config);
  const logger = createLogger({ service: 'ra-cli', level: 'warn' });
  const url = config.database.urlFile ? config.database.urlFile.reveal() : config.database.url!;
  const pool = createPool({ url, schema: config.database.schema, maxConnections: 2, applicationName: 'ra-cli' });
  try {
    await migrateServiceSchema(pool, config.database.schema, MIGRATIONS_DIRECTORY, logger);
    const audit = { producer: config.events.auditProducer, clock: systemClock, operator: `ra-cli (${process.env.SUDO_USER ?? process.env.USER ?? 'operator'})` };
    switch (command) {
      case 'add': {
        const kind = required(values.kind, '--kind');
        if (kind !== 'officer' && kind !== 'household-system') throw new PkiError('INVALID_ARGUMENT', 'principal add: --kind must be officer or household-system');
        const id = required(values.id, '--id');
        const { changed, certificateSha256 } = await addPrincipal(pool, audit, {
          id,
          kind,
          ...(values.role ? { role: values.role as OfficerRole } : {}),
          ...(values.office ? { office: values.office } : {}),
          certificate: readFileSync(required(values.certificate, '--certificate')),
        });
        console.log(changed ? `added ${kind} ${id}${values.role ? ` (${values.role}, office ${values.office})` : ''} with certificate ${certificateSha256}` : `${id} already has certificate ${certificateSha256}; nothing changed`);
        return 0;
      }
      case 'disable': {
        const id = required(values.id, '--id');
        await disablePrincipal(pool, audit, id);
        console.log(`disabled ${id}: its certificates stop working within 10 seconds`);
        return 0;
      }
      case 'list': {
        const { rows } = await pool.query(`SELECT p.id, p.kind, p.role, p.office, p.status, count(c.*) AS certificates FROM principals p LEFT JOIN principal_certificates c ON c.principal_id = p.id GROUP BY p.id ORDER BY p.id`);
        for (const r of rows) console.log(`${r.id}\t${r.kind}\t${r.role ?? '-'}\t${r.office ?? '-'}\t${r.status}\t${r.certificates} certificate(s)`);
        return 0;
      }
      default:
        console.error(`unknown command 'principal ${command}'\n\n${USAGE}`);
        return 64;
    }
  } finally {
    await pool.end();
  }
}

function required(value: string | undefined, flag: string): string {
  if (!value) throw new PkiError('INVALID_ARGUMENT', `principal: ${flag} is required`);
  return value;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`ra: ${(err as Error).message}`);
    process.exit(err instanceof PkiError && err.code === 'INVALID_ARGUMENT' ? 64 : 1);
  },
);
