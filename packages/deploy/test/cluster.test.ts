import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CHART_DIR, findKubeTools, startKubeCluster, type KubeCluster } from '../src';
import { VALUES_FILES } from './helm';

/**
 * The chart against a real Kubernetes API server (etcd, kube-apiserver, controller-manager,
 * scheduler; kwok makes the pods Running and Ready on a simulated node, so nothing runs in them
 * and the images need not exist). For each values file: helm v4 installs it with --wait (server-
 * side apply: the API server refuses any field it does not know), upgrades it, rolls it back and
 * uninstalls it, every Deployment available on the node at each step. prometheus-operator's CRDs
 * are installed first so that the ServiceMonitor and PrometheusRule meet their real schemas.
 */

const REPO = path.resolve(__dirname, '..', '..', '..');
jest.setTimeout(900_000);

let cluster: KubeCluster;
const timings: string[] = [];

beforeAll(async () => {
  cluster = await startKubeCluster({ parentDir: path.join(REPO, 'var', 'test'), nodeLabels: { 'topology.kubernetes.io/zone': 'zone-a' } });
  timings.push(`control plane ready in ${cluster.startedInMs} ms`);
  const crds = path.join(findKubeTools(), 'crds');
  for (const f of readdirSync(crds).filter((n) => n.endsWith('.yaml'))) await cluster.kubectl(['apply', '--server-side', '-f', path.join(crds, f)]);
  await cluster.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/servicemonitors.monitoring.coreos.com', 'crd/prometheusrules.monitoring.coreos.com']);
}, 300_000);

afterAll(async () => {
  await cluster?.stop();
  // eslint-disable-next-line no-console -- the figures the report quotes
  console.log(timings.join('\n'));
});

interface Deployment { metadata: { name: string; generation: number }; spec: { replicas: number; template: { spec: { containers: Array<{ env?: Array<{ name: string; value?: string }> }> } } }; status: { availableReplicas?: number; updatedReplicas?: number; observedGeneration?: number } }

async function deployments(namespace: string): Promise<Deployment[]> {
  return (JSON.parse(await cluster.kubectl(['get', 'deployments', '-n', namespace, '-o', 'json'])) as { items: Deployment[] }).items;
}

/** Every Deployment has all its replicas available, each pod Running and Ready on the kwok node. */
async function expectAllAvailable(namespace: string, expected: number): Promise<void> {
  const list = await deployments(namespace);
  expect(list).toHaveLength(expected);
  for (const d of list) {
    expect({ name: d.metadata.name, available: d.status.availableReplicas, updated: d.status.updatedReplicas }).toEqual({ name: d.metadata.name, available: d.spec.replicas, updated: d.spec.replicas });
  }
  const pods = (JSON.parse(await cluster.kubectl(['get', 'pods', '-n', namespace, '-o', 'json'])) as { items: Array<{ metadata: { name: string; deletionTimestamp?: string }; spec: { nodeName: string }; status: { phase: string } }> }).items.filter((p) => !p.metadata.name.includes('migrations') && !p.metadata.deletionTimestamp);
  expect(pods.length).toBeGreaterThanOrEqual(expected);
  for (const p of pods) expect({ pod: p.metadata.name, node: p.spec.nodeName, phase: p.status.phase }).toEqual({ pod: p.metadata.name, node: cluster.node, phase: 'Running' });
}

/**
 * The Secrets and ConfigMaps the chart references by name (existingSecret): made by the
 * operator before the install, here with stand-in content (nothing runs in the pods).
 */
async function prerequisites(namespace: string): Promise<void> {
  await cluster.kubectl(['create', 'namespace', namespace]);
  const secrets: Record<string, string[]> = {
    'citizen-pki-database': ['ca-signer', 'ra', 'card-mgmt', 'ocsp', 'crl', 'audit'],
    'citizen-pki-hsm-pin': ['pin'],
    'citizen-pki-hsm-client': ['Chrystoki.conf'],
    'citizen-pki-softhsm': ['softhsm2.conf'],
    'citizen-pki-ra-personal-data': ['pd-1', 'lookup-1', 'reference'],
    'citizen-pki-card-mgmt-keys': ['admin-secret', 'transport', 'fingerprint'],
  };
  for (const s of ['ca-signer', 'ra', 'card-mgmt', 'ocsp', 'crl', 'audit']) secrets[`citizen-pki-${s}-tls`] = ['ca.crt', 'tls.crt', 'tls.key'];
  for (const s of ['ra', 'card-mgmt', 'audit', 'ocsp']) secrets[`citizen-pki-${s}-https`] = ['tls.crt', 'tls.key'];
  const objects = [
    ...Object.entries(secrets).map(([name, keys]) => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace }, stringData: Object.fromEntries(keys.map((k) => [k, 'stand-in'])) })),
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'citizen-pki-officer-ca', namespace }, data: { 'ca.crt': 'stand-in' } },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'citizen-pki-trust-anchors', namespace }, data: { 'root.pem': 'stand-in', 'issuing.pem': 'stand-in' } },
    // The network HSM's client software on a volume (production values): a PersistentVolume bound to the claim.
    { apiVersion: 'v1', kind: 'PersistentVolume', metadata: { name: `${namespace}-hsm-client` }, spec: { capacity: { storage: '1Gi' }, accessModes: ['ReadOnlyMany'], storageClassName: '', hostPath: { path: '/opt/hsm-client' }, claimRef: { namespace, name: 'hsm-client' } } },
    { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'hsm-client', namespace }, spec: { accessModes: ['ReadOnlyMany'], storageClassName: '', volumeName: `${namespace}-hsm-client`, resources: { requests: { storage: '1Gi' } } } },
  ];
  await cluster.kubectl(['apply', '--server-side', '--validate=strict', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }) });
}

describe.each(VALUES_FILES)('helm v4 with %s on a real API server', (file) => {
  const namespace = `pki-${file.replace(/^values-|\.yaml$/g, '')}`;
  const values = path.join(CHART_DIR, file);
  let count = 0;

  beforeAll(async () => {
    await prerequisites(namespace);
    count = (await cluster.helm(['template', 'pki', CHART_DIR, '-f', values, '-n', namespace])).match(/^kind: Deployment$/gm)!.length;
  });

  test('install --wait: every object accepted, the migration hook Job completes, every Deployment available', async () => {
    const started = Date.now();
    await cluster.helm(['install', 'pki', CHART_DIR, '-f', values, '-n', namespace, '--wait', '--timeout', '5m']);
    await expectAllAvailable(namespace, count);
    const status = JSON.parse(await cluster.helm(['status', 'pki', '-n', namespace, '-o', 'json'])) as { info: { status: string }; hooks?: Array<{ name: string; last_run?: { phase: string } }> };
    expect(status.info.status).toBe('deployed');
    // The hook ran and succeeded (then was deleted, hook-succeeded).
    expect(status.hooks?.find((h) => h.name === 'pki-citizen-pki-migrations')?.last_run?.phase).toBe('Succeeded');
    timings.push(`${file}: install --wait ${Date.now() - started} ms`);
  });

  test('upgrade --wait rolls the pods to the new configuration, rollback returns to the first, uninstall removes everything', async () => {
    let started = Date.now();
    await cluster.helm(['upgrade', 'pki', CHART_DIR, '-f', values, '-n', namespace, '--set', 'logLevel=debug', '--wait', '--timeout', '5m']);
    await expectAllAvailable(namespace, count);
    const configOf = async () => JSON.parse(await cluster.kubectl(['get', 'configmap', 'pki-citizen-pki-ocsp-config', '-n', namespace, '-o', 'jsonpath={.data.config\\.json}'])) as { log: { level: string } };
    expect((await configOf()).log.level).toBe('debug');
    timings.push(`${file}: upgrade --wait ${Date.now() - started} ms`);

    started = Date.now();
    await cluster.helm(['rollback', 'pki', '1', '-n', namespace, '--wait', '--timeout', '5m']);
    await expectAllAvailable(namespace, count);
    expect((await configOf()).log.level).toBe('info');
    const history = JSON.parse(await cluster.helm(['history', 'pki', '-n', namespace, '-o', 'json'])) as Array<{ revision: number; status: string }>;
    expect(history.map((h) => [h.revision, h.status])).toEqual([
      [1, 'superseded'],
      [2, 'superseded'],
      [3, 'deployed'],
    ]);
    timings.push(`${file}: rollback --wait ${Date.now() - started} ms`);

    started = Date.now();
    await cluster.helm(['uninstall', 'pki', '-n', namespace, '--wait', '--timeout', '5m']);
    expect(await deployments(namespace)).toEqual([]);
    // The pods go after their ReplicaSets, through the garbage collector: wait for it, generously.
    const left = () => cluster.kubectl(['get', 'all,configmaps,networkpolicies,poddisruptionbudgets,serviceaccounts,horizontalpodautoscalers,servicemonitors,prometheusrules', '-n', namespace, '-l', 'app.kubernetes.io/instance=pki', '-o', 'name']);
    const until = Date.now() + 120_000;
    while ((await left()).trim() !== '' && Date.now() < until) await new Promise((r) => setTimeout(r, 250));
    expect((await left()).trim()).toBe('');
    timings.push(`${file}: uninstall --wait ${Date.now() - started} ms`);
  });
});

describe('the API server refuses what it does not know', () => {
  test('a chart change that adds an unknown field fails the install, naming the field', async () => {
    const namespace = 'pki-unknown-field';
    await prerequisites(namespace);
    const copy = mkdtempSync(path.join(cluster.dir, 'chart-'));
    cpSync(CHART_DIR, copy, { recursive: true });
    const template = path.join(copy, 'templates', 'services.yaml');
    const original = readFileSync(template, 'utf8');
    // A typo a person could make: terminationGracePeriod instead of terminationGracePeriodSeconds.
    const changed = original.replace('      terminationGracePeriodSeconds: 45', '      terminationGracePeriodSeconds: 45\n      terminationGracePeriod: 45');
    expect(changed).not.toBe(original);
    writeFileSync(template, changed);
    const failure = await cluster.helm(['install', 'pki', copy, '-f', path.join(copy, 'values-minimal.yaml'), '-n', namespace, '--wait', '--timeout', '2m']).then(
      () => 'installed',
      (err: Error) => err.message,
    );
    // Server-side apply refuses it for every Deployment, naming the field.
    expect(failure).toMatch(/INSTALLATION FAILED/);
    expect(failure).toMatch(/\.spec\.template\.spec\.terminationGracePeriod: field not declared in schema/);
    expect(await deployments(namespace)).toEqual([]);
    await cluster.helm(['uninstall', 'pki', '-n', namespace, '--wait']);
    // The same chart without the change installs (the field is what failed, not the namespace).
    writeFileSync(template, original);
    await cluster.helm(['install', 'pki', copy, '-f', path.join(copy, 'values-minimal.yaml'), '-n', namespace, '--wait', '--timeout', '5m']);
    await cluster.helm(['uninstall', 'pki', '-n', namespace, '--wait']);
  });

  test('a values file with a wrong type or an unknown key is refused before anything reaches the server', async () => {
    const dir = path.join(cluster.dir, 'bad-values');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'wrong-type.yaml'), 'crl:\n  replicas: "3"\n');
    writeFileSync(path.join(dir, 'unknown-key.yaml'), 'caSigner:\n  hsm:\n    pinFile: /tmp/pin\n');
    const attempt = (f: string) =>
      cluster.helm(['install', 'pki', CHART_DIR, '-f', path.join(dir, f), '-n', 'default']).then(
        () => 'installed',
        (err: Error) => err.message,
      );
    const wrongType = await attempt('wrong-type.yaml');
    expect(wrongType).toMatch(/\/crl\/replicas/);
    expect(wrongType).toMatch(/integer/);
    const unknownKey = await attempt('unknown-key.yaml');
    expect(unknownKey).toMatch(/\/caSigner\/hsm/);
    expect(unknownKey).toMatch(/pinFile/);
    expect(await cluster.helm(['list', '-A', '-q'])).toBe('');
  });
});
