import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import pg from 'pg';
import { createGrpcClient } from '@pki/grpc';
import { caSignerV1 } from '@pki/proto';
import { SERVICES, type ServiceName } from '../src/layout';
import { REPO, runUp, startUp, type RunningUp } from './run-up';

/**
 * The whole embedded deployment as `make up` runs it (the built wrapper, every service as its own
 * process, embedded PostgreSQL, SoftHSM), its state in a folder only its owner may enter and whose
 * path has a space. Then: a service killed with SIGKILL comes back while the others keep
 * answering; Ctrl-C stops everything; a second run reuses the same token, CA and data.
 */

interface Endpoints {
  ops: Record<ServiceName, string>;
  grpc: { 'ca-signer': string };
  http: { ocspHttps: string };
  supervisor: string;
  configs: Record<ServiceName, string>;
}

jest.setTimeout(600_000);

describe('the embedded deployment (make up)', () => {
  let parent: string;
  let state: string;
  let portBase: number;
  let up: RunningUp | undefined;
  let endpoints: Endpoints;

  const pidOf = (name: string) => Number(readFileSync(path.join(state, 'run', `${name}.pid`), 'utf8'));
  const databaseUrl = () => readFileSync(path.join(state, 'secrets', 'database-url'), 'utf8').trim();
  const activeIssuer = async () => {
    const ra = JSON.parse(readFileSync(endpoints.configs.ra, 'utf8')) as { tls: { caFile: string; certFile: string; keyFile: string } };
    const client = createGrpcClient(caSignerV1.CaSignerService, { address: endpoints.grpc['ca-signer'], serverIdentity: 'spiffe://pki.internal/ca-signer', tls: ra.tls, deadlineMs: 20_000 });
    try {
      return (await client.getIssuers({})).issuers.find((i) => i.active)?.keyId;
    } finally {
      client.close();
    }
  };

  beforeAll(async () => {
    const testRoot = path.join(REPO, 'var', 'test');
    mkdirSync(testRoot, { recursive: true });
    parent = mkdtempSync(path.join(testRoot, 'up-'));
    chmodSync(parent, 0o700);
  });
  afterAll(async () => {
    if (up && up.child.exitCode === null) {
      up.child.kill('SIGTERM');
      await up.exited;
    }
    rmSync(parent, { recursive: true, force: true });
  });

  it('starts every service and says where they are', async () => {
    ({ up, state, portBase } = await startUp((attempt) => path.join(parent, attempt === 1 ? 'state with space' : `state with space ${attempt}`)));
    for (const service of SERVICES) expect(up.output()).toContain(`  ${service.padEnd(10)} ready`);
    endpoints = JSON.parse(readFileSync(path.join(state, 'endpoints.json'), 'utf8')) as Endpoints;
    expect(endpoints.supervisor).toBe(`http://127.0.0.1:${portBase + 99}`);
    // The responder's HTTPS listener (agencies' mTLS for metering) serves with the responder's
    // service certificate: a client trusting the service CA gets OCSP answers there (a body that is
    // no OCSP request: malformedRequest, status 200, RFC 6960).
    expect(endpoints.http.ocspHttps).toBe(`https://127.0.0.1:${portBase + 86}/`);
    const answer = await new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
      const req = https.request(endpoints.http.ocspHttps, { method: 'POST', ca: readFileSync(path.join(state, 'service-ca', 'ca.crt')), headers: { 'content-type': 'application/ocsp-request' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      req.end(Buffer.from('not an OCSP request'));
    });
    expect(answer.status).toBe(200);
    expect(answer.body.toString('hex')).toBe('30030a0101');
  });

  it('restarts a service killed with SIGKILL, with a line in the terminal and a count, while the others keep answering', async () => {
    const running = up!;
    const victim = pidOf('ca-signer');
    const issuerBefore = await activeIssuer();
    expect(issuerBefore).toMatch(/^[0-9a-f]+$/);

    // Poll every other service while ca-signer is down; each answer must be 200.
    const others = SERVICES.filter((s) => s !== 'ca-signer');
    const failures: string[] = [];
    let answers = 0;
    let polling = true;
    const pollers = others.map(async (service) => {
      while (polling) {
        try {
          const res = await fetch(`${endpoints.ops[service]}/readyz`, { signal: AbortSignal.timeout(10_000) });
          if (res.ok) answers += 1;
          else failures.push(`${service}: ${res.status} ${await res.text()}`);
        } catch (err) {
          failures.push(`${service}: ${(err as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    });

    process.kill(victim, 'SIGKILL');
    const answersAtKill = answers;
    await running.waitFor(/ca-signer stopped unexpectedly \(killed by SIGKILL\) after .*; restarting it in 1 s \(restart 1\)\. Its log: .*ca-signer\.log/, 60_000);
    const back = await running.waitFor(/ca-signer is back \(pid (\d+), restart 1\)\./, 120_000);
    const answersDuringOutage = answers - answersAtKill;
    polling = false;
    await Promise.all(pollers);

    expect(failures).toEqual([]);
    expect(answersDuringOutage).toBeGreaterThan(0);
    const newPid = Number(back[1]);
    expect(newPid).not.toBe(victim);
    expect(pidOf('ca-signer')).toBe(newPid);
    // Counted on the supervisor's metrics endpoint, and the new process serves the same CA.
    const metrics = await (await fetch(`${endpoints.supervisor}/metrics`)).text();
    expect(metrics).toContain('devstack_restarts_total{process="ca-signer"} 1');
    expect(metrics).toContain('devstack_restarts_total{process="ra"} 0');
    expect(metrics).toContain('devstack_process_up{process="ca-signer"} 1');
    expect(await activeIssuer()).toBe(issuerBefore);
  });

  it('stops everything on Ctrl-C, and a second make up reuses the same token, CA and data', async () => {
    const first = up!;
    const root = readFileSync(path.join(state, 'ca', 'root.pem'), 'utf8');
    const pin = readFileSync(path.join(state, 'secrets', 'hsm-pin'), 'utf8');
    const issuer = await activeIssuer();
    const db = new pg.Client({ connectionString: databaseUrl() });
    await db.connect();
    await db.query('CREATE TABLE public.devstack_marker (note text)');
    await db.query('INSERT INTO public.devstack_marker VALUES ($1)', ['kept']);
    await db.end();
    const pids = readdirSync(path.join(state, 'run')).map((f) => Number(readFileSync(path.join(state, 'run', f), 'utf8')));
    // Every service, PostgreSQL and the supervisor itself.
    expect(pids).toHaveLength(SERVICES.length + 2);

    // Ctrl-C reaches the wrapper (the terminal's foreground process); it stops the rest in order.
    first.child.kill('SIGINT');
    expect(await first.exited).toEqual({ code: 0, signal: null });
    expect(first.output()).toMatch(/stopping services\.\.\.\nstopped\.\n$/);
    expect(pids.filter(alive)).toEqual([]);
    expect(readdirSync(path.join(state, 'run'))).toEqual([]);
    expect(first.output()).not.toMatch(/\n\s+at /);

    up = runUp(state, portBase);
    await up.waitFor(/The PKI is running/);
    expect(up.output()).not.toContain('created a new cluster');
    expect(readFileSync(path.join(state, 'ca', 'root.pem'), 'utf8')).toBe(root);
    expect(readFileSync(path.join(state, 'secrets', 'hsm-pin'), 'utf8')).toBe(pin);
    expect(await activeIssuer()).toBe(issuer);
    const again = new pg.Client({ connectionString: databaseUrl() });
    await again.connect();
    expect((await again.query('SELECT note FROM public.devstack_marker')).rows).toEqual([{ note: 'kept' }]);
    await again.end();

    // Secrets stay the owner's alone.
    for (const f of readdirSync(path.join(state, 'secrets'))) expect(modeOf(path.join(state, 'secrets', f))).toBe(0o600);
  });

  it('stops what a make up killed outright left running, and stops when its terminal wrapper is killed', async () => {
    // The wrapper and the supervisor both killed at once (say, kill -9 of both): PostgreSQL and
    // the services are orphans, still running.
    const second = up!;
    const supervisorPid = pidOf('make-up');
    const orphans = SERVICES.map((s) => pidOf(s)).concat(pidOf('postgres'));
    process.kill(second.child.pid!, 'SIGKILL');
    process.kill(supervisorPid, 'SIGKILL');
    await second.exited;
    expect(orphans.filter(alive)).toEqual(orphans);
    // The audit service dies too, and ca-signer's audit events it had not confirmed yet (at least
    // those of its last checkpoint) are made older than ca-signer's bound (300 s): a make up
    // started long after the last one stopped. ca-signer's audit gate is closed until the audit
    // service checkpoints again.
    const auditPid = pidOf('audit');
    process.kill(auditPid, 'SIGKILL');
    for (let i = 0; i < 100 && alive(auditPid); i++) await new Promise((r) => setTimeout(r, 100));
    const db = new pg.Client({ connectionString: databaseUrl() });
    await db.connect();
    const aged = await db.query(
      `UPDATE ca_signer.outbox SET created_at = created_at - interval '10 minutes'
        WHERE producer = 'ca-signer' AND seq > COALESCE((SELECT sequence FROM ca_signer.audit_confirmations WHERE producer = 'ca-signer'), 0)`,
    );
    await db.end();
    expect(aged.rowCount).toBeGreaterThan(0);

    // The next make up stops them (the services first, PostgreSQL last) and starts afresh; it
    // says the PKI is running only once the audit log has confirmed those events.
    up = runUp(state, portBase);
    await up.waitFor(/The PKI is running/);
    expect(up.output()).toMatch(/ca-signer {2}waiting for the audit log to confirm the audit events of the last run \(issuance is refused until it does\)\.\.\.\n {2}audit {6}confirmed them: issuance is open\n/);
    const gate = await (await fetch(`${endpoints.ops['ca-signer']}/metrics`)).text();
    expect(gate).toMatch(/^audit_gate_open\{service="ca-signer"\} 1$/m);
    for (const service of SERVICES.filter((s) => s !== 'audit')) expect(up.output()).toMatch(new RegExp(`stopping ${service} \\(pid \\d+\\), left running by an earlier make up that did not stop cleanly`));
    expect(up.output()).toMatch(/stopping postgres \(pid \d+\), left running by an earlier make up that did not stop cleanly/);
    expect(orphans.filter(alive)).toEqual([]);
    expect(await activeIssuer()).toMatch(/^[0-9a-f]+$/);

    // The wrapper alone killed: the supervisor sees its parent gone and stops everything in order.
    const third = up;
    const running = readdirSync(path.join(state, 'run')).map((f) => Number(readFileSync(path.join(state, 'run', f), 'utf8')));
    process.kill(third.child.pid!, 'SIGKILL');
    await third.exited;
    for (let i = 0; i < 600 && running.some(alive); i++) await new Promise((r) => setTimeout(r, 100));
    expect(running.filter(alive)).toEqual([]);
    const log = readFileSync(path.join(state, 'logs', 'up.log'), 'utf8');
    expect(log).toMatch(/Z make up \(the wrapper in the terminal\) is gone; stopping\.\n\S+ stopping services\.\.\.\n\S+ stopped\.\n$/);
    expect(existsSync(path.join(state, 'postgres', 'data', 'postmaster.pid'))).toBe(false);
  });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function modeOf(file: string): number {
  return statSync(file).mode & 0o777;
}
