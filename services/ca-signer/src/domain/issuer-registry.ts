import type { Pool } from 'pg';
import { PkiError } from '@pki/kit';
import { parseCertificate, type ParsedCertificate } from '@pki/x509';

export interface IssuerRecord {
  /** subjectKeyIdentifier of the CA certificate, hex: how generations sharing one DN are told apart. */
  keyId: string;
  role: 'ROOT' | 'ISSUING';
  /** CKA_ID of the private key in the token, hex. */
  hsmKeyId: string;
  certificateDer: Buffer;
  certificate: ParsedCertificate;
  generation: string | null;
  active: boolean;
  /** CRL partitions of this generation, fixed for its life (migrations/006); null for roots. */
  crlPartitions: number | null;
  /** Base URL of this generation's CRLs (or a root's ARL), fixed for its life. */
  crlBaseUrl: string | null;
}

export type DelegatedPurpose = 'OCSP_RESPONDER' | 'AUDIT_CHECKPOINT' | 'VALIDATION_RECEIPT';

export interface DelegatedSigner {
  keyId: string;
  purpose: DelegatedPurpose;
  issuerKeyId: string;
  hsmKeyId: string;
  certificateDer: Buffer;
  certificate: ParsedCertificate;
}

/**
 * The CA generations and delegated signers this ca-signer holds, read from its database
 * (written by the key ceremonies). Kept in memory: they change only with a ceremony, after which
 * the signer reloads them.
 */
export class IssuerRegistry {
  readonly #pool: Pool;
  #issuers: IssuerRecord[] = [];
  #delegated: DelegatedSigner[] = [];

  constructor(pool: Pool) {
    this.#pool = pool;
  }

  async load(): Promise<void> {
    const issuers = await this.#pool.query(`SELECT key_id, role, hsm_key_id, certificate_der, generation, active, crl_partitions, crl_base_url FROM issuers ORDER BY created_at`);
    const delegated = await this.#pool.query(
      `SELECT key_id, purpose, issuer_key_id, hsm_key_id, certificate_der FROM delegated_signers WHERE active ORDER BY created_at`,
    );
    this.#issuers = issuers.rows.map((r) => ({
      keyId: r.key_id,
      role: r.role,
      hsmKeyId: r.hsm_key_id,
      certificateDer: r.certificate_der,
      certificate: parseCertificate(r.certificate_der, 'load issuers'),
      generation: r.generation,
      active: r.active,
      crlPartitions: r.crl_partitions,
      crlBaseUrl: r.crl_base_url,
    }));
    this.#delegated = delegated.rows.map((r) => ({
      keyId: r.key_id,
      purpose: r.purpose,
      issuerKeyId: r.issuer_key_id,
      hsmKeyId: r.hsm_key_id,
      certificateDer: r.certificate_der,
      certificate: parseCertificate(r.certificate_der, 'load delegated signers'),
    }));
  }

  /** The latest authority revocation list of each root, read afresh (ceremonies sign new ones). */
  async authorityRevocationLists(): Promise<Map<string, Buffer>> {
    const { rows } = await this.#pool.query(`SELECT DISTINCT ON (root_key_id) root_key_id, crl_der FROM authority_revocation_lists ORDER BY root_key_id, crl_number DESC`);
    return new Map(rows.map((r) => [r.root_key_id as string, r.crl_der as Buffer]));
  }

  all(): readonly IssuerRecord[] {
    return this.#issuers;
  }

  /** An issuing generation by key identifier, or the active one; clear errors otherwise. */
  issuing(operation: string, keyId?: string): IssuerRecord {
    const issuing = this.#issuers.filter((i) => i.role === 'ISSUING');
    const issuer = keyId ? issuing.find((i) => i.keyId === keyId) : issuing.find((i) => i.active);
    if (issuer) return issuer;
    throw keyId
      ? new PkiError('NOT_FOUND', `${operation}: no issuing CA generation with key identifier '${keyId.slice(0, 80)}'`)
      : new PkiError('FAILED_PRECONDITION', `${operation}: no active issuing CA generation (run the key ceremony)`);
  }

  /** The active delegated signer of `purpose` for one issuer (or, for audit, any), if there is one. */
  activeDelegated(purpose: DelegatedPurpose, issuerKeyId?: string): DelegatedSigner | undefined {
    return this.#delegated.find((d) => d.purpose === purpose && (issuerKeyId === undefined || d.issuerKeyId === issuerKeyId));
  }

  /** The active delegated signer of `purpose`, for one issuer or (audit) for any. */
  delegated(operation: string, purpose: DelegatedPurpose, issuerKeyId?: string): DelegatedSigner {
    const signer = this.activeDelegated(purpose, issuerKeyId);
    if (signer) return signer;
    const what = { OCSP_RESPONDER: 'delegated OCSP responder', AUDIT_CHECKPOINT: 'audit checkpoint key', VALIDATION_RECEIPT: 'validation receipt key' }[purpose];
    throw new PkiError('FAILED_PRECONDITION', `${operation}: no active ${what}${issuerKeyId ? ` for issuer ${issuerKeyId}` : ''} (run the key ceremony)`);
  }
}
