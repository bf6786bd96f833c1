import { mkdtemp, rm } from 'node:fs/promises';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, parseConfig, type Logger } from '@pki/kit';
import { createServiceIdentities, createSoftHsmToken, createTestDatabase, useSoftHsmConfig } from '@pki/testing';
import { caSignerConfigSchema, type CaSignerConfig } from '../src/config';
import { startCaSigner, type RunningCaSigner } from '../src/app';
import { ensureDevHierarchy } from '../src/ceremony/dev-hierarchy';

export const SERVICES = ['ca-signer', 'ra', 'ocsp', 'crl', 'audit'] as const;
export type TestIdentities = Awaited<ReturnType<typeof createServiceIdentities<(typeof SERVICES)[number]>>>;

export interface CaSignerFixture {
  dir: string;
  databaseUrl: string;
  identities: TestIdentities;
  config: CaSignerConfig;
  signer: RunningCaSigner;
  /** root.pem, issuing.pem and chain.pem of the hierarchy made in the token. */
  caDir: string;
  stop(): Promise<void>;
}

/**
 * A real ca-signer for integration tests: its own database on the test PostgreSQL server, a
 * fresh SoftHSM token with a development CA hierarchy generated inside it, mTLS identities from a
 * fresh internal service CA, and the outbox delivered through the PostgreSQL bus.
 */
export async function startCaSignerFixture(options: { logger?: Logger; databaseUrl?: string } = {}): Promise<CaSignerFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'ca-signer-service-'));
  const databaseUrl = options.databaseUrl ?? (await createTestDatabase('ca_signer_service'));
  const identities = await createServiceIdentities(join(dir, 'identities'), SERVICES);
  const token = await createSoftHsmToken({ dir: join(dir, 'softhsm'), label: 'citizen-ca', pin: '424242', soPin: '97531864' });
  const restoreEnv = useSoftHsmConfig(token);
  const pinFile = join(dir, 'hsm-pin');
  writeFileSync(pinFile, `${token.pin}\n`, { mode: 0o600 });
  const tls = ({ caFile, certFile, keyFile }: { caFile: string; certFile: string; keyFile: string }) => ({ caFile, certFile, keyFile });
  const config = parseConfig(caSignerConfigSchema, {
    log: { level: 'silent' },
    ops: { host: '127.0.0.1', port: 0 },
    database: { url: databaseUrl, schema: 'ca_signer' },
    grpc: { host: '127.0.0.1', port: 0, tls: tls(identities['ca-signer']) },
    hsm: { modulePath: token.modulePath, tokenLabel: token.label, pinFile, sessionPoolSize: 2 },
    allow: {
      IssueCertificate: [identities.ra.identity],
      GetIssuers: ['*'],
      SignCrl: [identities.crl.identity],
      SignOcspResponses: [identities.ocsp.identity],
      SignAuditCheckpoint: [identities.audit.identity],
      ListIssuances: [identities.ra.identity],
    },
    publication: { crlBaseUrl: 'http://crl.pki.test/crl', ocspUrl: 'http://ocsp.pki.test/', caIssuersUrl: 'http://pki.test/ca' },
    events: { transport: { type: 'postgres' }, producer: 'ca-signer', pollIntervalMs: 100 },
  });
  const caDir = join(dir, 'ca');
  await ensureDevHierarchy(config, caDir);
  const signer = await startCaSigner(config, { logger: options.logger ?? createLogger({ service: 'ca-signer', level: (process.env.TEST_LOG_LEVEL as 'silent' | undefined) ?? 'silent' }) });
  return {
    dir,
    databaseUrl,
    identities,
    config,
    signer,
    caDir,
    async stop() {
      await signer.runtime.stop();
      restoreEnv();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
