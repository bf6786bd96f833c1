import type { Pool } from 'pg';
import type { Logger } from '@pki/kit';
import type { Tx } from '@pki/db';

/**
 * A CA generation's CRL publication (base URL and partition count) is recorded with the
 * generation and never changes: certificates carry their partition's URL from issuance on, so the
 * crl service (which reads these values through GetIssuers) must keep publishing each partition
 * there. `publication.crlBaseUrl` and `publication.crlPartitions` in the config therefore apply to
 * generations created from now on, and to older ones that have no record yet.
 */
export async function recordCrlPublication(tx: Tx, keyId: string, publication: { crlBaseUrl: string; crlPartitions: number }, role: 'ROOT' | 'ISSUING'): Promise<void> {
  await tx.query(`UPDATE issuers SET crl_base_url = $2, crl_partitions = $3 WHERE key_id = $1`, [keyId, publication.crlBaseUrl, role === 'ISSUING' ? publication.crlPartitions : null]);
}

/** At start: records the config's values for generations made before they were recorded; warns where the config now differs. */
export async function recordMissingCrlPublication(pool: Pool, publication: { crlBaseUrl: string; crlPartitions: number }, logger: Logger): Promise<void> {
  const filled = await pool.query(
    `UPDATE issuers SET crl_base_url = coalesce(crl_base_url, $1), crl_partitions = CASE WHEN role = 'ISSUING' THEN coalesce(crl_partitions, $2) END
      WHERE crl_base_url IS NULL OR (role = 'ISSUING' AND crl_partitions IS NULL) RETURNING key_id`,
    [publication.crlBaseUrl, publication.crlPartitions],
  );
  if (filled.rows.length > 0) logger.info({ generations: filled.rows.map((r) => r.key_id), ...publication }, 'recorded the CRL publication of generations that had none');
  const differing = await pool.query(`SELECT key_id, crl_base_url, crl_partitions FROM issuers WHERE role = 'ISSUING' AND (crl_base_url <> $1 OR crl_partitions <> $2)`, [
    publication.crlBaseUrl,
    publication.crlPartitions,
  ]);
  for (const r of differing.rows) {
    logger.warn(
      { keyId: r.key_id, recorded: { crlBaseUrl: r.crl_base_url, crlPartitions: r.crl_partitions }, configured: publication },
      'publication.crlBaseUrl/crlPartitions differ from what this generation recorded at creation; its certificates and CRLs keep the recorded values',
    );
  }
}
