import { createHash, randomUUID } from 'node:crypto';
import { create, toBinary } from '@bufbuild/protobuf';
import { timestampDate, timestampFromDate } from '@bufbuild/protobuf/wkt';
import type pg from 'pg';
import { PkiError, type Clock, type Logger } from '@pki/kit';
import { withTransaction } from '@pki/db';
import { appendEvent } from '@pki/outbox';
import { eventsV1, Topics } from '@pki/proto';
import { formatName, fromPem, parseCsr, toPem } from '@pki/x509';
import type { CaSigner } from '../ports/ca-signer';

export const ENROLMENT_PROFILES = ['citizen-signature', 'citizen-encryption'] as const;
export type EnrolmentProfile = (typeof ENROLMENT_PROFILES)[number];

export interface EnrolmentRequest {
  /** PKCS#10 request, PEM or DER: proves possession of the card's private key. */
  csr: string | Uint8Array;
  profile: EnrolmentProfile;
  /** Chosen by the counter's client so that a retry is safe; generated when absent. */
  idempotencyKey?: string;
  deadline?: Date;
}

export interface IssuedCertificate {
  serialHex: string;
  issuerKeyId: string;
  profile: string;
  subject: string;
  status: 'VALID' | 'SUSPENDED' | 'REVOKED';
  notBefore: Date;
  notAfter: Date;
  certificateDer: Buffer;
}

export interface EnrolmentDeps {
  pool: pg.Pool;
  caSigner: CaSigner;
  clock: Clock;
  producer: string;
  logger: Logger;
}

/**
 * Enrols one certificate: checks the CSR (well formed, self-signature valid), has ca-signer issue
 * it, then records the certificate and its status event in one transaction so that the registry
 * and everything downstream (OCSP, CRL, audit) can never disagree.
 */
export async function enrolCertificate(deps: EnrolmentDeps, request: EnrolmentRequest): Promise<IssuedCertificate> {
  const der = typeof request.csr === 'string' ? fromPem(request.csr, 'CERTIFICATE REQUEST') : Buffer.from(request.csr);
  const csr = parseCsr(der);
  if (!csr.signatureValid) {
    throw new PkiError('INVALID_ARGUMENT', 'enrol certificate: the CSR signature does not verify with its own public key (no proof of possession)');
  }
  const idempotencyKey = request.idempotencyKey ?? randomUUID();
  const requestHash = createHash('sha256').update(request.profile).update('\0').update(csr.subjectPublicKeyInfo).update('\0').update(formatName(csr.subject)).digest();

  const previous = await findEnrolment(deps.pool, idempotencyKey);
  if (previous) {
    if (!previous.requestSha256.equals(requestHash)) {
      throw new PkiError('CONFLICT', `enrol certificate: idempotency key '${idempotencyKey}' was already used for a different request`);
    }
    return previous.certificate;
  }

  const issued = await deps.caSigner.issueCertificate(
    {
      idempotencyKey: `ra/${idempotencyKey}`,
      profile: request.profile,
      publicKeySpki: csr.subjectPublicKeyInfo,
      subject: csr.subject.map((a) => ({ type: a.type, value: a.value })),
    },
    { deadline: request.deadline },
  );
  const certificate: IssuedCertificate = {
    serialHex: issued.serialHex,
    issuerKeyId: issued.issuerKeyId,
    profile: request.profile,
    subject: formatName(csr.subject),
    status: 'VALID',
    notBefore: timestampDate(issued.notBefore!),
    notAfter: timestampDate(issued.notAfter!),
    certificateDer: Buffer.from(issued.certificate),
  };

  await withTransaction(deps.pool, async (tx) => {
    // ON CONFLICT: a concurrent retry of the same request may have recorded it first; ca-signer
    // returned the same certificate to both, so either row is the right one.
    const inserted = await tx.query(
      `INSERT INTO certificates (serial_hex, issuer_key_id, profile, subject_dn, status, not_before, not_after, certificate_der)
       VALUES ($1, $2, $3, $4, 'VALID', $5, $6, $7) ON CONFLICT (serial_hex) DO NOTHING`,
      [certificate.serialHex, certificate.issuerKeyId, certificate.profile, certificate.subject, certificate.notBefore, certificate.notAfter, certificate.certificateDer],
    );
    if (inserted.rowCount === 0) return;
    await tx.query(`INSERT INTO enrolments (idempotency_key, request_sha256, profile, serial_hex) VALUES ($1, $2, $3, $4)`, [
      idempotencyKey, requestHash, request.profile, certificate.serialHex,
    ]);
    const event = create(eventsV1.CertificateStatusChangedSchema, {
      serialHex: certificate.serialHex,
      issuerKeyId: certificate.issuerKeyId,
      status: eventsV1.CertificateStatus.VALID,
      changedAt: timestampFromDate(deps.clock.now()),
      notAfter: timestampFromDate(certificate.notAfter),
    });
    await appendEvent(tx, {
      producer: deps.producer,
      topic: Topics.certificateStatus,
      key: certificate.serialHex,
      payload: toBinary(eventsV1.CertificateStatusChangedSchema, event),
    });
  });
  deps.logger.info({ serial: certificate.serialHex, profile: certificate.profile, issuerKeyId: certificate.issuerKeyId }, 'certificate enrolled');
  return certificate;
}

async function findEnrolment(pool: pg.Pool, idempotencyKey: string): Promise<{ requestSha256: Buffer; certificate: IssuedCertificate } | undefined> {
  const { rows } = await pool.query(
    `SELECT e.request_sha256, c.* FROM enrolments e JOIN certificates c USING (serial_hex) WHERE e.idempotency_key = $1`,
    [idempotencyKey],
  );
  const row = rows[0];
  return row ? { requestSha256: row.request_sha256, certificate: rowToCertificate(row) } : undefined;
}

export async function findCertificate(pool: pg.Pool, serialHex: string): Promise<IssuedCertificate> {
  if (!/^[0-9a-f]{1,40}$/.test(serialHex)) {
    throw new PkiError('INVALID_ARGUMENT', `get certificate: serial '${serialHex.slice(0, 64)}' is not lower-case hex of at most 20 octets`);
  }
  const { rows } = await pool.query(`SELECT * FROM certificates WHERE serial_hex = $1`, [serialHex]);
  if (!rows[0]) throw new PkiError('NOT_FOUND', `get certificate: no certificate with serial ${serialHex}`);
  return rowToCertificate(rows[0]);
}

function rowToCertificate(row: Record<string, unknown>): IssuedCertificate {
  return {
    serialHex: row.serial_hex as string,
    issuerKeyId: row.issuer_key_id as string,
    profile: row.profile as string,
    subject: row.subject_dn as string,
    status: row.status as IssuedCertificate['status'],
    notBefore: row.not_before as Date,
    notAfter: row.not_after as Date,
    certificateDer: row.certificate_der as Buffer,
  };
}

export function certificatePem(der: Uint8Array): string {
  return toPem(der, 'CERTIFICATE');
}
