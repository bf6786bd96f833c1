import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { create, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { createLogger, PkiError, systemClock, type Clock } from '@pki/kit';
import { createPool, withTransaction } from '@pki/db';
import { appendEvent, databaseUrl, migrateServiceSchema } from '@pki/outbox';
import { eventsV1, Topics } from '@pki/proto';
import { toPem } from '@pki/x509';
import type { CaSignerConfig } from '../config';
import { MIGRATIONS_DIRECTORY, openKeyManager } from '../app';
import { createCaHierarchy } from '../domain/ca-hierarchy';
import { recordIssuer } from '../domain/certificate-authority';
import type { KeyManager } from '../ports/key-manager';

export interface DevHierarchyResult {
  created: boolean;
  rootPem: string;
  issuingPem: string;
}

/**
 * For the embedded deployment and tests only: when the signer has no CA yet, generate a root CA
 * key and an issuing CA key inside the configured token, self-sign the root, certify the issuing
 * CA with it, record both (the issuing one active) and write an audit event. Writes root.pem,
 * issuing.pem and chain.pem (issuing CA, then root) to `outDir` either way. Production
 * hierarchies come from the custodian ceremonies instead.
 */
export async function ensureDevHierarchy(
  config: CaSignerConfig,
  outDir: string,
  options: { clock?: Clock; keyManager?: KeyManager; onProgress?: (message: string) => void } = {},
): Promise<DevHierarchyResult> {
  const clock = options.clock ?? systemClock;
  const logger = createLogger({ service: 'ca-signer-ceremony', level: 'warn' });
  const pool = createPool({ url: databaseUrl(config.database), schema: config.database.schema, maxConnections: 2, applicationName: 'ca-signer-ceremony' });
  const current = async () => (await pool.query(`SELECT role, certificate_der FROM issuers WHERE role = 'ROOT' OR active ORDER BY created_at`)).rows;
  try {
    await migrateServiceSchema(pool, config.database.schema, MIGRATIONS_DIRECTORY, logger);
    let rows = await current();
    const created = rows.length === 0;
    if (created) {
      options.onProgress?.('generating the development CA hierarchy inside the token (root and issuing CA, RSA-2048)...');
      const keyManager = options.keyManager ?? (await openKeyManager(config, logger));
      try {
        const hierarchy = await createCaHierarchy(keyManager, { clock });
        await withTransaction(pool, async (tx) => {
          const root = await recordIssuer(tx, { role: 'ROOT', hsmKeyId: hierarchy.root.keyId, certificateDer: hierarchy.root.certificateDer, active: false });
          const issuing = await recordIssuer(tx, { role: 'ISSUING', hsmKeyId: hierarchy.issuing.keyId, certificateDer: hierarchy.issuing.certificateDer, active: true });
          const event = create(eventsV1.AuditEventSchema, {
            action: 'ceremony.dev-hierarchy.created',
            outcome: eventsV1.AuditOutcome.SUCCESS,
            actor: 'development ceremony (no custodians)',
            occurredAt: timestampFromDate(clock.now()),
            attributes: { rootKeyId: root.keyId, issuingKeyId: issuing.keyId, tokenLabel: config.hsm.tokenLabel },
          });
          await appendEvent(tx, { producer: config.events.producer, topic: Topics.audit, key: config.events.producer, payload: toBinary(eventsV1.AuditEventSchema, event) });
        });
      } finally {
        if (!options.keyManager) await keyManager.close();
      }
      rows = await current();
    }
    const root = rows.find((r) => r.role === 'ROOT');
    const issuing = rows.find((r) => r.role === 'ISSUING');
    if (!root || !issuing) throw new PkiError('FAILED_PRECONDITION', 'ceremony init-dev: the signer has CA records but no root or no active issuing CA');
    const rootPem = toPem(root.certificate_der, 'CERTIFICATE');
    const issuingPem = toPem(issuing.certificate_der, 'CERTIFICATE');
    mkdirSync(outDir, { recursive: true });
    writeFileSync(path.join(outDir, 'root.pem'), rootPem);
    writeFileSync(path.join(outDir, 'issuing.pem'), issuingPem);
    writeFileSync(path.join(outDir, 'chain.pem'), issuingPem + rootPem);
    return { created, rootPem, issuingPem };
  } finally {
    await pool.end();
  }
}
