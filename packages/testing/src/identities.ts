import path from 'node:path';
import { ensureServiceCa, issueServiceCertificate, type ServiceCredentials } from '@pki/internal-ca';

/**
 * Service identities for a test: a fresh internal service CA in `dir` and one mTLS certificate
 * per named service (spiffe://pki.internal/<service>).
 */
export async function createServiceIdentities<N extends string>(dir: string, services: readonly N[]): Promise<Record<N, ServiceCredentials> & { caDir: string }> {
  const ca = await ensureServiceCa(path.join(dir, 'service-ca'));
  const out: Record<string, ServiceCredentials> = {};
  for (const service of services) {
    out[service] = await issueServiceCertificate({ caDir: ca.dir, outDir: path.join(dir, 'services'), service });
  }
  return Object.assign(out as Record<N, ServiceCredentials>, { caDir: ca.dir });
}
