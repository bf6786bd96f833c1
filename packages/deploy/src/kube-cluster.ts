import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePorts, killFromPidFile } from '@pki/testing';

const run = promisify(execFile);

/**
 * A real Kubernetes control plane on loopback with no container runtime: etcd, kube-apiserver,
 * kube-controller-manager and kube-scheduler, and kwok simulating one node so that Deployments
 * get Running, Ready pods (nothing runs in them: images need not exist). The binaries are built
 * once per machine by scripts/install-k8s-tools.sh (linked at var/tools/k8s). Every port is
 * chosen free; everything, the Helm and kubectl homes included, lives in one folder removed by
 * stop(). shared/design/toolchain.md ("Kubernetes / Helm") has how each flag was found.
 */
export interface KubeCluster {
  dir: string;
  kubeconfig: string;
  /** The environment helm and kubectl run with: KUBECONFIG, KUBECACHEDIR, HELM_*_HOME of this cluster. */
  env: NodeJS.ProcessEnv;
  /** The name of the simulated node. */
  node: string;
  bin: (tool: KubeTool) => string;
  kubectl(args: readonly string[], options?: { input?: string; timeoutMs?: number }): Promise<string>;
  helm(args: readonly string[], options?: { timeoutMs?: number }): Promise<string>;
  stop(): Promise<void>;
  /** Milliseconds from the first process started to the node Ready. */
  startedInMs: number;
}

export type KubeTool = 'etcd' | 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler' | 'kubectl' | 'kwok' | 'helm';

export interface StartKubeOptions {
  /** Parent of the cluster's folder (default: the OS temp folder). */
  parentDir?: string;
  /** Labels of the simulated node (e.g. a zone, so that zone spreading can be satisfied). */
  nodeLabels?: Record<string, string>;
  startTimeoutMs?: number;
}

/** Where the binaries are: $PKI_K8S_TOOLS or <repo>/var/tools/k8s (scripts/install-k8s-tools.sh). */
export function findKubeTools(): string {
  const dir = process.env.PKI_K8S_TOOLS || path.resolve(__dirname, '..', '..', '..', 'var', 'tools', 'k8s');
  if (!existsSync(path.join(dir, '.done')) || !existsSync(path.join(dir, 'bin', 'kube-apiserver'))) {
    throw new Error(`kube harness: the control plane binaries are not at ${dir}: run scripts/install-k8s-tools.sh (make test does, through scripts/bootstrap.sh --with-kafka)`);
  }
  return dir;
}

export const KWOK_NODE_ANNOTATION = 'kwok.x-k8s.io/node';
const PID_FILE_SUFFIX = '.pid';
const OWNER_FILE = 'owner.pid';
const COMPONENTS: readonly KubeTool[] = ['kwok', 'kube-scheduler', 'kube-controller-manager', 'kube-apiserver', 'etcd'];

/**
 * A run killed before stop() (jest interrupted, a crash) leaves its processes and folder behind:
 * the next start stops them, in the same order as stop(), when the process that owned them is gone.
 */
function removeAbandonedClusters(parent: string): void {
  for (const name of readdirSync(parent).filter((n) => n.startsWith('kube-'))) {
    const dir = path.join(parent, name);
    let owner = 0;
    try {
      owner = Number(readFileSync(path.join(dir, OWNER_FILE), 'utf8').trim());
    } catch {
      continue; // not a cluster folder, or one being created
    }
    if (owner > 0 && existsSync(`/proc/${owner}`)) continue;
    for (const component of COMPONENTS) killFromPidFile(dir, `${component}${PID_FILE_SUFFIX}`);
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function startKubeCluster(options: StartKubeOptions = {}): Promise<KubeCluster> {
  const tools = findKubeTools();
  const bin = (tool: KubeTool) => path.join(tools, 'bin', tool);
  const parent = options.parentDir ?? tmpdir();
  mkdirSync(parent, { recursive: true });
  removeAbandonedClusters(parent);
  const dir = mkdtempSync(path.join(parent, 'kube-'));
  writeFileSync(path.join(dir, OWNER_FILE), `${process.pid}\n`);
  const deadline = Date.now() + (options.startTimeoutMs ?? 180_000);
  const started = Date.now();
  const processes: Array<{ name: string; child: ChildProcess }> = [];
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    KUBECONFIG: path.join(dir, 'admin.kubeconfig'),
    KUBECACHEDIR: path.join(dir, 'kube-cache'),
    HELM_CACHE_HOME: path.join(dir, 'helm', 'cache'),
    HELM_CONFIG_HOME: path.join(dir, 'helm', 'config'),
    HELM_DATA_HOME: path.join(dir, 'helm', 'data'),
  };

  const stop = async () => {
    // kwok, then scheduler and controller-manager, then the apiserver, etcd last: an apiserver
    // whose etcd went first can hang on shutdown.
    for (const p of [...processes].reverse()) await terminate(p.child);
    processes.length = 0;
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    const pki = path.join(dir, 'pki');
    mkdirSync(pki);
    await makeCertificates(pki);
    const [etcdClient, etcdPeer, apiPort] = (await freePorts(3)) as [number, number, number];
    const server = `https://127.0.0.1:${apiPort}`;
    writeFileSync(env.KUBECONFIG!, kubeconfig(server, pki));
    const launch = (name: KubeTool, args: string[]) => {
      const log = openSync(path.join(dir, `${name}.log`), 'a');
      const child = spawn(bin(name), args, { stdio: ['ignore', log, log], env, detached: false });
      writeFileSync(path.join(dir, `${name}${PID_FILE_SUFFIX}`), `${child.pid}\n`);
      processes.push({ name, child });
      child.once('exit', (code, signal) => {
        if (processes.some((p) => p.child === child)) exits.push(`${name} exited (${signal ?? code})`);
      });
      return child;
    };
    const exits: string[] = [];
    const failIfExited = () => {
      if (exits.length) throw new Error(`kube harness: ${exits.join(', ')}; logs in ${dir}:\n${tail(dir)}`);
    };

    launch('etcd', [
      `--data-dir=${path.join(dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
      // A test cluster: durability is not the point, and fsync on a shared disk is slow.
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    launch('kube-apiserver', [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--tls-cert-file=${pki}/apiserver.crt`,
      `--tls-private-key-file=${pki}/apiserver.key`,
      `--client-ca-file=${pki}/ca.crt`,
      '--service-cluster-ip-range=10.96.0.0/16',
      '--service-account-issuer=https://kubernetes.default.svc',
      `--service-account-key-file=${pki}/sa.pub`,
      `--service-account-signing-key-file=${pki}/sa.key`,
      '--authorization-mode=RBAC',
      // No kube-proxy and no real endpoints of the apiserver itself.
      '--endpoint-reconciler-type=none',
      '--profiling=false',
    ]);
    await waitUntil(deadline, 'the apiserver to be ready', failIfExited, async () => (await runTool(bin('kubectl'), ['get', '--raw', '/readyz'], env, 10_000)).trim() === 'ok');
    launch('kube-controller-manager', [
      `--kubeconfig=${env.KUBECONFIG}`,
      '--bind-address=127.0.0.1',
      '--secure-port=0',
      '--leader-elect=false',
      `--service-account-private-key-file=${pki}/sa.key`,
      `--root-ca-file=${pki}/ca.crt`,
      '--use-service-account-credentials=false',
      // HPAs need the metrics API, which no one serves here: the HPA controller would only log.
      '--controllers=*,-horizontal-pod-autoscaler-controller',
    ]);
    launch('kube-scheduler', [`--kubeconfig=${env.KUBECONFIG}`, '--bind-address=127.0.0.1', '--secure-port=0', '--leader-elect=false']);
    const stages = path.join(tools, 'kwok-stages');
    launch('kwok', [
      `--kubeconfig=${env.KUBECONFIG}`,
      '--manage-all-nodes=false',
      `--manage-nodes-with-annotation-selector=${KWOK_NODE_ANNOTATION}=fake`,
      '--node-port=0',
      '--server-address=',
      ...readdirSync(stages).filter((f) => f.endsWith('.yaml')).map((f) => `--config=${path.join(stages, f)}`),
    ]);

    const node = 'kwok-node-0';
    const labels = { 'kubernetes.io/hostname': node, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', type: 'kwok', ...options.nodeLabels };
    await runTool(bin('kubectl'), ['apply', '-f', '-'], env, 30_000, JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: node, annotations: { [KWOK_NODE_ANNOTATION]: 'fake' }, labels } }));
    // Pods are admitted only once the default ServiceAccount exists (controller-manager makes it).
    await waitUntil(deadline, 'the node to be Ready', failIfExited, async () => {
      const ready = await runTool(bin('kubectl'), ['get', 'node', node, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'], env, 10_000);
      return ready.trim() === 'True';
    });
    await waitUntil(deadline, 'the default ServiceAccount', failIfExited, async () => {
      await runTool(bin('kubectl'), ['get', 'serviceaccount', 'default', '-n', 'default'], env, 10_000);
      return true;
    });
    const startedInMs = Date.now() - started;
    return {
      dir,
      kubeconfig: env.KUBECONFIG!,
      env,
      node,
      bin,
      startedInMs,
      kubectl: (args, o = {}) => runTool(bin('kubectl'), args, env, o.timeoutMs ?? 60_000, o.input),
      helm: (args, o = {}) => runTool(bin('helm'), args, env, o.timeoutMs ?? 300_000),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Runs a tool; rejects with its stderr (the message a person would read) when it fails. */
export async function runTool(file: string, args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs: number, input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, [...args], { env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        const e = new Error(`${path.basename(file)} ${args.join(' ')} failed: ${stderr.trim() || err.message}`) as Error & { stderr: string; stdout: string };
        e.stderr = stderr;
        e.stdout = stdout;
        reject(e);
      } else resolve(stdout);
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

async function waitUntil(deadline: number, what: string, failIfExited: () => void, check: () => Promise<boolean>): Promise<void> {
  let last = '';
  for (;;) {
    failIfExited();
    try {
      if (await check()) return;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`kube harness: gave up waiting for ${what}${last ? ` (last: ${last})` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** A throwaway CA, the apiserver's serving certificate, an admin client certificate and the service-account key. */
async function makeCertificates(pki: string): Promise<void> {
  const openssl = (args: string[]) => run('openssl', args, { cwd: pki });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=test-kube-ca']);
  const leaf = async (name: string, subject: string, ext: string) => {
    writeFileSync(path.join(pki, `${name}.ext`), ext);
    await openssl(['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject]);
    await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`]);
  };
  await leaf('apiserver', '/CN=kube-apiserver', 'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n');
  await leaf('admin', '/O=system:masters/CN=test-admin', 'extendedKeyUsage=clientAuth\n');
  await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'sa.key']);
  await openssl(['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub']);
}

function kubeconfig(server: string, pki: string): string {
  const b64 = (f: string) => readFileSync(path.join(pki, f)).toString('base64');
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'test', cluster: { server, 'certificate-authority-data': b64('ca.crt') } }],
    users: [{ name: 'admin', user: { 'client-certificate-data': b64('admin.crt'), 'client-key-data': b64('admin.key') } }],
    contexts: [{ name: 'test', context: { cluster: 'test', user: 'admin', namespace: 'default' } }],
    'current-context': 'test',
  });
}

function tail(dir: string): string {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.log'))
    .map((f) => `--- ${f}\n${readFileSync(path.join(dir, f), 'utf8').split('\n').slice(-15).join('\n')}`)
    .join('\n');
}
