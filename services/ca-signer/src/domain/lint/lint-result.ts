import { PkiError } from '@pki/kit';

/**
 * One finding of the pre-issuance linter. Codes follow zlint's naming: `e_` for a violated MUST
 * or profile rule (refuses issuance), `w_` for a violated SHOULD (recorded, issuance proceeds).
 * Messages never quote subject values: they are personal data (architecture.md).
 */
export interface LintFinding {
  code: string;
  message: string;
}

export interface LintResult {
  errors: LintFinding[];
  warnings: LintFinding[];
  /** SHA-256 of the exact bytes that were linted; signing checks it (lint what you sign). */
  tbsSha256: string;
}

export { sha256Hex } from '../digest';

/** Comma-separated codes, for audit attributes and error details. */
export function lintCodes(findings: readonly LintFinding[]): string {
  return findings.map((f) => f.code).join(',');
}

/**
 * Refuses a TBS with lint errors. The request already passed the profile checks of
 * prepareCertificate (which answer INVALID_ARGUMENT), so an error here means the CA itself was
 * about to produce a bad certificate - a bug or a broken issuer configuration, not the caller's
 * fault: INTERNAL, with the finding codes in the message and in `details.lintErrors`.
 */
export function assertLintClean(result: LintResult, operation: string): void {
  if (result.errors.length === 0) return;
  throw new PkiError('INTERNAL', `${operation}: pre-issuance lint refused the certificate: ${result.errors.map((f) => `${f.code} (${f.message})`).join('; ')}`, {
    details: { lintErrors: lintCodes(result.errors), lintWarnings: lintCodes(result.warnings) },
  });
}
