import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Registry } from 'prom-client';
import { freePort, postgresServerAccount, startPostgres } from '@pki/testing';
import { devLayout } from '../src/layout';
import { devDatabaseProcess, embeddedPostgresBinaries, ensureDevCluster } from '../src/database';
import { Supervisor } from '../src/supervisor';
import { REPO } from './run-up';

/**
 * Both PostgreSQL servers the project starts (the embedded one behind `make up`, the harness's
 * behind `make test`) from a real clone where a newcomer puts it: in a `mktemp -d` folder (mode
 * 0700, only its owner may enter; as root this is what broke: the server could not reach the
 * clone), and under a path with spaces. Nothing may be made world-writable to get there, and the
 * state stays the clone owner's.
 */
jest.setTimeout(240_000);

const places: Array<[string, (parent: string) => string]> = [
  ['a clone in a 0700 folder', (parent) => path.join(parent, 'citizen-pki')],
  ['a clone under a path with spaces', (parent) => path.join(parent, 'my projects', 'citizen pki')],
];

describe.each(places)('PostgreSQL from %s', (_name, placeIn) => {
  let parent: string;
  let clone: string;
  let binDir: string;

  beforeAll(() => {
    // mkdtemp makes the folder 0700, like `mktemp -d` and like /root.
    parent = mkdtempSync(path.join(tmpdir(), 'clone-location-'));
    expect(statSync(parent).mode & 0o777).toBe(0o700);
    clone = placeIn(parent);
    mkdirSync(path.dirname(clone), { recursive: true });
    execFileSync('git', ['clone', '--quiet', '--shared', REPO, clone]);
    // The clone's own copy of the embedded PostgreSQL binaries, where its install puts them
    // (node_modules is not in git): hard links when on the same file system, else a copy.
    const native = realpathSync(path.join(embeddedPostgresBinaries(), '..'));
    const target = path.join(clone, path.relative(REPO, native));
    mkdirSync(path.dirname(target), { recursive: true });
    try {
      execFileSync('cp', ['-al', native, target]);
    } catch {
      rmSync(target, { recursive: true, force: true });
      execFileSync('cp', ['-a', native, target]);
    }
    binDir = path.join(target, 'bin');
  });
  afterAll(() => rmSync(parent, { recursive: true, force: true }));

  it("runs the embedded PostgreSQL of make up on its data inside the clone", async () => {
    const layout = devLayout(clone, path.join(clone, 'var', 'dev'));
    const database = { binDir, dataDir: path.join(layout.postgres, 'data'), logFile: path.join(clone, 'postgres.log'), port: await freePort(), password: 'clone-test-password' };
    expect(await ensureDevCluster(database)).toBe('created');
    const supervisor = new Supervisor({ say: () => undefined, pidDir: layout.run, registry: new Registry() });
    try {
      await supervisor.start(devDatabaseProcess(database));
      const client = new pg.Client({ connectionString: `postgres://postgres:${database.password}@127.0.0.1:${database.port}/postgres` });
      await client.connect();
      const { rows } = await client.query<{ dir: string }>("SELECT current_setting('data_directory') AS dir");
      await client.end();
      expect(rows[0]!.dir).toBe(database.dataDir);
    } finally {
      await supervisor.stopAll();
    }
    // Started again on the same data: the cluster is reused, not re-created.
    expect(await ensureDevCluster(database)).toBe('reused');
    expectPrivateState(parent, path.join(clone, 'var'));
    if (postgresServerAccount().kind !== 'postgres-user') expect(statSync(database.dataDir).uid).toBe(process.getuid!());
  });

  it("runs the test harness's PostgreSQL in the clone's var/test", async () => {
    const server = await startPostgres({ dir: path.join(clone, 'var', 'test') });
    try {
      const client = new pg.Client({ connectionString: server.url });
      await client.connect();
      const { rows } = await client.query<{ dir: string }>("SELECT current_setting('data_directory') AS dir");
      await client.end();
      expect(rows[0]!.dir.startsWith(path.join(clone, 'var', 'test') + path.sep)).toBe(true);
      expectPrivateState(parent, path.join(clone, 'var'));
    } finally {
      await server.stop();
    }
  });
});

/** The folder holding the clone is still closed to others, and nothing under `dir` is writable by others. */
function expectPrivateState(parent: string, dir: string): void {
  expect(statSync(parent).mode & 0o777).toBe(0o700);
  const worldWritable: string[] = [];
  const walk = (p: string) => {
    const stat = lstatSync(p);
    if (!stat.isSymbolicLink() && stat.mode & 0o002) worldWritable.push(p);
    if (stat.isDirectory()) for (const entry of readdirSync(p)) walk(path.join(p, entry));
  };
  walk(dir);
  expect(worldWritable).toEqual([]);
}
