import { PkiError } from '@pki/kit';
import type { IssuanceEntry } from '../ports/certificate-signer';
import type { KeySlot } from './model';
import type { Issuance } from './issuance';
import type { RaDeps } from './shared';

export interface ReconciliationPolicy {
  /** ISSUING applications untouched for this long are finished by the reconciler. */
  stuckAfterSeconds: number;
  /**
   * Issuances younger than this may still be committing in ca-signer out of order; the cursor
   * stops before them so that the next pass reads them again.
   */
  settleSeconds: number;
  pageSize: number;
}

export interface ReconciliationReport {
  scanned: number;
  adopted: number;
  revoked: number;
  resumed: number;
}

const CURSOR = 'ca-signer-issuances';
const KEY = /^ra\/([0-9a-f-]{36})\/(SIGN|KEYX)$/;

/**
 * No certificate ca-signer signed for ra may be missing from the registry, where ra could not
 * revoke it. Two passes, both safe to run at any time and concurrently with live traffic:
 *
 * 1. Applications left ISSUING (ra crashed or ca-signer was down) are finished: the same
 *    idempotency keys return the same certificates, which are then recorded.
 * 2. ca-signer's record of ra's issuances is read from a cursor; a signed certificate the
 *    registry lacks is adopted if its application is still being issued, and otherwise recorded as
 *    revoked (with its status event, so OCSP and CRLs say so), and audited either way.
 */
export class Reconciliation {
  readonly #deps: RaDeps;
  readonly #issuance: Issuance;
  readonly #policy: ReconciliationPolicy;

  constructor(deps: RaDeps, issuance: Issuance, policy: ReconciliationPolicy) {
    this.#deps = deps;
    this.#issuance = issuance;
    this.#policy = policy;
  }

  async run(): Promise<ReconciliationReport> {
    const report: ReconciliationReport = { scanned: 0, adopted: 0, revoked: 0, resumed: 0 };
    report.resumed = await this.#resumeStuck();
    await this.#scanIssuances(report);
    if (report.adopted + report.revoked + report.resumed > 0) this.#deps.logger.warn({ ...report }, 'reconciliation repaired the registry');
    return report;
  }

  async #resumeStuck(): Promise<number> {
    const { registry, clock, logger } = this.#deps;
    const before = new Date(clock.now().getTime() - this.#policy.stuckAfterSeconds * 1000);
    let resumed = 0;
    for (const application of await registry.applicationsInState('ISSUING', before, 100)) {
      try {
        await this.#issuance.issue(application);
        resumed++;
      } catch (err) {
        // ca-signer down: the next pass tries again. Anything else is logged and left for an operator.
        logger.warn({ err, application: application.id }, 'reconciliation could not finish an ISSUING application');
      }
    }
    return resumed;
  }

  async #scanIssuances(report: ReconciliationReport): Promise<void> {
    const { registry, signer, clock } = this.#deps;
    let token = (await registry.reads.getCursor(CURSOR)) ?? '';
    let saveCursor = true;
    for (;;) {
      const page = await signer.listIssuances(token, this.#policy.pageSize);
      // One look-up per page, not per issuance: a pass re-reads every issuance of the settle window
      // (at 500 certificates/s, 300,000 of them).
      const held = await registry.certificatesHeld(page.issuances.filter((e) => e.state === 'ISSUED').map((e) => e.serialHex));
      for (const entry of page.issuances) {
        report.scanned++;
        if (entry.state !== 'ISSUED' || held.has(entry.serialHex)) continue;
        await this.#repair(entry, report);
      }
      if (page.nextPageToken === '' || page.issuances.length === 0) break;
      // Only whole pages older than the settle window move the cursor: a younger row may have an
      // earlier neighbour that has not committed yet.
      const settled = clock.now().getTime() - this.#policy.settleSeconds * 1000;
      const last = page.issuances[page.issuances.length - 1]!;
      if (saveCursor && last.reservedAt.getTime() < settled) await registry.transaction((tx) => tx.setCursor(CURSOR, page.nextPageToken));
      else saveCursor = false;
      token = page.nextPageToken;
    }
  }

  async #repair(entry: IssuanceEntry, report: ReconciliationReport): Promise<void> {
    const { registry, clock, serviceIdentity } = this.#deps;
    const match = KEY.exec(entry.idempotencyKey);
    const application = match ? await registry.reads.getApplication(match[1]!) : undefined;
    if (application?.state === 'ISSUING') {
      await this.#issuance.issue(application);
      await registry.transaction((tx) =>
        tx.audit({
          action: 'certificate.reconcile.adopt',
          outcome: 'SUCCESS',
          actor: { type: 'service', id: serviceIdentity },
          objects: [{ type: 'certificate', id: entry.serialHex }, { type: 'application', id: application.id }],
          reason: 'signed by ca-signer, missing from the registry; its application was still being issued',
        }),
      );
      report.adopted++;
      return;
    }
    if (!entry.certificateDer) throw new PkiError('INTERNAL', `reconcile: ca-signer listed issuance ${entry.serialHex} as ISSUED without its certificate`);
    const now = clock.now();
    // An agency system's certificate (key ra/agency/<system id>/<request id>) stays tied to its system.
    const agency = /^ra\/agency\/([A-Za-z0-9._-]{1,64})\//.exec(entry.idempotencyKey);
    const slot: KeySlot = agency ? 'AGENCY' : ((match?.[2] as KeySlot | undefined) ?? (entry.profile === 'citizen-encryption' ? 'KEYX' : 'SIGN'));
    await registry.transaction(async (tx) => {
      if (await tx.getCertificate(entry.serialHex)) return; // recorded meanwhile
      await tx.insertCertificate({
        serialHex: entry.serialHex,
        issuerKeyId: entry.issuerKeyId,
        profile: entry.profile,
        ...(application ? { applicationId: application.id } : {}),
        keySlot: slot,
        ...(agency ? { systemId: agency[1]! } : {}),
        status: 'REVOKED',
        reason: 'cessationOfOperation',
        revocationTime: now,
        notBefore: entry.notBefore,
        notAfter: entry.notAfter,
        certificateDer: entry.certificateDer!,
        createdAt: now,
        updatedAt: now,
      });
      await tx.recordStatusChange({
        serialHex: entry.serialHex,
        issuerKeyId: entry.issuerKeyId,
        profile: entry.profile,
        status: 'REVOKED',
        reason: 'cessationOfOperation',
        revocationTime: now,
        changedAt: now,
        notBefore: entry.notBefore,
        notAfter: entry.notAfter,
      });
      await tx.audit({
        action: 'certificate.reconcile.revoke',
        outcome: 'SUCCESS',
        actor: { type: 'service', id: serviceIdentity },
        objects: [{ type: 'certificate', id: entry.serialHex }, ...(application ? [{ type: 'application', id: application.id }] : [])],
        reason: application ? `signed for application ${application.id}, which is ${application.state}` : 'signed by ca-signer for no application ra knows',
        attributes: { idempotencyKey: entry.idempotencyKey.slice(0, 128) },
      });
    });
    report.revoked++;
  }
}
