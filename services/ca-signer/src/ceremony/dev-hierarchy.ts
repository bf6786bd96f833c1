import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { PkiError, systemClock, type Clock } from '@pki/kit';
import { toPem } from '@pki/x509';
import type { CaSignerConfig } from '../config';
import { CITIZEN_CA_SUBJECT, DEV_ROOT_CA_SUBJECT } from '../domain/ca-hierarchy';
import type { KeyManager } from '../ports/key-manager';
import { DEVELOPMENT_ATTENDANCE } from './audit';
import { callbackProgress, silentProgress } from './progress';
import { openCeremony } from './session';
import { activateIssuer, createDelegatedSigner, createIssuing, createRoot, type DelegatedPurpose, delegatedSignerProfile, signArl } from './steps';

export interface DevHierarchyResult {
  created: boolean;
  rootPem: string;
  issuingPem: string;
}

/**
 * For the embedded deployment and tests only: when the signer has no CA yet, runs the ceremony
 * steps without custodians (actor "development ceremony (no custodians)", PIN from the config's
 * PIN file): a root (generation DEV-ROOT) and an issuing CA certified by it (DEV-G1, activated),
 * RSA-2048 for speed. Then makes sure the active issuing CA has a delegated OCSP responder and an
 * audit checkpoint key, and that the root has a current authority revocation list (ARL), also on a
 * hierarchy made by an older version. Writes root.pem,
 * issuing.pem and chain.pem (issuing CA, then root) to `outDir` either way. Production
 * hierarchies come from the custodian ceremonies (docs/runbooks/key-ceremony.md).
 */
export async function ensureDevHierarchy(
  config: CaSignerConfig,
  outDir: string,
  options: { clock?: Clock; keyManager?: KeyManager; onProgress?: (message: string) => void } = {},
): Promise<DevHierarchyResult> {
  const clock = options.clock ?? systemClock;
  const ceremony = await openCeremony(config, {
    pin: config.hsm.pinFile.reveal(),
    attendance: DEVELOPMENT_ATTENDANCE,
    clock,
    keyManager: options.keyManager,
    progress: options.onProgress ? callbackProgress(options.onProgress) : silentProgress,
  });
  const { context, pool } = ceremony;
  const current = async () => (await pool.query(`SELECT key_id, role, certificate_der FROM issuers WHERE role = 'ROOT' OR active ORDER BY created_at`)).rows;
  try {
    let rows = await current();
    const created = rows.length === 0;
    if (created) {
      options.onProgress?.('generating the development CA hierarchy inside the token (root and issuing CA, RSA-2048)...');
      const root = await createRoot(context, { generation: 'DEV-ROOT', keySpec: { type: 'RSA', bits: 2048 }, subject: DEV_ROOT_CA_SUBJECT, validityYears: 30 });
      const issuing = await createIssuing(context, {
        generation: 'DEV-G1',
        keySpec: { type: 'RSA', bits: 2048 },
        subject: CITIZEN_CA_SUBJECT,
        certification: { by: 'root', rootKeyId: root.keyId, validityYears: 20 },
      });
      if (issuing.by !== 'root') throw new PkiError('INTERNAL', 'ceremony init-dev: the issuing CA was not certified by the root');
      await activateIssuer(context, issuing.keyId);
      rows = await current();
    }
    const root = rows.find((r) => r.role === 'ROOT');
    const issuing = rows.find((r) => r.role === 'ISSUING');
    if (!root || !issuing) throw new PkiError('FAILED_PRECONDITION', 'ceremony init-dev: the signer has CA records but no root or no active issuing CA');

    // Delegated signers exist only once this build has their profiles.
    for (const purpose of ['OCSP_RESPONDER', 'AUDIT_CHECKPOINT', 'VALIDATION_RECEIPT'] as const satisfies readonly DelegatedPurpose[]) {
      if (delegatedSignerProfile(purpose) === undefined) continue;
      const { rows: signers } = await pool.query(`SELECT 1 FROM delegated_signers WHERE active AND purpose = $1 AND issuer_key_id = $2`, [purpose, issuing.key_id]);
      if (signers.length === 0) await createDelegatedSigner(context, { issuerKeyId: issuing.key_id, purpose });
    }

    // The root's ARL, so that validators checking the whole chain (openssl -crl_check_all) find
    // one; renewed a month before it runs out.
    const { rows: arls } = await pool.query(`SELECT 1 FROM authority_revocation_lists WHERE root_key_id = $1 AND next_update > now() + interval '30 days'`, [root.key_id]);
    if (arls.length === 0) await signArl(context, { rootKeyId: root.key_id, validityDays: 365 });

    const rootPem = toPem(root.certificate_der, 'CERTIFICATE');
    const issuingPem = toPem(issuing.certificate_der, 'CERTIFICATE');
    mkdirSync(outDir, { recursive: true });
    writeFileSync(path.join(outDir, 'root.pem'), rootPem);
    writeFileSync(path.join(outDir, 'issuing.pem'), issuingPem);
    writeFileSync(path.join(outDir, 'chain.pem'), issuingPem + rootPem);
    return { created, rootPem, issuingPem };
  } finally {
    await ceremony.close();
  }
}
