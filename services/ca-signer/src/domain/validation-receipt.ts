import type { Pool } from 'pg';
import { PkiError, type Clock, type Logger } from '@pki/kit';
import { withTransaction } from '@pki/db';
import { signatureAlgorithmIdentifier, verifySignature } from '@pki/x509';
import type { KeyManager } from '../ports/key-manager';
import { appendAuditEvent, assertHsmAvailable, AuditOutcome, serviceActor, type AuditChannel } from './audit';
import { signatureAlgorithmForIssuerSpki } from './certificate-signing';
import { sha256Hex } from './digest';
import type { IssuerRegistry } from './issuer-registry';

/**
 * The format tag every receipt must carry as its `format` member. The key signs nothing else:
 * a receipt can never be made to pass for a checkpoint, a certificate or an OCSP response
 * (domain separation), whatever bytes a compromised caller sends.
 */
export const VALIDATION_RECEIPT_FORMAT = 'pki-certificate-validation v1';
/** A receipt describes one path of a few certificates; anything larger is not a receipt. */
export const MAX_RECEIPT_BYTES = 64 * 1024;

export interface SignedReceipt {
  signature: Buffer;
  signerCertificateDer: Buffer;
  /** OpenSSL's name of the signature algorithm, for `openssl dgst -sha256 -verify`. */
  signatureAlgorithm: 'sha256WithRSAEncryption' | 'ecdsa-with-SHA256';
  signerKeyId: string;
}

/**
 * Signs certificate validation receipts for ra with the validation receipt key (a delegated
 * signer certified by the CA, its key in the HSM). ca-signer does not judge the validation, which
 * is ra's (it holds the registry); it makes sure that what it signs is a receipt, and records each
 * signature as an audited action with the receipt's digest, so a receipt an agency shows later can
 * be matched to the record.
 */
export class ValidationReceiptSigner {
  readonly #deps: { pool: Pool; registry: IssuerRegistry; keyManager: KeyManager; logger: Logger };
  readonly #audit: AuditChannel;

  constructor(deps: { pool: Pool; registry: IssuerRegistry; keyManager: KeyManager; clock: Clock; logger: Logger; producer: string }) {
    this.#deps = deps;
    this.#audit = { producer: deps.producer, clock: deps.clock };
  }

  async sign(request: { caller: string; receipt: Uint8Array }): Promise<SignedReceipt> {
    const operation = 'sign validation receipt';
    const receipt = Buffer.from(request.receipt);
    validateReceipt(receipt, operation);
    const signer = this.#deps.registry.delegated(operation, 'VALIDATION_RECEIPT');
    const algorithm = signatureAlgorithmForIssuerSpki(signer.certificate.subjectPublicKeyInfo);
    if (algorithm !== 'RSA-SHA256' && algorithm !== 'ECDSA-SHA256') {
      throw new PkiError('FAILED_PRECONDITION', `${operation}: the validation receipt key must be RSA or P-256 (SHA-256 signatures)`);
    }
    await assertHsmAvailable(this.#deps.keyManager, operation);
    const { signature } = await this.#deps.keyManager.sign({ keyId: signer.hsmKeyId, algorithm, data: receipt });
    if (!verifySignature({ publicKeySpki: signer.certificate.subjectPublicKeyInfo, algorithm: signatureAlgorithmIdentifier(algorithm), data: receipt, signature }, operation)) {
      throw new PkiError('INTERNAL', `${operation}: the HSM key does not match the validation receipt certificate`);
    }
    // Recorded after the signature, in one transaction: a receipt is evidence of an answer, not a
    // credential, so there is no intent to reconcile; a receipt whose record failed is not returned.
    const receiptSha256 = sha256Hex(receipt);
    await withTransaction(this.#deps.pool, (tx) =>
      appendAuditEvent(tx, this.#audit, {
        action: 'validation-receipt.sign',
        outcome: AuditOutcome.SUCCESS,
        actor: serviceActor(request.caller),
        objects: [{ type: 'validation-receipt', id: receiptSha256 }],
        attributes: { receiptSha256, signerKeyId: signer.keyId },
      }),
    );
    return {
      signature,
      signerCertificateDer: signer.certificateDer,
      signatureAlgorithm: algorithm === 'RSA-SHA256' ? 'sha256WithRSAEncryption' : 'ecdsa-with-SHA256',
      signerKeyId: signer.keyId,
    };
  }
}

function validateReceipt(receipt: Buffer, operation: string): void {
  const bad = (reason: string) => new PkiError('INVALID_ARGUMENT', `${operation}: ${reason}`);
  if (receipt.length === 0) throw bad('the receipt is empty');
  if (receipt.length > MAX_RECEIPT_BYTES) throw bad(`the receipt has ${receipt.length} bytes; at most ${MAX_RECEIPT_BYTES}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(receipt));
  } catch {
    throw bad('the receipt is not UTF-8 JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw bad('the receipt is not a JSON object');
  const format = (parsed as Record<string, unknown>).format;
  if (format !== VALIDATION_RECEIPT_FORMAT) throw bad(`the receipt's format must be '${VALIDATION_RECEIPT_FORMAT}'`);
}
