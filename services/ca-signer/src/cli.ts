import { parseArgs } from 'node:util';
import { loadConfigFile, PkiError } from '@pki/kit';
import { caSignerConfigSchema } from './config';
import { ensureDevHierarchy } from './ceremony/dev-hierarchy';

/* eslint-disable no-console -- a command-line tool talks to its operator */

const USAGE = `usage: pki ceremony init-dev --config <ca-signer.json> --out <dir>

  init-dev   For the embedded deployment only: when the signer has no CA yet, generate a root CA
             key and an issuing CA key inside the configured token, self-sign the root, certify
             the issuing CA with it, and record both. Always writes root.pem, issuing.pem and
             chain.pem (issuing CA then root) to --out. Production hierarchies come from the
             custodian ceremonies instead.`;

async function initDev(configFile: string, outDir: string): Promise<void> {
  const config = loadConfigFile(caSignerConfigSchema, configFile);
  const result = await ensureDevHierarchy(config, outDir, { onProgress: (m) => console.log(m) });
  console.log(`${result.created ? 'created' : 'kept'} the development CA hierarchy; certificates written to ${outDir}`);
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { config: { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean' } } });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const [group, command] = positionals;
  if (group === 'ceremony' && command === 'init-dev' && values.config && values.out) {
    await initDev(values.config, values.out);
    return 0;
  }
  console.error(USAGE);
  return 64; // EX_USAGE
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`pki: ${(err as Error).message}`);
    process.exit(err instanceof PkiError && err.code === 'INVALID_ARGUMENT' ? 65 : 1);
  },
);
