import * as der from './der';

/** Anything that runs SQL: a Pool or a client inside the staging transaction. */
interface Queryable {
  query(text: string, params?: unknown[]): Promise<{ rows: any[] }>; // eslint-disable-line @typescript-eslint/no-explicit-any
}

const STAGING = 'legacy_import';

export interface Disagreement {
  kind: string;
  subject: string;
  location: string;
  detail: string;
  rule: string;
}

export interface ReconciliationReport {
  exportId: string;
  phase: 'DRY_RUN' | 'STAGED' | 'PARTIAL' | 'DONE';
  summary: {
    /** Final status counts per old generation, after the rules. */
    byGeneration: Record<string, { keyId: string; crlThisUpdate: string; VALID: number; SUSPENDED: number; REVOKED: number; legacyCrlEntries: number }>;
    totals: { certificates: number; subscribers: number; cards: number };
    disagreements: Record<string, number>;
  };
  /** Every disagreement with the rule applied (subjects are serials, card numbers or legacy ids: never personal data). */
  disagreements: Disagreement[];
}

export async function buildReport(db: Queryable, exportId: string, phase: ReconciliationReport['phase']): Promise<ReconciliationReport> {
  const { rows: generations } = await db.query(
    `SELECT g.generation, g.key_id, g.crl_this_update,
       (SELECT count(*) FROM ${STAGING}.crl_entries e WHERE e.export_id = g.export_id AND e.generation = g.generation)::int AS crl_entries
     FROM ${STAGING}.generations g WHERE g.export_id = $1 ORDER BY g.generation`,
    [exportId],
  );
  const byGeneration: ReconciliationReport['summary']['byGeneration'] = {};
  for (const g of generations) byGeneration[g.generation] = { keyId: g.key_id, crlThisUpdate: new Date(g.crl_this_update).toISOString(), VALID: 0, SUSPENDED: 0, REVOKED: 0, legacyCrlEntries: g.crl_entries };
  const { rows: counts } = await db.query(
    `SELECT c.generation, f.status, count(*)::int AS n FROM ${STAGING}.final f JOIN ${STAGING}.certificates c USING (export_id, serial_hex) WHERE f.export_id = $1 GROUP BY 1, 2`,
    [exportId],
  );
  for (const c of counts) byGeneration[c.generation]![c.status as 'VALID'] = c.n;
  const { rows: totals } = await db.query(
    `SELECT (SELECT count(*) FROM ${STAGING}.certificates WHERE export_id = $1)::int AS certificates, (SELECT count(*) FROM ${STAGING}.subscribers WHERE export_id = $1)::int AS subscribers,
            (SELECT count(*) FROM ${STAGING}.cards WHERE export_id = $1)::int AS cards`,
    [exportId],
  );
  const { rows: kinds } = await db.query(`SELECT kind, count(*)::int AS n FROM ${STAGING}.disagreements WHERE export_id = $1 GROUP BY kind ORDER BY kind`, [exportId]);
  const { rows: list } = await db.query(`SELECT kind, subject, location, detail, rule FROM ${STAGING}.disagreements WHERE export_id = $1 ORDER BY kind, location, subject`, [exportId]);
  return {
    exportId,
    phase,
    summary: { byGeneration, totals: totals[0], disagreements: Object.fromEntries(kinds.map((k) => [k.kind, k.n])) },
    disagreements: list,
  };
}

/** The report for people: counts first, then the disagreements grouped by kind with their rule. */
export function renderReport(report: ReconciliationReport, check?: NewSystemCheck, limitPerKind = 20): string {
  const out: string[] = [];
  out.push(`Legacy export ${report.exportId}: ${report.phase}`);
  out.push(`  certificates ${report.summary.totals.certificates}, subscribers ${report.summary.totals.subscribers}, cards ${report.summary.totals.cards}`);
  out.push('', 'Final status per generation (after the rules):');
  for (const [g, c] of Object.entries(report.summary.byGeneration)) {
    out.push(`  ${g.padEnd(6)} key ${c.keyId}  valid ${c.VALID}  suspended ${c.SUSPENDED}  revoked ${c.REVOKED}  (legacy CRL of ${c.crlThisUpdate}: ${c.legacyCrlEntries} entries)`);
  }
  out.push('', 'Disagreements:');
  if (report.disagreements.length === 0) out.push('  none');
  const byKind = new Map<string, Disagreement[]>();
  for (const d of report.disagreements) byKind.set(d.kind, [...(byKind.get(d.kind) ?? []), d]);
  for (const [kind, items] of byKind) {
    out.push(`  ${kind}: ${items.length} (rule: ${[...new Set(items.map((i) => i.rule))].join(' / ')})`);
    for (const d of items.slice(0, limitPerKind)) out.push(`    ${d.location}  ${d.subject}  ${d.detail}`);
    if (items.length > limitPerKind) out.push(`    ... ${items.length - limitPerKind} more in the JSON report`);
  }
  if (check) {
    out.push('', 'New system against the legacy records:');
    out.push(`  registry: ${check.registry.checked} serials, ${check.registry.mismatches} differ from the reconciled status`);
    if (check.crl) out.push(`  new CRLs: ${check.crl.checked} serials, ${check.crl.mismatches} whose membership differs; legacy CRL entries missing from them: ${check.crl.legacyMissing}; expired before the new CRL, not listed: ${check.crl.expired ?? 0}`);
    if (check.ocsp) out.push(`  OCSP: ${check.ocsp.checked} serials asked, ${check.ocsp.mismatches} answered otherwise`);
    for (const e of check.examples) out.push(`    ${e}`);
    out.push(`  ${check.ok ? 'EQUAL' : 'NOT EQUAL'}`);
  }
  return `${out.join('\n')}\n`;
}

export interface NewSystemCheck {
  ok: boolean;
  registry: { checked: number; mismatches: number };
  /** `expired`: revoked or held certificates not listed because they expired before the new CRL's thisUpdate (RFC 5280 §3.3 lets them leave). */
  crl?: { checked: number; mismatches: number; legacyMissing: number; expired?: number };
  ocsp?: { checked: number; mismatches: number };
  examples: string[];
}

/**
 * Compares the new system with the reconciled legacy records for every serial: ra's registry
 * status, and the membership of every serial in the new CRLs (a revoked or held certificate is
 * listed with its reason, a valid one is not, and every entry of the legacy CRLs is listed).
 * OCSP answers are compared by the caller (ocsp-check.ts) for every serial or a sample.
 */
export async function checkNewSystem(db: Queryable, exportId: string, newCrls?: Buffer[]): Promise<NewSystemCheck> {
  const examples: string[] = [];
  const { rows: reg } = await db.query(
    `SELECT count(*)::int AS checked, count(*) FILTER (WHERE rc.status IS DISTINCT FROM f.status OR rc.reason IS DISTINCT FROM f.reason)::int AS mismatches,
       (array_agg(f.serial_hex || ': expected ' || f.status || ', registry ' || coalesce(rc.status, 'absent')) FILTER (WHERE rc.status IS DISTINCT FROM f.status OR rc.reason IS DISTINCT FROM f.reason))[1:5] AS examples
     FROM ${STAGING}.final f LEFT JOIN certificates rc ON rc.serial_hex = f.serial_hex WHERE f.export_id = $1`,
    [exportId],
  );
  examples.push(...((reg[0].examples as string[] | null) ?? []).map((e) => `registry ${e}`));
  const result: NewSystemCheck = { ok: reg[0].mismatches === 0, registry: { checked: reg[0].checked, mismatches: reg[0].mismatches }, examples };
  if (newCrls) {
    const entries = new Map<string, number | undefined>();
    /** thisUpdate of each generation's new CRL, by issuer key id. */
    const thisUpdate = new Map<string, Date>();
    for (const crl of newCrls) {
      const fields = der.readCrl(crl);
      for (const e of fields.entries) entries.set(e.serialHex, e.reasonCode);
      if (fields.authorityKeyId) thisUpdate.set(fields.authorityKeyId, fields.thisUpdate);
    }
    let mismatches = 0;
    let checked = 0;
    let legacyMissing = 0;
    let expired = 0;
    // Streamed in pages: memory holds the new CRLs' entries and one page.
    for (let after = ''; ; ) {
      const { rows } = await db.query(
        `SELECT f.serial_hex, f.status, f.reason, (e.serial_hex IS NOT NULL) AS legacy_listed, c.issuer_key_id, c.not_after FROM ${STAGING}.final f
           LEFT JOIN ${STAGING}.crl_entries e ON e.export_id = f.export_id AND e.serial_hex = f.serial_hex
           LEFT JOIN certificates c ON c.serial_hex = f.serial_hex
          WHERE f.export_id = $1 AND f.serial_hex > $2 ORDER BY f.serial_hex LIMIT 20000`,
        [exportId, after],
      );
      if (rows.length === 0) break;
      for (const r of rows) {
        checked++;
        const listed = entries.has(r.serial_hex);
        // RFC 5280 §3.3: an entry may be removed once the certificate has expired, and the crl
        // service does so: a certificate expired before its generation's new CRL may be missing.
        const until = thisUpdate.get(r.issuer_key_id);
        if (!listed && r.status !== 'VALID' && r.not_after && until && r.not_after < until) {
          expired++;
          continue;
        }
        const shouldBe = r.status !== 'VALID';
        const reasonOk = !listed || (r.status === 'SUSPENDED' ? entries.get(r.serial_hex) === 6 : entries.get(r.serial_hex) !== 6);
        if (listed !== shouldBe || !reasonOk) {
          mismatches++;
          if (examples.length < 10) examples.push(`CRL ${r.serial_hex}: expected ${shouldBe ? `listed (${r.status})` : 'not listed'}, ${listed ? `listed with reason ${entries.get(r.serial_hex) ?? 'none'}` : 'not listed'}`);
        }
        if (r.legacy_listed && !listed) legacyMissing++;
      }
      after = rows[rows.length - 1].serial_hex;
    }
    result.crl = { checked, mismatches, legacyMissing, expired };
    result.ok = result.ok && mismatches === 0 && legacyMissing === 0;
  }
  return result;
}
