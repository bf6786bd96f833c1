import { mkdtemp, rm } from 'node:fs/promises';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, parseConfig, type Clock, type Logger } from '@pki/kit';
import { createServiceIdentities, createSoftHsmToken, createTestDatabase, useSoftHsmConfig } from '@pki/testing';
import { caSignerConfigSchema, type CaSignerConfig } from '../src/config';
import { openKeyManager, startCaSigner, type RunningCaSigner } from '../src/app';
import type { KeyManager } from '../src/ports/key-manager';
import { ensureDevHierarchy } from '../src/ceremony/dev-hierarchy';
import { DEVELOPMENT_ATTENDANCE } from '../src/ceremony/audit';
import { openCeremony } from '../src/ceremony/session';
import { createDelegatedSigner, createIssuing } from '../src/ceremony/steps';

export const SERVICES = ['ca-signer', 'ra', 'card-mgmt', 'ocsp', 'crl', 'audit'] as const;
export type TestIdentities = Awaited<ReturnType<typeof createServiceIdentities<(typeof SERVICES)[number]>>>;

export interface CaSignerFixture {
  dir: string;
  databaseUrl: string;
  identities: TestIdentities;
  config: CaSignerConfig;
  signer: RunningCaSigner;
  /** root.pem, issuing.pem and chain.pem of the hierarchy made in the token. */
  caDir: string;
  /** Key ids of further issuing generations made at start, not active (see `extraGenerations`). */
  extraGenerations: string[];
  /** Makes another generation the active one, as a ceremony's activate step would, and reloads the signer. */
  activateGeneration(keyId: string): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A real ca-signer for integration tests: its own database on the test PostgreSQL server, a
 * fresh SoftHSM token with a development CA hierarchy generated inside it, mTLS identities from a
 * fresh internal service CA, and the outbox delivered through the PostgreSQL bus.
 */
export async function startCaSignerFixture(
  options: {
    logger?: Logger;
    databaseUrl?: string;
    extraGenerations?: number;
    clock?: Clock;
    /** CRL partitions per generation (ca-signer's default otherwise). */
    crlPartitions?: number;
    auditConfirmation?: { required: boolean; maxUnconfirmedSeconds?: number };
    /** Wraps the real (SoftHSM) key manager, e.g. to observe what the service does when it signs. */
    wrapKeyManager?: (keyManager: KeyManager) => KeyManager;
  } = {},
): Promise<CaSignerFixture> {
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
      SignLiveOcspResponses: [identities.ocsp.identity],
      SignAuditCheckpoint: [identities.audit.identity],
      ListIssuances: [identities.ra.identity],
      SignValidationReceipt: [identities.ra.identity],
    },
    publication: { crlBaseUrl: 'http://crl.pki.test/crl', ocspUrl: 'http://ocsp.pki.test/', caIssuersUrl: 'http://pki.test/ca', ...(options.crlPartitions ? { crlPartitions: options.crlPartitions } : {}) },
    events: { transport: { type: 'postgres' }, producer: 'ca-signer', pollIntervalMs: 100 },
    ...(options.auditConfirmation ? { auditConfirmation: options.auditConfirmation } : {}),
  });
  const caDir = join(dir, 'ca');
  await ensureDevHierarchy(config, caDir);
  const extraGenerations: string[] = [];
  if (options.extraGenerations) {
    // Further generations under the same root and DN (domain.md: G2 and G3 coexist), created in
    // the token by the ceremony steps, left inactive until a test activates one.
    const ceremony = await openCeremony(config, { pin: token.pin, attendance: DEVELOPMENT_ATTENDANCE });
    try {
      const { rows } = await ceremony.pool.query(`SELECT key_id FROM issuers WHERE role = 'ROOT'`);
      for (let i = 0; i < options.extraGenerations; i++) {
        const created = await createIssuing(ceremony.context, { generation: `TEST-G${i + 2}`, keySpec: { type: 'RSA', bits: 2048 }, certification: { by: 'root', rootKeyId: rows[0].key_id, validityYears: 20 } });
        if (created.by !== 'root') throw new Error('test generation was not certified by the root');
        await createDelegatedSigner(ceremony.context, { issuerKeyId: created.keyId, purpose: 'OCSP_RESPONDER' });
        extraGenerations.push(created.keyId);
      }
    } finally {
      await ceremony.close();
    }
  }
  const logger = options.logger ?? createLogger({ service: 'ca-signer', level: (process.env.TEST_LOG_LEVEL as 'silent' | undefined) ?? 'silent' });
  const keyManager = options.wrapKeyManager ? options.wrapKeyManager(await openKeyManager(config, logger)) : undefined;
  const signer = await startCaSigner(config, { logger, ...(options.clock ? { clock: options.clock } : {}), ...(keyManager ? { keyManager } : {}) });
  const fixture: CaSignerFixture = {
    dir,
    databaseUrl,
    identities,
    config,
    signer,
    caDir,
    extraGenerations,
    async activateGeneration(keyId) {
      const pool = fixture.signer.domain.pool;
      await pool.query(`UPDATE issuers SET active = (key_id = $1) WHERE role = 'ISSUING'`, [keyId]);
      await fixture.signer.domain.registry.load();
    },
    async stop() {
      // The signer a test may have restarted (fault tests), not necessarily the first one.
      await fixture.signer.runtime.stop();
      restoreEnv();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return fixture;
}
