import { createHash, X509Certificate } from 'node:crypto';
import type pg from 'pg';
import { PkiError, type Clock } from '@pki/kit';
import { withTransaction } from '@pki/db';
import { appendAuditEvent, AuditActorType, AuditOutcome } from '@pki/audit-events';
import { OFFICER_ROLES, type OfficerRole } from '../../domain/access';

export interface NewPrincipal {
  id: string;
  kind: 'officer' | 'household-system';
  role?: OfficerRole;
  office?: string;
  /** The client certificate (PEM or DER) to bind, by the SHA-256 of its DER. */
  certificate: string | Buffer;
}

/**
 * Registers an officer or a system and binds a client certificate to it, audited. Adding the same
 * certificate again changes nothing; a further certificate for the same principal is a renewal.
 * Returns whether anything changed.
 */
export async function addPrincipal(pool: pg.Pool, audit: { producer: string; clock: Clock; operator: string }, principal: NewPrincipal): Promise<{ changed: boolean; certificateSha256: string }> {
  const operation = 'add principal';
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(principal.id)) throw new PkiError('INVALID_ARGUMENT', `${operation}: id must be 1-64 letters, digits, . _ -`);
  if (principal.kind === 'officer') {
    if (!principal.role || !(OFFICER_ROLES as readonly string[]).includes(principal.role)) throw new PkiError('INVALID_ARGUMENT', `${operation}: role must be one of ${OFFICER_ROLES.join(', ')}`);
    if (!principal.office || !/^[A-Za-z0-9-]{1,32}$/.test(principal.office)) throw new PkiError('INVALID_ARGUMENT', `${operation}: office must be an office code (letters, digits, -)`);
  } else if (principal.role || principal.office) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: a ${principal.kind} has no role or office`);
  }
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(principal.certificate);
  } catch (err) {
    throw new PkiError('INVALID_ARGUMENT', `${operation}: the certificate is not a PEM or DER X.509 certificate`, { cause: err });
  }
  const fingerprint = createHash('sha256').update(certificate.raw).digest('hex');
  const role = principal.role ?? null;
  const office = principal.office ?? null;
  const changed = await withTransaction(pool, async (tx) => {
    const existing = await tx.query(`SELECT kind, role, office FROM principals WHERE id = $1 FOR UPDATE`, [principal.id]);
    const row = existing.rows[0];
    if (row && (row.kind !== principal.kind || row.role !== role || row.office !== office)) {
      throw new PkiError('CONFLICT', `${operation}: ${principal.id} exists as ${row.kind} ${row.role ?? ''} of office ${row.office ?? '-'}; disable it and add a new id`);
    }
    if (!row) await tx.query(`INSERT INTO principals (id, kind, role, office, status) VALUES ($1, $2, $3, $4, 'ACTIVE')`, [principal.id, principal.kind, role, office]);
    const bound = await tx.query(`SELECT principal_id FROM principal_certificates WHERE certificate_sha256 = $1`, [fingerprint]);
    if (bound.rows[0] && bound.rows[0].principal_id !== principal.id) throw new PkiError('CONFLICT', `${operation}: this certificate is already bound to ${bound.rows[0].principal_id}`);
    if (bound.rows[0]) return false;
    await tx.query(`INSERT INTO principal_certificates (certificate_sha256, principal_id, not_after) VALUES ($1, $2, $3)`, [fingerprint, principal.id, certificate.validToDate]);
    await appendAuditEvent(tx, { producer: audit.producer, clock: audit.clock }, {
      action: 'principal.add',
      outcome: AuditOutcome.SUCCESS,
      actor: { type: AuditActorType.SERVICE, id: audit.operator },
      objects: [{ type: 'officer', id: principal.id }],
      attributes: { kind: principal.kind, ...(role ? { role } : {}), ...(office ? { office } : {}), certificateSha256: fingerprint, notAfter: certificate.validToDate.toISOString() },
    });
    return true;
  });
  return { changed, certificateSha256: fingerprint };
}

export async function disablePrincipal(pool: pg.Pool, audit: { producer: string; clock: Clock; operator: string }, id: string): Promise<void> {
  await withTransaction(pool, async (tx) => {
    const { rowCount } = await tx.query(`UPDATE principals SET status = 'DISABLED' WHERE id = $1`, [id]);
    if (rowCount === 0) throw new PkiError('NOT_FOUND', `disable principal: no principal ${id}`);
    await appendAuditEvent(tx, { producer: audit.producer, clock: audit.clock }, { action: 'principal.disable', outcome: AuditOutcome.SUCCESS, actor: { type: AuditActorType.SERVICE, id: audit.operator }, objects: [{ type: 'officer', id }] });
  });
}
