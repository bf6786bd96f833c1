import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { CHART_DIR, findKubeTools, runTool } from '../src';

/** The values files the chart ships, each a complete installation. */
export const VALUES_FILES = ['values-minimal.yaml', 'values-production.yaml', 'values-ha.yaml'] as const;

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

/** helm with its homes in a folder of its own (never the user's ~/.config, ~/.cache). */
export function helmRunner(): { helm: (args: string[]) => Promise<string>; dispose: () => void } {
  const bin = path.join(findKubeTools(), 'bin', 'helm');
  const home = mkdtempSync(path.join(tmpdir(), 'helm-home-'));
  const env = { ...process.env, HELM_CACHE_HOME: path.join(home, 'cache'), HELM_CONFIG_HOME: path.join(home, 'config'), HELM_DATA_HOME: path.join(home, 'data'), KUBECONFIG: path.join(home, 'no-cluster') };
  return { helm: (args) => runTool(bin, args, env, 120_000), dispose: () => rmSync(home, { recursive: true, force: true }) };
}

export function parseManifests(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null && typeof o === 'object');
}

export async function renderChart(helm: (args: string[]) => Promise<string>, valuesFile: string | undefined, extra: string[] = [], chart = CHART_DIR): Promise<K8sObject[]> {
  const args = ['template', 'pki', chart, '--namespace', 'pki'];
  if (valuesFile) args.push('-f', path.join(chart, valuesFile));
  return parseManifests(await helm([...args, ...extra]));
}
