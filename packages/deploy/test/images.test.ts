import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { createTestDatabase } from '@pki/testing';
import { lintDockerfile } from '../src';
import { REPO, startUp, type RunningUp } from '../../devstack/test/run-up';

/**
 * The images without a Docker engine (decision 0032): the Dockerfile is linted, and each
 * service's production pack, made by the same script the image build runs
 * (deploy/images/pack-service.sh: `pnpm deploy --prod`, sources and tests stripped), is started
 * as the image would start it: the whole embedded deployment runs from the packs
 * (PKI_DEV_SERVICES_DIR) and every service answers its health endpoint; each pack's migrate.js
 * (the chart's migration Job) applies its schema to a real PostgreSQL.
 */

const run = promisify(execFile);
const SERVICES = ['ca-signer', 'ra', 'card-mgmt', 'ocsp', 'crl', 'audit'] as const;
const DOCKERFILE = path.join(REPO, 'deploy', 'images', 'Dockerfile');

jest.setTimeout(600_000);

describe('deploy/images/Dockerfile', () => {
  test('passes the lint: dockerfile-utils and the project rules (non-root, Node 24 slim, nothing installed in the final stages)', () => {
    expect(lintDockerfile(readFileSync(DOCKERFILE, 'utf8'), SERVICES)).toEqual([]);
  });

  test('the lint catches a final stage that runs as root, installs a compiler or copies from a stage that does not exist', () => {
    const good = readFileSync(DOCKERFILE, 'utf8');
    const bad = good.replace('FROM runtime AS ocsp\nCOPY --from=build /out/ocsp /app\nUSER 10001:10001', 'FROM runtime AS ocsp\nRUN apt-get install -y gcc\nCOPY --from=bulid /out/ocsp /app\nUSER root');
    expect(bad).not.toBe(good);
    const problems = lintDockerfile(bad, SERVICES).join('\n');
    expect(problems).toMatch(/stage ocsp must end as a numeric non-root USER/);
    expect(problems).toMatch(/stage ocsp runs a command/);
    expect(problems).toMatch(/COPY --from=bulid names no earlier stage/);
    expect(lintDockerfile(good.replace(/node:24\.[0-9.]+-bookworm-slim/, 'node:22-bookworm'), SERVICES).join('\n')).toMatch(/Node 24 slim/);
    expect(lintDockerfile(good.replace('FROM runtime AS crl', 'FROM build AS crl'), SERVICES).join('\n')).toMatch(/stage crl must be built FROM runtime/);
  });
});

describe('the production pack of every service', () => {
  let parent: string;
  let packs: string;
  let up: RunningUp | undefined;

  beforeAll(async () => {
    const testRoot = path.join(REPO, 'var', 'test');
    mkdirSync(testRoot, { recursive: true });
    parent = mkdtempSync(path.join(testRoot, 'packs-'));
    // The deployment keeps secrets in its state folder: nobody else may enter (as make up expects).
    chmodSync(parent, 0o700);
    packs = path.join(parent, 'packs');
    for (const service of SERVICES) await run(path.join(REPO, 'deploy', 'images', 'pack-service.sh'), [service, path.join(packs, service)], { cwd: REPO, maxBuffer: 16 * 1024 * 1024 });
  });
  afterAll(async () => {
    if (up && up.child.exitCode === null) {
      up.child.kill('SIGTERM');
      await up.exited;
    }
    delete process.env.PKI_DEV_SERVICES_DIR;
    rmSync(parent, { recursive: true, force: true });
  });

  test('holds compiled code, migrations and production dependencies only', () => {
    for (const service of SERVICES) {
      const dir = path.join(packs, service);
      const entries = readdirSync(dir);
      expect({ service, built: ['dist', 'node_modules', 'package.json'].every((e) => entries.includes(e)), migrations: entries.includes('migrations') }).toEqual({ service, built: true, migrations: existsSync(path.join(REPO, 'services', service, 'migrations')) });
      expect({ service, buildFiles: entries.filter((e) => ['src', 'test'].includes(e) || /^tsconfig.*\.json$|\.tsbuildinfo$/.test(e)) }).toEqual({ service, buildFiles: [] });
      const store = readdirSync(path.join(dir, 'node_modules', '.pnpm'));
      const devOnly = store.filter((p) => /^(typescript|jest|@swc\+|eslint|@types\+|ts-|@jest\+|typescript-eslint|@bufbuild\+buf|@bufbuild\+protoc-gen-es)(@|$)/.test(p));
      expect({ service, devOnly }).toEqual({ service, devOnly: [] });
      // The pack's workspace packages carry their build output, not their sources.
      for (const pkg of store.filter((p) => p.startsWith('@pki+'))) {
        const root = path.join(dir, 'node_modules', '.pnpm', pkg, 'node_modules', '@pki', pkg.replace(/^@pki\+/, '').replace(/@.*$/, ''));
        expect({ pkg, src: existsSync(path.join(root, 'src')), dist: existsSync(path.join(root, 'dist')) }).toEqual({ pkg, src: false, dist: true });
      }
    }
  });

  test("each pack's migrate.js (the chart's migration Job) applies its schema, again without change, and refuses bad arguments", async () => {
    const url = await createTestDatabase('packs');
    for (const service of SERVICES) {
      const migrate = path.join(packs, service, 'dist', 'migrate.js');
      const schema = service.replace('-', '_');
      await run(process.execPath, [migrate, '--schema', schema, '--url', url], { cwd: path.join(packs, service) });
      await run(process.execPath, [migrate, '--schema', schema, '--url', url], { cwd: path.join(packs, service) });
    }
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      for (const service of SERVICES) {
        const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${service.replace('-', '_')}.schema_migrations`);
        expect({ service, applied: Number(rows[0]!.n) > 0 }).toEqual({ service, applied: true });
      }
    } finally {
      await client.end();
    }
    const bad = await run(process.execPath, [path.join(packs, 'ocsp', 'dist', 'migrate.js'), '--schema', 'Bad-Schema', '--url', url]).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stderr: `${err.stdout}${err.stderr}` }),
    );
    expect(bad.code).toBe(64);
    expect(bad.stderr).toMatch(/--schema must be a lower-case SQL identifier/);
  });

  test('every service starts from its pack with the embedded configuration and answers /readyz', async () => {
    process.env.PKI_DEV_SERVICES_DIR = packs;
    let state: string;
    ({ up, state } = await startUp((attempt) => path.join(parent, attempt === 1 ? 'state' : `state-${attempt}`), 480_000));
    const endpoints = JSON.parse(readFileSync(path.join(state, 'endpoints.json'), 'utf8')) as { ops: Record<string, string> };
    for (const service of SERVICES) {
      // The process serving is the pack's, not the workspace's build.
      const pid = Number(readFileSync(path.join(state, 'run', `${service}.pid`), 'utf8'));
      expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')).toContain(path.join(packs, service, 'dist', 'main.js'));
      const res = await fetch(`${endpoints.ops[service]}/readyz`);
      expect({ service, status: res.status }).toEqual({ service, status: 200 });
    }
    up.child.kill('SIGINT');
    expect(await up.exited).toEqual({ code: 0, signal: null });
  });
});
