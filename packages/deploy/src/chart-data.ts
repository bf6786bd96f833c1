import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GRPC_ALLOW_LISTS, PKI_SERVICES } from '@pki/grpc';

/** The chart whose data this package generates and whose tests it runs. */
export const CHART_DIR = path.resolve(__dirname, '..', '..', '..', 'deploy', 'helm', 'citizen-pki');
export const ALLOW_LISTS_FILE = path.join(CHART_DIR, 'files', 'allow-lists.json');

/**
 * files/allow-lists.json: the gRPC allow-lists of packages/grpc/src/allow-lists.ts as the chart
 * reads them (Helm templates cannot import TypeScript). The chart renders both the servers'
 * `allow` config blocks and the NetworkPolicies of their gRPC ports from it.
 */
export function allowListsJson(): string {
  const servers = Object.fromEntries(Object.entries(GRPC_ALLOW_LISTS).map(([server, rpcs]) => [server, { port: 'grpc', rpcs }]));
  const data = {
    '//': 'Generated from packages/grpc/src/allow-lists.ts by `make chart-data`; a test fails when it differs. Do not edit.',
    services: PKI_SERVICES,
    servers,
  };
  return `${JSON.stringify(data, null, 2)}\n`;
}

/** Writes the generated files of the chart; returns those that changed. */
export function writeChartData(): string[] {
  const changed: string[] = [];
  const want = allowListsJson();
  let have = '';
  try {
    have = readFileSync(ALLOW_LISTS_FILE, 'utf8');
  } catch {
    // first generation
  }
  if (have !== want) {
    writeFileSync(ALLOW_LISTS_FILE, want);
    changed.push(ALLOW_LISTS_FILE);
  }
  return changed;
}
