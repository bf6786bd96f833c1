import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '@pki/kit';
import { createPool } from '@pki/db';
import { inboxMigration, migrateServiceSchema } from '@pki/outbox';
import { createDatabase, findRepoRoot, startPostgres } from '@pki/testing';
import { machineBusyUs, postgresCpuUs } from './common';

/* eslint-disable no-console -- a benchmark reports to its operator */

/**
 * Issue #14: a legacy export of BENCH_MIGRATION_CERTIFICATES (default 1,000,000) certificates
 * with every kind of dirt, imported into ra and card-mgmt and reconciled, then checked serial by
 * serial against ra's registry. Wall time of the import (validation, staging, reconciliation,
 * apply, report) and of the check; peak memory of the importer (its own maxRSS) and of the whole
 * tree (importer + PostgreSQL, summed PSS, sampled). The export is generated once and kept under
 * var/bench/migration (generation signs a million certificates: minutes, not part of the target).
 */
const CERTIFICATES = Number(process.env.BENCH_MIGRATION_CERTIFICATES ?? 1_000_000);

function pssKb(pid: number): number {
  try {
    return Number(/Pss:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

function descendantsOf(root: number): number[] {
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      parents.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) for (const [pid, parent] of parents) if (parent === out[i]) out.push(pid);
  return out;
}

function runCli(args: string[], treeRoots: () => number[]): Promise<{ code: number; stdout: string; stderr: string; seconds: number; treePeakMb: number }> {
  const cli = path.join(findRepoRoot(), 'packages', 'migration', 'dist', 'cli.js');
  const started = process.hrtime.bigint();
  // BENCH_MIGRATION_PROFILE=DIR: a .cpuprofile per thread of the CLI (the import's thread and its stage workers) in DIR.
  const profile = process.env.BENCH_MIGRATION_PROFILE ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_MIGRATION_PROFILE] : [];
  const child = spawn(process.execPath, [...profile, cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
    process.stderr.write(c);
  });
  let treePeakKb = 0;
  const sampler = setInterval(() => {
    const pids = new Set([...descendantsOf(child.pid!), ...treeRoots().flatMap((p) => descendantsOf(p))]);
    treePeakKb = Math.max(treePeakKb, [...pids].reduce((sum, pid) => sum + pssKb(pid), 0));
  }, 250);
  return new Promise((resolve) =>
    child.on('exit', (code) => {
      clearInterval(sampler);
      resolve({ code: code ?? -1, stdout, stderr, seconds: Number(process.hrtime.bigint() - started) / 1e9, treePeakMb: Math.round(treePeakKb / 1024) });
    }),
  );
}

async function main(): Promise<void> {
  const root = findRepoRoot();
  const benchDir = path.join(root, 'var', 'bench');
  const work = path.join(benchDir, 'migration');
  mkdirSync(work, { recursive: true });
  const exportDir = path.join(work, `export-${CERTIFICATES}`);
  // This run's keys, config and report (runs of another size may be going on beside it).
  const runDir = path.join(work, `run-${CERTIFICATES}-${process.pid}`);
  mkdirSync(runDir, { recursive: true });
  const uptimeBefore = os.loadavg();

  let generateSeconds: number | undefined;
  if (!existsSync(path.join(exportDir, 'MANIFEST'))) {
    rmSync(exportDir, { recursive: true, force: true });
    console.log(`generating a legacy export of ${CERTIFICATES.toLocaleString('en')} certificates in ${exportDir} (once; kept for later runs)`);
    const g = await runCli(['generate', '--out', exportDir, '--certificates', String(CERTIFICATES), '--dirt', '--export-id', `bench-${CERTIFICATES}`], () => []);
    if (g.code !== 0) throw new Error(`generate failed: ${g.stderr}`);
    generateSeconds = g.seconds;
  }

  // BENCH_MIGRATION_STATEMENTS=1: PostgreSQL's time per statement (pg_stat_statements) goes into the results.
  const statements = process.env.BENCH_MIGRATION_STATEMENTS === '1';
  // With it, every statement over a second is EXPLAINed (ANALYZE, BUFFERS) into the run folder's postgres.log.
  // The database is sized as docs/runbooks/migration.md asks for the migration day (the test
  // harness's 128 MB of shared buffers would have every batch evict and re-read pages).
  const sizing = [`shared_buffers = '${process.env.BENCH_MIGRATION_SHARED_BUFFERS ?? '1GB'}'`, `max_wal_size = '4GB'`];
  const pg = await startPostgres({
    dir: path.join(benchDir, 'pg'),
    durable: true,
    settings: [
      ...sizing,
      ...(statements
        ? [`shared_preload_libraries = 'pg_stat_statements,auto_explain'`, 'pg_stat_statements.track = all', `auto_explain.log_min_duration = '1s'`, 'auto_explain.log_analyze = on', 'auto_explain.log_buffers = on', 'auto_explain.log_nested_statements = on', 'auto_explain.log_level = warning']
        : []),
    ],
  });
  try {
    const postmaster = Number(readFileSync(path.join(pg.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
    const raUrl = await createDatabase(pg.url, 'bench_migration_ra');
    const cmUrl = await createDatabase(pg.url, 'bench_migration_cm');
    const logger = createLogger({ service: 'bench', level: 'silent' });
    const ra = createPool({ url: raUrl, schema: 'ra', maxConnections: 2 });
    const cm = createPool({ url: cmUrl, schema: 'card_mgmt', maxConnections: 2 });
    await migrateServiceSchema(ra, 'ra', path.join(root, 'services', 'ra', 'migrations'), logger);
    await migrateServiceSchema(cm, 'card_mgmt', path.join(root, 'services', 'card-mgmt', 'migrations'), logger, [inboxMigration(2)]);
    const keys: Record<string, string> = {};
    for (const name of ['pd-1', 'lookup-1', 'reference']) {
      keys[name] = path.join(runDir, `${name}.key`);
      writeFileSync(keys[name], randomBytes(32).toString('base64'), { mode: 0o600 });
    }
    if (statements) await ra.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    const configFile = path.join(runDir, 'migration.json');
    writeFileSync(
      configFile,
      JSON.stringify({
        ra: {
          database: { url: raUrl, schema: 'ra' },
          personalData: { encryptionKeys: [{ id: 'pd-1', keyFile: keys['pd-1'] }], activeEncryptionKey: 'pd-1', lookupKeys: [{ id: 'lookup-1', keyFile: keys['lookup-1'] }], activeLookupKey: 'lookup-1', referenceKeyFile: keys.reference },
        },
        cardMgmt: { database: { url: cmUrl, schema: 'card_mgmt' } },
        batchSize: 5000,
      }),
    );
    const uptime = os.loadavg();
    console.log(`importing (load average ${uptime.map((l) => l.toFixed(2)).join(' ')})`);
    const pgCpu0 = postgresCpuUs(postmaster);
    const busy0 = machineBusyUs();
    const imported = await runCli(['import', '--export', exportDir, '--config', configFile, '--report', path.join(runDir, 'report.json'), '--report-text', path.join(runDir, 'report.txt')], () => [postmaster]);
    if (imported.code !== 0) throw new Error(`import failed (${imported.code}): ${imported.stderr.slice(-2000)}`);
    const pgCpuSeconds = Math.round((postgresCpuUs(postmaster) - pgCpu0) / 1e5) / 10;
    const machineBusySeconds = Math.round((machineBusyUs() - busy0) / 1e5) / 10;
    const importResult = JSON.parse(imported.stdout) as { written: Record<string, number>; disagreements: Record<string, number>; timings: Record<string, number>; maxRssMb: number; cpuSeconds: number };
    const checked = await runCli(['check', '--export-id', `bench-${CERTIFICATES}`, '--config', configFile], () => [postmaster]);
    const check = JSON.parse(checked.stdout) as { ok: boolean; registry: { checked: number; mismatches: number }; maxRssMb: number };
    const { rows } = await ra.query(`SELECT count(*)::int AS n FROM outbox WHERE producer = 'ra' AND topic = 'pki.certificate-status.v1'`);
    const topStatements = statements
      ? (
          await ra.query(
            `SELECT round(total_exec_time / 1000) AS seconds, calls, rows, left(regexp_replace(query, '\\s+', ' ', 'g'), 160) AS query
               FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 15`,
          )
        ).rows
      : undefined;
    await ra.end();
    await cm.end();
    const result = {
      benchmark: 'migration',
      command: 'BENCH_ONLY=migration make bench',
      certificates: CERTIFICATES,
      generateSeconds,
      import: { seconds: Math.round(imported.seconds * 10) / 10, perSecond: Math.round(CERTIFICATES / imported.seconds), importerPeakMb: importResult.maxRssMb, importerCpuSeconds: importResult.cpuSeconds, postgresCpuSeconds: pgCpuSeconds, machineBusySeconds, phases: importResult.timings, treePeakPssMb: imported.treePeakMb, written: importResult.written, disagreements: importResult.disagreements },
      check: { seconds: Math.round(checked.seconds * 10) / 10, checkerPeakMb: check.maxRssMb, registry: check.registry, ok: check.ok },
      statusEventsInOutbox: rows[0].n,
      ...(topStatements ? { topStatements } : {}),
      importAndReconcileSeconds: Math.round((imported.seconds + checked.seconds) * 10) / 10,
      targets: { seconds: 300, memoryMb: 500 },
      database: sizing,
      loadAverageBefore: uptimeBefore,
      loadAverageAtImport: uptime,
      cpus: os.cpus().length,
      at: new Date().toISOString(),
    };
    writeFileSync(path.join(benchDir, 'migration-latest.json'), `${JSON.stringify(result, null, 2)}\n`);
    console.log(JSON.stringify(result, null, 2));
  } finally {
    if (statements) copyFileSync(path.join(pg.dir, 'server.log'), path.join(runDir, 'postgres.log'));
    await pg.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
