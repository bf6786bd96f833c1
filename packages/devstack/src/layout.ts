import path from 'node:path';

/** Every service of the PKI, in start order (ca-signer first: ra depends on it). */
export const SERVICES = ['ca-signer', 'ra', 'card-mgmt', 'ocsp', 'crl', 'audit'] as const;
export type ServiceName = (typeof SERVICES)[number];

/**
 * Where the embedded deployment keeps its state: all under var/dev (ignored by git), so that the
 * next `make up` reuses the same token, CA and data, and `rm -rf var/dev` starts afresh.
 * PKI_DEV_STATE_DIR moves it (tests run a whole deployment without touching the developer's).
 */
export function devLayout(root: string, stateDir = process.env.PKI_DEV_STATE_DIR || path.join(root, 'var', 'dev')) {
  const dev = path.resolve(stateDir);
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
    /** One `<process>.pid` per running process, so that a later run can stop what a killed one left. */
    run: path.join(dev, 'run'),
    endpoints: path.join(dev, 'endpoints.json'),
  };
}
export type DevLayout = ReturnType<typeof devLayout>;

/**
 * Fixed loopback ports so that URLs stay the same between runs; PKI_DEV_PORT_BASE moves the block.
 * Every number in here is checked to be free before anything starts, so a service's new port
 * needs no other change.
 */
export function devPorts(base = Number(process.env.PKI_DEV_PORT_BASE ?? 18_000)) {
  if (!Number.isInteger(base) || base < 1024 || base > 65_535 - 200) {
    throw new RangeError(`PKI_DEV_PORT_BASE must be a whole number from 1024 to ${65_535 - 200}, got '${process.env.PKI_DEV_PORT_BASE}'`);
  }
  return {
    postgres: base + 32,
    raHttp: base + 80,
    crlHttp: base + 81,
    crlAdmin: base + 82,
    auditHttps: base + 83,
    ocspHttp: base + 84,
    cardMgmtHttp: base + 85,
    /** The responder's HTTPS listener: agencies identify their systems for metering by client certificate. */
    ocspHttps: base + 86,
    caSignerGrpc: base + 90,
    raGrpc: base + 91,
    /** The supervisor's own /metrics (restarts per service), /livez and /readyz. */
    supervisor: base + 99,
    ops: Object.fromEntries(SERVICES.map((s, i) => [s, base + 100 + i])) as Record<ServiceName, number>,
  };
}
export type DevPorts = ReturnType<typeof devPorts>;

/** Every port of the block with what uses it, e.g. `[21080, 'ra HTTP']`, `[21100, 'ca-signer ops endpoint']`. */
export function portsInUse(ports: DevPorts): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  const walk = (value: unknown, name: string[]) => {
    if (typeof value === 'number') out.push([value, portName(name)]);
    else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) walk(v, [...name, k]);
  };
  walk(ports, []);
  return out;
}

function portName(keys: string[]): string {
  const [first, second] = keys;
  if (first === 'postgres') return 'PostgreSQL';
  if (first === 'supervisor') return "make up's own ops endpoint";
  if (first === 'ops' && second) return `${second} ops endpoint`;
  const key = keys.join('.');
  // raHttp -> ra HTTP, ocspHttps -> ocsp HTTPS, caSignerGrpc -> ca-signer gRPC
  const match = /^(.+?)(Https|Http|Grpc)$/.exec(key);
  if (!match) return key;
  return `${match[1]!.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} ${match[2] === 'Grpc' ? 'gRPC' : match[2]!.toUpperCase()}`;
}
