import path from 'node:path';

/** Every service of the PKI, in start order (ca-signer first: ra depends on it). */
export const SERVICES = ['ca-signer', 'ra', 'card-mgmt', 'ocsp', 'crl', 'audit'] as const;
export type ServiceName = (typeof SERVICES)[number];

/**
 * Where the embedded deployment keeps its state: all under var/dev (ignored by git), so that the
 * next `make up` reuses the same token, CA and data, and `rm -rf var/dev` starts afresh.
 */
export function devLayout(root: string) {
  const dev = path.join(root, 'var', 'dev');
  return {
    root,
    dev,
    postgres: path.join(dev, 'postgres'),
    softhsm: path.join(dev, 'softhsm'),
    secrets: path.join(dev, 'secrets'),
    serviceCa: path.join(dev, 'service-ca'),
    serviceCerts: path.join(dev, 'service-certs'),
    config: path.join(dev, 'config'),
    ca: path.join(dev, 'ca'),
    logs: path.join(dev, 'logs'),
    endpoints: path.join(dev, 'endpoints.json'),
  };
}
export type DevLayout = ReturnType<typeof devLayout>;

/** Fixed loopback ports so that URLs stay the same between runs; PKI_DEV_PORT_BASE moves the block. */
export function devPorts(base = Number(process.env.PKI_DEV_PORT_BASE ?? 18_000)) {
  return {
    postgres: base + 32,
    raHttp: base + 80,
    crlHttp: base + 81,
    crlAdmin: base + 82,
    auditHttps: base + 83,
    ocspHttp: base + 84,
    caSignerGrpc: base + 90,
    raGrpc: base + 91,
    ops: Object.fromEntries(SERVICES.map((s, i) => [s, base + 100 + i])) as Record<ServiceName, number>,
  };
}
