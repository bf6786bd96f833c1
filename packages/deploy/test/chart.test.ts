import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { GRPC_ALLOW_LISTS, allowListsWithIdentities, grpcCallersOf, type GrpcServerName } from '@pki/grpc';
import { parseConfig, type z } from '@pki/kit';
import { caSignerConfigSchema } from '@pki/ca-signer';
import { raConfigSchema } from '@pki/ra';
import { cardMgmtConfigSchema } from '@pki/card-mgmt';
import { ocspConfigSchema } from '@pki/ocsp';
import { crlConfigSchema } from '@pki/crl';
import { auditConfigSchema } from '@pki/audit';
import { ALLOW_LISTS_FILE, CHART_DIR, allowListsJson } from '../src';
import { VALUES_FILES, helmRunner, renderChart, type K8sObject } from './helm';

const REPO = path.resolve(__dirname, '..', '..', '..');
const SCHEMAS: Record<string, z.ZodType> = {
  'ca-signer': caSignerConfigSchema,
  ra: raConfigSchema,
  'card-mgmt': cardMgmtConfigSchema,
  ocsp: ocspConfigSchema,
  crl: crlConfigSchema,
  audit: auditConfigSchema,
};
const SERVICES = Object.keys(SCHEMAS);

type PodSpec = { containers: Array<{ name: string; volumeMounts?: Array<{ name: string; mountPath: string }> }>; initContainers?: PodSpec['containers']; volumes?: Array<Record<string, unknown> & { name: string }> };
const podSpecOf = (o: K8sObject) => (o.spec as { template: { spec: PodSpec } }).template.spec;
const component = (o: K8sObject) => o.metadata.labels?.['app.kubernetes.io/component'];

let runner: ReturnType<typeof helmRunner>;
const rendered = new Map<string, K8sObject[]>();

/** A certificate in PEM for the files a pod would hold as certificates. */
const STAND_IN_CERTIFICATE = (() => {
  const dir = mkdtempSync(path.join(tmpdir(), 'chart-cert-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=stand-in', '-days', '1', '-keyout', path.join(dir, 'k.pem'), '-out', path.join(dir, 'c.pem')], { stdio: 'ignore' });
    return readFileSync(path.join(dir, 'c.pem'), 'utf8');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
})();

beforeAll(async () => {
  runner = helmRunner();
  for (const file of VALUES_FILES) rendered.set(file, await renderChart(runner.helm, file));
}, 120_000);
afterAll(() => runner?.dispose());

describe('the chart data generated from the allow-lists', () => {
  test('files/allow-lists.json is what packages/grpc/src/allow-lists.ts generates (run `make chart-data` when this fails)', () => {
    expect(readFileSync(ALLOW_LISTS_FILE, 'utf8')).toBe(allowListsJson());
  });
});

describe('helm lint --strict', () => {
  test.each<[string, string | undefined]>([['values.yaml (defaults)', undefined], ...VALUES_FILES.map((f): [string, string] => [f, f])])('%s passes', async (_name, file) => {
    const args = ['lint', '--strict', CHART_DIR];
    if (file) args.push('-f', path.join(CHART_DIR, file));
    const out = await runner.helm(args);
    expect(out).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
  });
});

describe.each(VALUES_FILES)('rendered with %s', (file) => {
  const objects = () => rendered.get(file)!;
  const deployments = () => objects().filter((o) => o.kind === 'Deployment');

  test('every service has a Deployment, a Service and a ServiceAccount, labelled app.kubernetes.io/*', () => {
    for (const kind of ['Deployment', 'Service', 'ServiceAccount', 'ConfigMap', 'NetworkPolicy']) {
      const names = objects().filter((o) => o.kind === kind && SERVICES.includes(component(o) ?? '')).map(component).sort();
      expect({ kind, names }).toEqual({ kind, names: [...SERVICES].sort() });
    }
    for (const o of objects()) {
      expect({ object: `${o.kind}/${o.metadata.name}`, labels: Object.keys(o.metadata.labels ?? {}).filter((k) => k.startsWith('app.kubernetes.io/')).sort() }).toEqual({
        object: `${o.kind}/${o.metadata.name}`,
        labels: ['app.kubernetes.io/component', 'app.kubernetes.io/instance', 'app.kubernetes.io/managed-by', 'app.kubernetes.io/name', 'app.kubernetes.io/part-of', 'app.kubernetes.io/version'],
      });
    }
  });

  test("each service's config passes that service's own config schema, and every file it names is mounted", () => {
    const root = mkdtempSync(path.join(tmpdir(), 'chart-config-'));
    try {
      for (const service of SERVICES) {
        const configMap = objects().find((o) => o.kind === 'ConfigMap' && o.metadata.name === `pki-citizen-pki-${service}-config`)!;
        const config = JSON.parse((configMap.data as Record<string, string>)['config.json']!) as unknown;
        const deployment = deployments().find((d) => component(d) === service)!;
        const mounts = podSpecOf(deployment).containers[0]!.volumeMounts!.map((m) => m.mountPath);
        const paths: string[] = [];
        // Files the pod would hold: written under a temporary root with stand-in content, so that
        // the schema's secret-file keys read something, exactly as they would in the pod.
        const relocated = JSON.parse(JSON.stringify(config), (_key, value: unknown) => {
          if (typeof value !== 'string' || !value.startsWith('/etc/pki/')) return value;
          paths.push(value);
          const local = path.join(root, value);
          mkdirSync(path.dirname(local), { recursive: true });
          // Certificates are read as PEM by the schemas that load them (the responder's HTTPS listener).
          writeFileSync(local, value.endsWith('/database/url') ? 'postgres://pki:secret@db.example:5432/pki' : value.endsWith('.crt') ? STAND_IN_CERTIFICATE : 'a'.repeat(64));
          return local;
        }) as unknown;
        expect(() => parseConfig(SCHEMAS[service]!, relocated, `${service} (${file})`)).not.toThrow();
        for (const p of paths) expect({ service, path: p, mounted: mounts.some((m) => p.startsWith(`${m}/`)) }).toEqual({ service, path: p, mounted: true });
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test("the gRPC servers' allow blocks are the allow-lists' (packages/grpc/src/allow-lists.ts)", () => {
    for (const server of Object.keys(GRPC_ALLOW_LISTS) as GrpcServerName[]) {
      const configMap = objects().find((o) => o.kind === 'ConfigMap' && o.metadata.name === `pki-citizen-pki-${server}-config`)!;
      const config = JSON.parse((configMap.data as Record<string, string>)['config.json']!) as { allow: unknown };
      expect(config.allow).toEqual(allowListsWithIdentities(server, (s) => `spiffe://pki.internal/${s}`));
    }
  });

  test('the NetworkPolicies admit on each gRPC port exactly the services its allow-lists name, and no gRPC port elsewhere', () => {
    const policies = objects().filter((o) => o.kind === 'NetworkPolicy');
    for (const service of SERVICES) {
      const policy = policies.find((p) => component(p) === service)!;
      const spec = policy.spec as { podSelector: { matchLabels: Record<string, string> }; ingress: Array<{ ports: Array<{ port: string }>; from?: Array<{ podSelector?: { matchLabels: Record<string, string> } }> }> };
      expect(spec.podSelector.matchLabels['app.kubernetes.io/component']).toBe(service);
      const grpcRules = spec.ingress.filter((r) => r.ports.some((p) => p.port === 'grpc'));
      if (!(service in GRPC_ALLOW_LISTS)) {
        expect({ service, grpcRules }).toEqual({ service, grpcRules: [] });
        continue;
      }
      expect(grpcRules).toHaveLength(1);
      const from = grpcRules[0]!.from ?? [];
      // Every peer is a pod of this release, named by component; nothing else may reach the port.
      for (const peer of from) expect(Object.keys(peer)).toEqual(['podSelector']);
      const allowed = from.map((p) => p.podSelector!.matchLabels['app.kubernetes.io/component']).sort();
      expect({ service, allowed }).toEqual({ service, allowed: grpcCallersOf(service as GrpcServerName).sort() });
      expect(from.every((p) => p.podSelector!.matchLabels['app.kubernetes.io/instance'] === 'pki')).toBe(true);
    }
  });

  test('only ca-signer mounts the PKCS#11 module, its configuration and the HSM PIN', () => {
    const values = parseYaml(readFileSync(path.join(CHART_DIR, 'values.yaml'), 'utf8')) as { caSigner: { hsm: { pin: { existingSecret: string }; config: { existingSecret: string } } } };
    const overrides = parseYaml(readFileSync(path.join(CHART_DIR, file), 'utf8')) as { caSigner?: { hsm?: { pin?: { existingSecret?: string }; config?: { existingSecret?: string } } } };
    const hsmSecrets = new Set([overrides.caSigner?.hsm?.pin?.existingSecret ?? values.caSigner.hsm.pin.existingSecret, overrides.caSigner?.hsm?.config?.existingSecret ?? values.caSigner.hsm.config.existingSecret]);
    const workloads = objects().filter((o) => o.kind === 'Deployment' || o.kind === 'Job');
    for (const w of workloads) {
      const spec = podSpecOf(w);
      const hsmVolumes = (spec.volumes ?? []).filter((v) => v.name.startsWith('hsm-') || hsmSecrets.has((v.secret as { secretName?: string } | undefined)?.secretName ?? ''));
      const mountsPkcs11 = [...spec.containers, ...(spec.initContainers ?? [])].some((c) => (c.volumeMounts ?? []).some((m) => m.mountPath === '/opt/pkcs11' || m.mountPath.startsWith('/etc/pki/secrets/hsm')));
      const isCaSigner = w.kind === 'Deployment' && component(w) === 'ca-signer';
      expect({ workload: w.metadata.name, hsmVolumes: hsmVolumes.map((v) => v.name).sort(), mountsPkcs11 }).toEqual({
        workload: w.metadata.name,
        hsmVolumes: isCaSigner ? ['hsm-config', 'hsm-module', 'hsm-pin'] : [],
        mountsPkcs11: isCaSigner,
      });
    }
  });

  test('pods run as non-root on a read-only root filesystem, with probes on the ops port and resources', () => {
    for (const d of deployments()) {
      const spec = podSpecOf(d) as PodSpec & { securityContext: { runAsNonRoot: boolean }; automountServiceAccountToken: boolean };
      expect(spec.securityContext.runAsNonRoot).toBe(true);
      expect(spec.automountServiceAccountToken).toBe(false);
      const c = spec.containers[0] as unknown as { securityContext: Record<string, unknown>; readinessProbe: { httpGet: { path: string; port: string } }; livenessProbe: { httpGet: { path: string } }; resources: { requests: object; limits: object } };
      expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
      expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'ops' });
      expect(c.livenessProbe.httpGet.path).toBe('/livez');
      expect(c.resources.requests).toBeDefined();
      expect(c.resources.limits).toBeDefined();
    }
  });

  test('database migrations run as a pre-install/pre-upgrade hook Job with only the database Secret', () => {
    const job = objects().find((o) => o.kind === 'Job')!;
    expect(job.metadata.annotations!['helm.sh/hook']).toBe('pre-install,pre-upgrade');
    const spec = podSpecOf(job) as PodSpec & { initContainers: Array<{ name: string; command: string[] }> };
    expect(spec.initContainers.map((c) => c.name)).toEqual(SERVICES.map((s) => `migrate-${s}`));
    for (const c of spec.initContainers) expect(c.command.slice(0, 2)).toEqual(['node', 'dist/migrate.js']);
    expect(spec.volumes!.map((v) => v.name)).toEqual(['database']);
  });
});

describe('what differs between the values files', () => {
  test('ocsp and crl are autoscaled (an HPA instead of a fixed replica count) where the values say so', () => {
    for (const file of VALUES_FILES) {
      const hpas = rendered.get(file)!.filter((o) => o.kind === 'HorizontalPodAutoscaler').map(component).sort();
      expect({ file, hpas }).toEqual({ file, hpas: file === 'values-minimal.yaml' ? [] : ['crl', 'ocsp'] });
      for (const d of rendered.get(file)!.filter((o) => o.kind === 'Deployment' && hpas.includes(component(o)))) expect((d.spec as { replicas?: number }).replicas).toBeUndefined();
    }
  });

  test('high availability enforces zone spreading and a PodDisruptionBudget per service', () => {
    const ha = rendered.get('values-ha.yaml')!;
    expect(ha.filter((o) => o.kind === 'PodDisruptionBudget').map(component).sort()).toEqual([...SERVICES].sort());
    for (const d of ha.filter((o) => o.kind === 'Deployment')) {
      const spread = (podSpecOf(d) as unknown as { topologySpreadConstraints: Array<{ topologyKey: string; whenUnsatisfiable: string }> }).topologySpreadConstraints;
      expect(spread.find((s) => s.topologyKey === 'topology.kubernetes.io/zone')!.whenUnsatisfiable).toBe('DoNotSchedule');
    }
  });

  test('production and HA render the ServiceMonitor, the PrometheusRule and the dashboard', () => {
    for (const file of ['values-production.yaml', 'values-ha.yaml']) {
      expect(rendered.get(file)!.filter((o) => ['ServiceMonitor', 'PrometheusRule'].includes(o.kind)).map((o) => o.kind).sort()).toEqual(['PrometheusRule', 'ServiceMonitor']);
      expect(rendered.get(file)!.some((o) => o.kind === 'ConfigMap' && o.metadata.name.endsWith('-dashboard'))).toBe(true);
    }
  });
});

describe('values.schema.json refuses bad values with a message naming them', () => {
  const bad = async (values: string) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bad-values-'));
    try {
      writeFileSync(path.join(dir, 'bad.yaml'), values);
      return await runner.helm(['template', 'pki', CHART_DIR, '-f', path.join(dir, 'bad.yaml')]).then(
        () => 'accepted',
        (err: Error) => err.message,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  test('a wrong type', async () => {
    const message = await bad('ocsp:\n  replicas: two\n');
    expect(message).toMatch(/values don't meet the specifications of the schema/);
    expect(message).toMatch(/\/ocsp\/replicas/);
    expect(message).toMatch(/integer/);
  });

  test('an unknown key', async () => {
    const message = await bad('ocsp:\n  threadz: 4\n');
    expect(message).toMatch(/\/ocsp/);
    expect(message).toMatch(/threadz/);
  });

  test('a value out of range and a bad enum', async () => {
    expect(await bad('caSigner:\n  hsm:\n    sessionPoolSize: 0\n')).toMatch(/\/caSigner\/hsm\/sessionPoolSize/);
    expect(await bad('events:\n  transport: rabbitmq\n')).toMatch(/\/events\/transport/);
  });

  test('Kafka without brokers, and a writable root filesystem', async () => {
    expect(await bad('events:\n  transport: kafka\n  kafka:\n    brokers: []\n')).toMatch(/\/events\/kafka\/brokers/);
    expect(await bad('containerSecurityContext:\n  readOnlyRootFilesystem: false\n')).toMatch(/\/containerSecurityContext\/readOnlyRootFilesystem/);
  });
});

describe('monitoring', () => {
  const metricNames = (() => {
    const names = new Set<string>();
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        if (entry.name === 'node_modules' || entry.name === 'dist') continue;
        const p = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(p);
        else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) {
          for (const m of readFileSync(p, 'utf8').matchAll(/(?:name: |counter\()'([a-z_]+)'/g)) names.add(m[1]!);
        }
      }
    };
    walk(path.join(REPO, 'services'));
    walk(path.join(REPO, 'packages'));
    return names;
  })();
  const usedIn = (text: string) => [...new Set([...text.matchAll(/\b((?:hsm|ocsp|crl|audit|outbox|grpc_server|http_request)[a-z_]*)\b/g)].map((m) => m[1]!.replace(/_(bucket|sum|count)$/, '')))];

  test('the alerts and the dashboard use only metrics the services export', () => {
    const alerts = readFileSync(path.join(CHART_DIR, 'files', 'alerts.yaml'), 'utf8');
    const dashboard = readFileSync(path.join(CHART_DIR, 'files', 'dashboard.json'), 'utf8');
    const exprs = [...(parseYaml(alerts) as Array<{ expr: string }>).map((r) => r.expr), ...[...dashboard.matchAll(/"expr": "([^"]+)"/g)].map((m) => m[1]!)];
    const used = usedIn(exprs.join('\n'));
    expect(used.length).toBeGreaterThan(20);
    expect(used.filter((m) => !metricNames.has(m))).toEqual([]);
  });

  test('every alert is explained in docs/operations/alerts.md', () => {
    const rules = parseYaml(readFileSync(path.join(CHART_DIR, 'files', 'alerts.yaml'), 'utf8')) as Array<{ alert: string; annotations: { runbook_url: string } }>;
    const doc = readFileSync(path.join(REPO, 'docs', 'operations', 'alerts.md'), 'utf8');
    for (const r of rules) {
      expect({ alert: r.alert, documented: new RegExp(`^## ${r.alert}$`, 'm').test(doc) }).toEqual({ alert: r.alert, documented: true });
      expect(r.annotations.runbook_url).toBe(`docs/operations/alerts.md#${r.alert.toLowerCase()}`);
    }
  });
});
