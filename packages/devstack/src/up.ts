import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Registry } from 'prom-client';
import { createLogger, OpsServer } from '@pki/kit';
import { ensureServiceCa, issueServiceCertificate } from '@pki/internal-ca';
import { findRepoRoot, openOrCreateSoftHsmToken } from '@pki/testing';
import { SERVICES, devLayout, devPorts, type DevLayout, type DevPorts, type ServiceName } from './layout';
import { assertPortsFree } from './preflight';
import { buildDevConfigs, ocspUrl } from './configs';
import { prepareRaDev, registerPrincipalArgs, type RaDevInputs } from './ra-dev';
import { DEV_DATABASE, devDatabaseProcess, devDatabaseUrl, embeddedPostgresBinaries, ensureDevCluster, ensureDevDatabase } from './database';
import { StartFailure, Supervisor, type ProcessSpec } from './supervisor';
import { createTerminal, lastLogMessage, UpError, type Terminal } from './terminal';

const TOKEN_LABEL = 'citizen-ca';

/** A secret generated on first run and kept (0600, in a 0700 folder) so that later runs reuse it. */
function persistentSecret(file: string, make: () => string): string {
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const value = make();
  writeFileSync(file, value + '\n', { mode: 0o600 });
  return value;
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

async function prepare(layout: DevLayout, ports: DevPorts, databaseUrl: string): Promise<Prepared> {
  const urlFile = path.join(layout.secrets, 'database-url');
  writeFileSync(urlFile, databaseUrl + '\n', { mode: 0o600 });
  const pin = persistentSecret(path.join(layout.secrets, 'hsm-pin'), () => String(100000 + (randomBytes(4).readUInt32BE() % 900000)));
  const soPin = persistentSecret(path.join(layout.secrets, 'hsm-so-pin'), () => randomBytes(12).toString('hex'));
  const token = await openOrCreateSoftHsmToken({ dir: layout.softhsm, label: TOKEN_LABEL, pin, soPin }).catch((err: unknown) => {
    throw new UpError(`the SoftHSM token could not be opened or created: ${(err as Error).message}`, `Check ${layout.softhsm}; rm -rf it starts the token (and the dev CA) afresh`, { cause: err });
  });

  const ca = await ensureServiceCa(layout.serviceCa);
  const tls = {} as Record<ServiceName, { caFile: string; certFile: string; keyFile: string }>;
  for (const service of SERVICES) {
    const c = await issueServiceCertificate({ caDir: ca.dir, outDir: layout.serviceCerts, service });
    tls[service] = { caFile: c.caFile, certFile: c.certFile, keyFile: c.keyFile };
  }

  const ra = await prepareRaDev(layout);
  // card-mgmt's keys, made once and kept: administrative secrets derive from the first.
  const cardMgmtKey = (name: string) => {
    const file = path.join(layout.secrets, `${name}.key`);
    persistentSecret(file, () => randomBytes(32).toString('base64'));
    return file;
  };
  const configs = buildDevConfigs({
    ports,
    databaseUrlFile: urlFile,
    hsm: { modulePath: token.modulePath, tokenLabel: TOKEN_LABEL, pinFile: path.join(layout.secrets, 'hsm-pin'), softhsmConfigFile: token.configPath },
    tls,
    ra: { officerCaFile: ra.officerCaFile, personalData: ra.personalData },
    cardMgmt: {
      adminSecretKeyFile: cardMgmtKey('card-mgmt-admin-secret'),
      transportKeyFile: cardMgmtKey('card-mgmt-transport'),
      fingerprintKeyFile: cardMgmtKey('card-mgmt-fingerprint'),
    },
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
      http: { ra: raHttp, cardMgmt: `https://127.0.0.1:${ports.cardMgmtHttp}`, crl: `http://127.0.0.1:${ports.crlHttp}/crl`, caCertificates: `http://127.0.0.1:${ports.crlHttp}/ca`, ocsp: ocspUrl(ports), ocspHttps: `https://127.0.0.1:${ports.ocspHttps}/` },
      admin: { crl: `https://127.0.0.1:${ports.crlAdmin}` },
      // curl --cacert <serviceCa> --cert <officer>.crt --key <officer>.key (README walks through it)
      officers: Object.fromEntries(ra.principals.map((p) => [p.id, { certFile: p.certFile, keyFile: p.keyFile, ...('role' in p ? { role: p.role, office: p.office } : {}) }])),
      grpc: { 'ca-signer': `127.0.0.1:${ports.caSignerGrpc}` },
      ops: Object.fromEntries(SERVICES.map((s) => [s, `http://127.0.0.1:${ports.ops[s]}`])),
      supervisor: `http://127.0.0.1:${ports.supervisor}`,
      caCertificates: { root: path.join(layout.ca, 'root.pem'), issuing: path.join(layout.ca, 'issuing.pem'), chain: path.join(layout.ca, 'chain.pem') },
      serviceCa: ca.certFile,
      configs: configFiles,
      logs: layout.logs,
      pids: layout.run,
    },
  };
}

/**
 * A service's built script. PKI_DEV_SERVICES_DIR runs the services from elsewhere: the image
 * test starts every service from its production pack (deploy/images/pack-service.sh), laid out
 * as <dir>/<service>/dist.
 */
function serviceEntry(root: string, service: ServiceName, script = 'main.js'): string {
  return path.join(process.env.PKI_DEV_SERVICES_DIR || path.join(root, 'services'), service, 'dist', script);
}

/** A service as the supervisor runs it: its built main.js on its config, ready when its /readyz says so. */
function serviceProcess(root: string, layout: DevLayout, ports: DevPorts, service: ServiceName, configFile: string): ProcessSpec {
  const readyz = `http://127.0.0.1:${ports.ops[service]}/readyz`;
  return {
    name: service,
    file: process.execPath,
    args: [serviceEntry(root, service), configFile],
    logFile: path.join(layout.logs, `${service}.log`),
    probe: async () => {
      const res = await fetch(readyz, { signal: AbortSignal.timeout(5_000) });
      if (!res.ok) throw new Error(`readyz answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
    },
    permanentExits: { 78: `it refuses its configuration (${path.relative(root, configFile)})` },
  };
}

function runToCompletion(cmd: string, args: string[], logFile: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    child.stderr.on('data', (d: Buffer) => chunks.push(d));
    child.on('error', reject);
    child.on('exit', (code) => {
      writeFileSync(logFile, Buffer.concat(chunks), { flag: 'a', mode: 0o600 });
      if (code === 0) resolve();
      else reject(new Error(`exited with ${code}`));
    });
  });
}

/**
 * Stops what a killed earlier run left behind (its pid files name it): a process only when its
 * command line still names this state folder, since a stale pid may belong to anything by now.
 */
async function stopLeftovers(layout: DevLayout, terminal: Terminal): Promise<void> {
  const candidates: Array<{ name: string; file: string }> = [];
  if (existsSync(layout.run)) for (const f of readdirSync(layout.run)) if (f.endsWith('.pid')) candidates.push({ name: f.slice(0, -4), file: path.join(layout.run, f) });
  // PostgreSQL's own record, in case ours was never written.
  candidates.push({ name: 'postgres', file: path.join(layout.postgres, 'data', 'postmaster.pid') });
  // An orphaned supervisor first (it stops its own services in order), PostgreSQL last.
  const rank = (name: string) => (name === SUPERVISOR_PID ? 0 : name === 'postgres' ? 2 : 1);
  candidates.sort((a, b) => rank(a.name) - rank(b.name));
  for (const { name, file } of candidates) {
    const pid = Number(readTextQuietly(file).split('\n')[0]);
    const ours = Number.isInteger(pid) && pid > 1 && pid !== process.pid && readTextQuietly(`/proc/${pid}/cmdline`).replace(/\0/g, ' ').includes(layout.dev);
    if (ours) {
      terminal.say(`stopping ${name} (pid ${pid}), left running by an earlier make up that did not stop cleanly`);
      signal(pid, name === 'postgres' ? 'SIGINT' : 'SIGTERM');
      for (let waited = 0; waited < 30_000 && isAlive(pid); waited += 100) await new Promise((r) => setTimeout(r, 100));
      if (isAlive(pid)) signal(pid, 'SIGKILL');
    }
    // Ours or stale, the record is obsolete (PostgreSQL handles its own postmaster.pid).
    if (file.startsWith(layout.run)) rmSync(file, { force: true });
  }
}

function readTextQuietly(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

/** The supervisor's own pid file in the run folder. */
const SUPERVISOR_PID = 'make-up';

/** The supervisor process: everything `make up` does once its wrapper has put it in its own process group. */
async function main(): Promise<void> {
  const root = findRepoRoot(__dirname);
  const layout = devLayout(root);
  // The state is nobody else's business: keys, PINs and the database live in here.
  mkdirSync(layout.dev, { recursive: true, mode: 0o700 });
  for (const dir of [layout.logs, layout.config, layout.ca]) mkdirSync(dir, { recursive: true });
  const terminal = createTerminal(root, path.join(layout.logs, 'up.log'));
  const registry = new Registry();
  const supervisor = new Supervisor({ say: terminal.say, pidDir: layout.run, registry, show: terminal.show });
  const ownPidFile = path.join(layout.run, `${SUPERVISOR_PID}.pid`);

  let stopping = false;
  let ops: OpsServer | undefined;
  /** Stops what runs (the services in reverse order, the database last); a failure's line comes last, where the eye lands. */
  const shutdown = async (code: number, failure?: unknown): Promise<never> => {
    if (stopping) {
      terminal.say('stopping at once (SIGKILL)');
      supervisor.killAll();
      process.exit(130);
    }
    stopping = true;
    const started = supervisor.status().some((s) => s.state !== 'stopped' && s.state !== 'failed');
    if (started) terminal.say('\nstopping services...');
    await supervisor.stopAll();
    await ops?.close().catch(() => undefined);
    rmSync(ownPidFile, { force: true });
    if (started) terminal.say('stopped.');
    if (failure !== undefined) terminal.fail(failure);
    process.exit(code);
  };
  process.on('SIGINT', () => void shutdown(0));
  process.on('SIGTERM', () => void shutdown(0));
  process.on('SIGHUP', () => void shutdown(0));
  process.on('uncaughtException', (err) => void shutdown(1, err));
  // The terminal may be gone before we are (a closed window): losing it must not stop a shutdown.
  process.stdout.on('error', () => undefined);
  process.stderr.on('error', () => undefined);
  // If the wrapper is killed outright, nobody would stop us: stop when our parent is gone.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent && !stopping) {
      terminal.say('make up (the wrapper in the terminal) is gone; stopping.');
      void shutdown(0);
    }
  }, 1_000).unref();

  try {
    const ports = devPorts();
    terminal.say(`citizen PKI: starting the embedded deployment (state in ${terminal.show(layout.dev)})`);
    await stopLeftovers(layout, terminal);
    writeFileSync(ownPidFile, `${process.pid}\n`, { mode: 0o600 });
    await assertPortsFree(ports);

    // The supervisor's own ops endpoint: /metrics counts restarts per process.
    ops = new OpsServer({
      service: 'make-up',
      host: '127.0.0.1',
      port: ports.supervisor,
      registry,
      readiness: [{ name: 'processes', check: async () => { if (!supervisor.allReady()) throw new Error(supervisor.status().filter((s) => s.state !== 'ready').map((s) => `${s.name} ${s.state}`).join(', ')); } }],
      logger: createLogger({ service: 'make-up', level: 'warn', destination: { write: (line: string) => void writeFileSync(terminal.logFile, line, { flag: 'a' }) } }),
    });
    await ops.listen();

    const password = persistentSecret(path.join(layout.secrets, 'postgres-password'), () => randomBytes(18).toString('base64url'));
    const database = { binDir: embeddedPostgresBinaries(), dataDir: path.join(layout.postgres, 'data'), logFile: path.join(layout.logs, 'postgres.log'), port: ports.postgres, password };
    const cluster = await ensureDevCluster(database);
    if (cluster === 'created') terminal.say(`  postgres   created a new cluster in ${terminal.show(database.dataDir)}`);
    if (cluster === 'adopted') terminal.say(`  postgres   took over ${terminal.show(database.dataDir)} (an older make up ran the server as another user)`);
    try {
      await supervisor.start(devDatabaseProcess(database));
    } catch (err) {
      if (!(err instanceof StartFailure)) throw err;
      throw new UpError(
        `PostgreSQL did not start: ${err.reason}`,
        `See ${terminal.show(database.logFile)}; if ${terminal.show(layout.postgres)} comes from another PostgreSQL version or is damaged, move it away (its data is lost to make up) and run make up again`,
        { cause: err },
      );
    }
    await ensureDevDatabase(ports.postgres, password);
    terminal.say('  postgres   ready');

    const prepared = await prepare(layout, ports, devDatabaseUrl(ports.postgres, password, DEV_DATABASE));
    // The CA hierarchy is created inside the token by ca-signer's ceremony tool, in its own
    // process: no other process ever loads the PKCS#11 module. It is a no-op when it exists.
    const ceremonyLog = path.join(layout.logs, 'ceremony.log');
    await runToCompletion(process.execPath, [serviceEntry(root, 'ca-signer', 'cli.js'), 'ceremony', 'init-dev', '--config', prepared.configFiles['ca-signer'], '--out', layout.ca], ceremonyLog).catch((err: unknown) => {
      throw new UpError(`creating the development CA hierarchy failed (${(err as Error).message}): ${lastLogMessage(ceremonyLog) ?? 'no output'}`, `See ${terminal.show(ceremonyLog)}`, { cause: err });
    });

    for (const service of SERVICES) {
      try {
        await supervisor.start(serviceProcess(root, layout, ports, service, prepared.configFiles[service]));
      } catch (err) {
        if (!(err instanceof StartFailure)) throw err;
        throw new UpError(`${service} did not start: ${err.reason}`, `See ${terminal.show(err.logFile)}`, { cause: err });
      }
      terminal.say(`  ${service.padEnd(10)} ready`);
      if (service === 'ra') {
        // The development officers, one per role, each with its client certificate (idempotent).
        const raCliLog = path.join(layout.logs, 'ra-cli.log');
        for (const principal of prepared.ra.principals) {
          await runToCompletion(process.execPath, registerPrincipalArgs(serviceEntry(root, 'ra', 'cli.js'), prepared.configFiles.ra, principal), raCliLog).catch((err: unknown) => {
            throw new UpError(`registering the development officer '${principal.id}' with ra failed (${(err as Error).message}): ${lastLogMessage(raCliLog) ?? 'no output'}`, `See ${terminal.show(raCliLog)}`, { cause: err });
          });
        }
      }
    }
    await waitForAuditGate(`http://127.0.0.1:${ports.ops['ca-signer']}/metrics`, path.join(layout.logs, 'audit.log'), terminal);
    writeJson(layout.endpoints, prepared.endpoints);
    terminal.say(`\nThe PKI is running. Endpoints (also in ${terminal.show(layout.endpoints)}):`);
    terminal.say(JSON.stringify(prepared.endpoints, null, 2));
    terminal.say(`\nA service that stops is restarted (restarts counted at ${prepared.endpoints.supervisor as string}/metrics).`);
    terminal.say('Try it: scripts/lifecycle-example.sh    Stop: Ctrl-C');
  } catch (err) {
    if (stopping) return;
    await shutdown(1, err);
  }
}

/**
 * ca-signer refuses issuance while the audit log has not confirmed its audit events within the
 * bound (decision 0017). After a make up that was stopped for longer than the bound, the last
 * events of the previous run wait for the audit service's first checkpoint (every 10 s here): say
 * so and wait, rather than announce a PKI whose first issuance would be refused. Its /metrics says
 * whether the gate is open; a signer without the gate has no such series, and nothing is waited for.
 */
async function waitForAuditGate(metricsUrl: string, auditLog: string, terminal: Terminal, timeoutMs = 120_000): Promise<void> {
  const gateOpen = async (): Promise<boolean | undefined> => {
    try {
      const text = await (await fetch(metricsUrl, { signal: AbortSignal.timeout(5_000) })).text();
      const value = /^audit_gate_open(?:\{[^}]*\})? (\S+)$/m.exec(text)?.[1];
      return value === undefined ? undefined : value === '1';
    } catch {
      return undefined;
    }
  };
  if ((await gateOpen()) !== false) return;
  terminal.say('  ca-signer  waiting for the audit log to confirm the audit events of the last run (issuance is refused until it does)...');
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    if ((await gateOpen()) === true) {
      terminal.say('  audit      confirmed them: issuance is open');
      return;
    }
  }
  terminal.say(`  ca-signer  still refuses issuance: the audit log has not confirmed its events after ${timeoutMs / 1000} s; see ${terminal.show(auditLog)}`);
}

/**
 * Ctrl-C signals the terminal's whole foreground process group. If the services and PostgreSQL
 * were in it, each would get SIGINT at once: the database would stop under services still
 * draining. So the process started by `make up` is only a wrapper: it runs the supervisor (this
 * same file) in a process group of its own and turns Ctrl-C into one SIGTERM to it; the
 * supervisor then stops the services in order and the database last. If the supervisor itself
 * dies (killed), the wrapper kills its whole group so that nothing is left running.
 */
function runSupervised(): void {
  // The state folder on its command line lets a later run recognise it in a stale pid file.
  const state = devLayout(findRepoRoot(__dirname)).dev;
  const supervisor = spawn(process.execPath, [__filename, state], { stdio: 'inherit', detached: true, env: { ...process.env, PKI_DEVSTACK_SUPERVISOR: '1' } });
  const forward = (): void => {
    if (supervisor.exitCode === null) supervisor.kill('SIGTERM');
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  process.on('SIGHUP', forward);
  // Whoever started us (make, a test) killed outright: stop as on Ctrl-C.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) forward();
  }, 1_000).unref();
  supervisor.on('exit', (code, signal) => {
    if (signal !== null && supervisor.pid !== undefined) {
      try {
        process.kill(-supervisor.pid, 'SIGKILL');
      } catch {
        // the group is already empty
      }
      console.error(`make up: the supervisor was killed (${signal}); stopped what it had started.`); // eslint-disable-line no-console
    }
    process.exit(code ?? 1);
  });
}

if (require.main === module) {
  if (process.env.PKI_DEVSTACK_SUPERVISOR === '1') void main();
  else runSupervised();
}
