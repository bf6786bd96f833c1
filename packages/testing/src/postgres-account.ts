import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, lchownSync, lstatSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/**
 * Who runs PostgreSQL's server programs (initdb, pg_ctl, postgres) for this process. The server
 * refuses to run as root, and a clone of this repository usually sits in a folder only its owner
 * may enter (/root, a `mktemp -d` folder, a home folder of mode 0700), so "run it as the
 * `postgres` user" fails there: that user cannot reach the binaries or the data (issue 7).
 *
 * - `self`: we are not root; the server runs as us, on our own files.
 * - `user-namespace`: we are root. The server runs in a user namespace of its own in which our
 *   uid appears as `nobody`: PostgreSQL sees a non-root user that owns its data folder, while the
 *   kernel still checks every file access as the real owner (us) without any capability. So it
 *   reaches the clone wherever it is, its files stay ours (state is not left owned by another
 *   user), and no folder's mode or ACL changes. docs/decisions/0009-postgres-in-a-user-namespace.md.
 * - `postgres-user`: we are root where user namespaces are not available (some containers): the
 *   old way, `runuser -u postgres`, on folders handed to that user. It only works where that user
 *   can reach the folders; {@link assertReachable} says so clearly otherwise.
 */
export interface PostgresServerAccount {
  readonly kind: 'self' | 'user-namespace' | 'postgres-user';
  /** The command line that runs `file args` as this account. */
  command(file: string, args: readonly string[]): { file: string; args: string[] };
  /** Gives a file or folder to the account (only `postgres-user` owns files apart from us). */
  own(path: string): void;
  /**
   * Makes a whole tree (an existing data folder) the account's, e.g. one left by an older version
   * of `make up` that ran the server as the `postgres` user; returns whether anything changed.
   */
  adopt(path: string): boolean;
  /** Throws a clear error when the account cannot enter every folder on the way to `path`. */
  assertReachable(path: string, what: string): void;
}

/** The nobody user and nogroup: they exist on every Debian system, which initdb needs (it looks its user up). */
const NOBODY = 65_534;
const POSTGRES_USER = 'postgres';

let cached: PostgresServerAccount | undefined;

/** The account for this process (probed once: a user namespace costs one `unshare` run to test). */
export function postgresServerAccount(): PostgresServerAccount {
  cached ??= detect();
  return cached;
}

function detect(): PostgresServerAccount {
  const uid = process.getuid?.() ?? 0;
  if (uid !== 0) return selfAccount(uid, process.getgid?.() ?? 0);
  const probe = spawnSync('unshare', [...namespaceArgs(), 'true'], { stdio: 'ignore' });
  if (probe.status === 0) return namespaceAccount();
  return postgresUserAccount(probe.error ? probe.error.message : `unshare exited with ${probe.status}`);
}

function namespaceArgs(): string[] {
  return ['--user', `--map-user=${NOBODY}`, `--map-group=${NOBODY}`];
}

function selfAccount(uid: number, gid: number): PostgresServerAccount {
  return {
    kind: 'self',
    command: (file, args) => ({ file, args: [...args] }),
    own: () => undefined,
    adopt: (path) => adoptTree(path, uid, gid),
    assertReachable: () => undefined,
  };
}

function namespaceAccount(): PostgresServerAccount {
  return {
    kind: 'user-namespace',
    command: (file, args) => ({ file: 'unshare', args: [...namespaceArgs(), '--', file, ...args] }),
    own: () => undefined,
    // Inside the namespace only our own uid is mapped: files of any other owner are unreachable.
    adopt: (path) => adoptTree(path, 0, 0),
    assertReachable: () => undefined,
  };
}

function postgresUserAccount(whyNoNamespace: string): PostgresServerAccount {
  let ids: { uid: number; gid: number } | undefined;
  const postgres = () => {
    ids ??= {
      uid: Number(execFileSync('id', ['-u', POSTGRES_USER], { encoding: 'utf8' }).trim()),
      gid: Number(execFileSync('id', ['-g', POSTGRES_USER], { encoding: 'utf8' }).trim()),
    };
    return ids;
  };
  return {
    kind: 'postgres-user',
    // runuser keeps no controlling terminal and needs no password.
    command: (file, args) => ({ file: 'runuser', args: ['-u', POSTGRES_USER, '--', file, ...args] }),
    own: (path) => chownSync(path, postgres().uid, postgres().gid),
    adopt: (path) => adoptTree(path, postgres().uid, postgres().gid),
    assertReachable(path, what) {
      // The first folder upwards that the postgres user cannot enter, if any.
      let blocked: string | undefined;
      for (let dir = resolve(path); ; dir = dirname(dir)) {
        const ok = spawnSync('runuser', ['-u', POSTGRES_USER, '--', 'test', '-x', dir], { stdio: 'ignore' }).status === 0;
        if (!ok) blocked = dir;
        if (dirname(dir) === dir) break;
      }
      if (blocked !== undefined) {
        throw new Error(
          `PostgreSQL cannot reach ${what}: as root it runs as the '${POSTGRES_USER}' user (user namespaces are not available here: ${whyNoNamespace}), ` +
            `who may not enter ${blocked}. Clone the repository into a folder other users may enter, or run as an ordinary user`,
        );
      }
    },
  };
}

/** chown -R to uid:gid where needed (symlinks themselves, never their targets); whether anything changed. */
function adoptTree(path: string, uid: number, gid: number): boolean {
  let changed = false;
  const visit = (p: string) => {
    const stat = lstatSync(p);
    if (stat.uid !== uid || stat.gid !== gid) {
      if (process.getuid?.() !== 0) {
        throw new Error(`${p} belongs to uid ${stat.uid}, not to this user (uid ${uid}): it was made by another user`);
      }
      // lchown: a symlink in a data folder must not hand its target to anyone.
      lchownSync(p, uid, gid);
      changed = true;
    }
    if (stat.isDirectory()) for (const entry of readdirSync(p)) visit(join(p, entry));
  };
  visit(path);
  return changed;
}
