#!/usr/bin/env node
import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { createPool } from '@pki/db';
import { loadConfigFile, systemClock } from '@pki/kit';
import { databaseUrl } from '@pki/outbox';
import { AesGcmPersonalDataVault, decodeKey } from '@pki/ra';
import { type MigrationConfig, migrationConfigSchema } from './config';
import { generateLegacyExport } from './generate';
import { importLegacyExport, type ImportTargets } from './importer';
import { silentProgress, stderrProgress } from './progress';
import { checkNewSystem, renderReport } from './report';

const USAGE = `pki-migrate: moves the legacy CA centre's export into the new system (docs/runbooks/migration.md)

  pki-migrate generate --out DIR --certificates N [--dirt] [--transport-key FILE] [--export-id ID] [--generations G1,G2]
      writes a realistic legacy export (its own old CA hierarchy, with every kind of dirt with --dirt);
      with --transport-key (the ceremony's transport public key, PEM or DER) the old CA keys are written wrapped under it

  pki-migrate import --export DIR --config FILE [--dry-run] [--report FILE.json] [--report-text FILE] [--quiet]
      validates the whole export, then imports it (resumable: run it again after a failure or a kill)

  pki-migrate check --export-id ID --config FILE [--crl FILE ...] [--report FILE.json]
      compares ra's registry (and the new CRLs given) with the reconciled legacy records, serial by serial

Exit codes: 0 done (check: equal), 1 usage or environment error, 2 the export was refused (errors listed
with file and line; nothing imported), 3 stopped before the end (--max-batches), 4 check: not equal.
`;

async function main(argv: string[], tty = process.stderr.isTTY === true): Promise<number> {
  const [command, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: {
      out: { type: 'string' },
      certificates: { type: 'string' },
      dirt: { type: 'boolean' },
      'transport-key': { type: 'string' },
      'export-id': { type: 'string' },
      generations: { type: 'string' },
      export: { type: 'string' },
      config: { type: 'string' },
      'dry-run': { type: 'boolean' },
      'max-batches': { type: 'string' },
      report: { type: 'string' },
      'report-text': { type: 'string' },
      crl: { type: 'string', multiple: true },
      quiet: { type: 'boolean' },
    },
    strict: true,
  });
  const progress = values.quiet ? silentProgress : stderrProgress(process.stderr, Date.now, tty);
  switch (command) {
    case 'generate': {
      if (!values.out || !values.certificates) throw new UsageError('generate needs --out and --certificates');
      const transport = values['transport-key'] ? await readKey(values['transport-key']) : undefined;
      const total = Number(values.certificates);
      progress.start('generate', total);
      let last = 0;
      const result = await generateLegacyExport({
        dir: values.out,
        certificates: total,
        dirt: values.dirt ?? false,
        ...(transport ? { transportKeySpki: transport } : {}),
        ...(values['export-id'] ? { exportId: values['export-id'] } : {}),
        ...(values.generations ? { generations: values.generations.split(',') } : {}),
        progress: (n) => {
          progress.tick(n - last);
          last = n;
        },
      });
      progress.done();
      process.stdout.write(`${JSON.stringify({ exportId: result.exportId, generations: result.generations.map((g) => ({ generation: g.generation, keyId: g.keyId })), ...summaryOf(result.facts) })}\n`);
      return 0;
    }
    case 'import': {
      if (!values.export || !values.config) throw new UsageError('import needs --export and --config');
      const config = loadConfigFile(migrationConfigSchema, values.config);
      const targets = targetsFrom(config);
      try {
        const result = await importLegacyExport(targets, {
          dir: values.export,
          dryRun: values['dry-run'] ?? false,
          clock: systemClock,
          progress,
          batchSize: config.batchSize,
          lanes: config.lanes,
          ...(values['max-batches'] ? { maxBatches: Number(values['max-batches']) } : {}),
        });
        if (!result.ok) {
          process.stderr.write(`export refused; nothing was imported:\n${result.errors.map((e) => `  ${e.location}: ${e.problem}`).join('\n')}\n`);
          return 2;
        }
        if (values.report) await writeFile(values.report, `${JSON.stringify({ ...result.report, written: result.written }, null, 2)}\n`);
        const text = renderReport(result.report!);
        if (values['report-text']) await writeFile(values['report-text'], text);
        process.stdout.write(`${JSON.stringify({ exportId: result.exportId, phase: result.phase, written: result.written, disagreements: result.report!.summary.disagreements, timings: result.timings, maxRssMb: maxRssMb(), cpuSeconds: cpuSeconds() })}\n`);
        if (!values.quiet) process.stderr.write(text);
        return result.phase === 'PARTIAL' ? 3 : 0;
      } finally {
        await closeTargets(targets);
      }
    }
    case 'check': {
      if (!values['export-id'] || !values.config) throw new UsageError('check needs --export-id and --config');
      const config = loadConfigFile(migrationConfigSchema, values.config);
      const pool = createPool({ url: databaseUrl(config.ra.database), schema: config.ra.database.schema, maxConnections: 2, applicationName: 'pki-migrate' });
      try {
        const crls = values.crl ? await Promise.all(values.crl.map((f) => readFile(f))) : undefined;
        const check = await checkNewSystem(pool, values['export-id'], crls);
        if (values.report) await writeFile(values.report, `${JSON.stringify(check, null, 2)}\n`);
        process.stdout.write(`${JSON.stringify({ ...check, maxRssMb: maxRssMb(), cpuSeconds: cpuSeconds() })}\n`);
        return check.ok ? 0 : 4;
      } finally {
        await pool.end();
      }
    }
    default:
      process.stderr.write(USAGE);
      return 1;
  }
}

class UsageError extends Error {}

/** This process's peak resident set so far (getrusage ru_maxrss), in MB. */
function maxRssMb(): number {
  return Math.round(process.resourceUsage().maxRSS / 1024);
}

/** CPU seconds (user + system) this process has used. */
function cpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return Math.round((user + system) / 1e5) / 10;
}

function summaryOf(facts: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(facts).filter(([, v]) => typeof v === 'number'));
}

async function readKey(file: string): Promise<Buffer> {
  const bytes = await readFile(file);
  const text = bytes.toString('latin1');
  const pem = /-----BEGIN PUBLIC KEY-----([\s\S]+?)-----END PUBLIC KEY-----/.exec(text);
  return pem ? Buffer.from(pem[1]!.replace(/\s+/g, ''), 'base64') : bytes;
}

/** The importer writes as ra and card-mgmt would: into their schemas, sealing with ra's keys. */
export function targetsFrom(config: MigrationConfig): ImportTargets {
  const pd = config.ra.personalData;
  const vaultKeys = {
    encryption: pd.encryptionKeys.map((k) => ({ id: k.id, key: decodeKey(k.keyFile.reveal(), `encryption key ${k.id}`) })),
    activeEncryptionKeyId: pd.activeEncryptionKey,
    lookup: pd.lookupKeys.map((k) => ({ id: k.id, key: decodeKey(k.keyFile.reveal(), `lookup key ${k.id}`) })),
    activeLookupKeyId: pd.activeLookupKey,
    reference: decodeKey(pd.referenceKeyFile.reveal(), 'reference key'),
  };
  const vault = new AesGcmPersonalDataVault(vaultKeys);
  const pool = (database: MigrationConfig['cardMgmt']['database'], max: number) =>
    createPool({ url: databaseUrl(database), schema: database.schema, maxConnections: max, applicationName: 'pki-migrate' });
  return {
    ra: pool(config.ra.database, 3),
    raSchema: config.ra.database.schema,
    vault,
    vaultKeys,
    statusProducer: config.ra.statusProducer,
    auditProducer: config.ra.auditProducer,
    cardMgmt: pool(config.cardMgmt.database, 2),
    cardMgmtSchema: config.cardMgmt.database.schema,
    ...(config.caSigner ? { caSigner: pool(config.caSigner.database, 1) } : {}),
  };
}

export async function closeTargets(targets: ImportTargets): Promise<void> {
  await Promise.all([targets.ra.end(), targets.cardMgmt.end(), targets.caSigner?.end()]);
}

/**
 * The import runs in a worker thread whose heap is bounded: V8 left to itself on a large host lets
 * a long run's heap grow far past what it holds live (160 MB reserved for 30-80 MB used), and the
 * importer has a memory budget (docs/benchmarks.md). The young generation stays at V8's usual
 * size: a smaller one cost the thread a sixth of its time in scavenges (profile of 2026-12-04).
 * The stage workers it starts have their own bounds (worker-pool.ts).
 */
const IMPORT_HEAP = { maxOldGenerationSizeMb: 160, maxYoungGenerationSizeMb: 48 };

function fail(err: unknown): number {
  process.stderr.write(`pki-migrate: ${err instanceof Error ? err.message : String(err)}\n`);
  if (!(err instanceof UsageError)) process.stderr.write(`${err instanceof Error ? (err.stack ?? '') : ''}\n`);
  return 1;
}

if (require.main === module && !isMainThread) {
  // The import's thread: its exit code goes back to the process's main thread.
  const { tty } = workerData as { tty: boolean };
  main(process.argv.slice(2), tty).then(
    (code) => parentPort!.postMessage(code),
    (err: unknown) => parentPort!.postMessage(fail(err)),
  );
} else if (require.main === module) {
  const argv = process.argv.slice(2);
  if (argv[0] === 'import' && __filename.endsWith('.js')) {
    const worker = new Worker(__filename, { argv, workerData: { tty: process.stderr.isTTY === true }, resourceLimits: IMPORT_HEAP });
    worker.on('message', (code: number) => (process.exitCode = code));
    worker.on('error', (err) => (process.exitCode = fail(err)));
    worker.on('exit', () => process.exit(process.exitCode ?? 1));
  } else {
    main(argv).then(
      (code) => process.exit(code),
      (err: unknown) => process.exit(fail(err)),
    );
  }
}
