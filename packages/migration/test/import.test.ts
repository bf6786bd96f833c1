import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fromBinary } from '@bufbuild/protobuf';
import { systemClock } from '@pki/kit';
import { eventsV1 } from '@pki/proto';
import { generateLegacyExport, type GeneratedExport } from '../src/generate';
import { importLegacyExport } from '../src/importer';
import { checkNewSystem, renderReport } from '../src/report';
import { alteredCopy, CLI, createKeys, createTargets, registrySnapshot, type Targets } from './fixture';

const run = promisify(execFile);

describe('legacy migration: a dirty export into ra and card-mgmt (real PostgreSQL)', () => {
  let dir: string;
  let exportDir: string;
  let generated: GeneratedExport;
  let keys: Record<string, string>;
  let first: Targets;
  const opened: Targets[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'migration-test-'));
    exportDir = join(dir, 'export');
    keys = await createKeys(dir);
    generated = await generateLegacyExport({ dir: exportDir, certificates: 1200, dirt: true, exportId: 'test-dirty' });
    first = await createTargets('first', keys, dir);
    opened.push(first);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(opened.map((t) => t.close()));
    await rm(dir, { recursive: true, force: true });
  });

  it('the generator put every kind of dirt in', () => {
    const f = generated.facts;
    for (const kind of ['duplicateCertificates', 'duplicateStatusRows', 'duplicateSubscribers', 'crlOverridesStatus', 'statusNotOnCrl', 'revokedAfterCrl', 'missingSubscribers', 'big5Names', 'utf8Names'] as const) {
      expect({ kind, n: f[kind] > 0 }).toEqual({ kind, n: true });
    }
  });

  it('a dry run validates and reports, and writes nothing', async () => {
    const result = await importLegacyExport(first.targets, { dir: exportDir, dryRun: true, clock: systemClock, batchSize: 100 });
    expect(result.errors).toEqual([]);
    expect(result.phase).toBe('DRY_RUN');
    expect(result.report!.summary.totals.certificates).toBe(generated.facts.uniqueCertificates);
    expect((await first.ra.query('SELECT count(*)::int AS n FROM certificates')).rows[0].n).toBe(0);
    expect((await first.ra.query('SELECT count(*)::int AS n FROM subscribers')).rows[0].n).toBe(0);
    expect((await first.ra.query('SELECT count(*)::int AS n FROM legacy_import.runs')).rows[0].n).toBe(0);
  });

  it('imports everything once, with every disagreement reported with its rule, and the registry as the rules say', async () => {
    const result = await importLegacyExport(first.targets, { dir: exportDir, clock: systemClock, batchSize: 100 });
    expect(result.errors).toEqual([]);
    expect(result.phase).toBe('DONE');
    const f = generated.facts;
    const report = result.report!;
    expect(report.summary.disagreements).toEqual({
      'duplicate-certificate': f.duplicateCertificates,
      'duplicate-status': f.duplicateStatusRows,
      'duplicate-subscriber': f.duplicateSubscribers,
      'missing-subscriber': f.missingSubscribers,
      'status-vs-crl': f.crlOverridesStatus + f.statusNotOnCrl + f.revokedAfterCrl,
    });
    const rules = new Set(report.disagreements.filter((d) => d.kind === 'status-vs-crl').map((d) => d.rule));
    expect(rules).toEqual(new Set(['the legacy CRL is authoritative for revocation', 'changed after the last CRL: the status table is newer and is kept']));
    expect(report.disagreements.filter((d) => d.rule.startsWith('changed after')).length).toBe(f.revokedAfterCrl);
    for (const d of report.disagreements) expect(d.location).toMatch(/^(certificates\.txt|status\.tsv|cards\.tsv|subscribers-(big5|utf8)\.tsv):\d+$/);
    // The report counts per generation add up to the certificates, and match the generator's truth.
    const byStatus = { VALID: 0, SUSPENDED: 0, REVOKED: 0 };
    for (const s of f.finalStatus.values()) byStatus[s]++;
    const reported = Object.values(report.summary.byGeneration).reduce((acc, g) => ({ VALID: acc.VALID + g.VALID, SUSPENDED: acc.SUSPENDED + g.SUSPENDED, REVOKED: acc.REVOKED + g.REVOKED }), { VALID: 0, SUSPENDED: 0, REVOKED: 0 });
    expect(reported).toEqual(byStatus);
    expect(renderReport(report)).toContain('status-vs-crl');

    // The registry: every serial once, with the status the rules give.
    const { rows } = await first.ra.query('SELECT serial_hex, status, card_number FROM certificates');
    expect(rows.length).toBe(f.uniqueCertificates);
    for (const r of rows) expect({ serial: r.serial_hex, status: r.status }).toEqual({ serial: r.serial_hex, status: f.finalStatus.get(r.serial_hex) });
    // Certificates of cards whose subscriber is missing are kept, without the card link.
    expect(rows.filter((r) => r.card_number === null).length).toBe(2 * f.missingSubscribers);
    // One status event per certificate, as ra emits them, for ocsp and crl.
    const { rows: events } = await first.ra.query(`SELECT key, payload FROM outbox WHERE producer = 'ra' AND topic = 'pki.certificate-status.v1'`);
    expect(events.length).toBe(f.uniqueCertificates);
    const revoked = events.map((e) => fromBinary(eventsV1.CertificateStatusChangedSchema, e.payload)).find((e) => e.status === eventsV1.CertificateStatus.REVOKED)!;
    expect(revoked.revocationTime).toBeDefined();
    expect(generated.generations.map((g) => g.keyId)).toContain(revoked.issuerKeyId);
    // Subscribers: merged duplicates, personal data sealed (an NFD legacy name reads back in NFC), the legacy code hash kept with its algorithm.
    const { rows: subscribers } = await first.ra.query('SELECT id, name_sealed, pd_key_id, subscriber_code_hash FROM subscribers');
    expect(subscribers.length).toBe(f.subscriberLines - f.duplicateSubscribers);
    const names = subscribers.map((s) => first.targets.vault.open('name', s.id, { keyId: s.pd_key_id, ciphertext: s.name_sealed }));
    expect(names.every((n) => n === n.normalize('NFC') && !n.includes('\u3000'))).toBe(true);
    expect(names.some((n) => /[\u{21619}]/u.test(n))).toBe(true);
    expect(subscribers.every((s) => /^legacy-(sha1|md5)-salt\$[0-9a-f]+\$[0-9a-f]+$/.test(s.subscriber_code_hash))).toBe(true);
    expect(Buffer.concat(subscribers.map((s) => s.name_sealed)).includes(Buffer.from('陳'))).toBe(false);
    // Cards in ra (those with a holder) and in card-mgmt (all, holderless ones without a subscriber).
    expect((await first.ra.query('SELECT count(*)::int AS n FROM cards')).rows[0].n).toBe(f.cards - f.missingSubscribers);
    const { rows: cmCards } = await first.cardMgmt.query('SELECT count(*)::int AS n, count(*) FILTER (WHERE subscriber_id IS NULL)::int AS holderless FROM cards');
    expect(cmCards[0]).toEqual({ n: f.cards, holderless: f.missingSubscribers });
    // Every batch audited in ra's audit channel.
    expect((await first.ra.query(`SELECT count(*)::int AS n FROM outbox WHERE producer = 'ra.audit'`)).rows[0].n).toBeGreaterThan(0);
    // The final check against the registry.
    const check = await checkNewSystem(first.ra, 'test-dirty');
    expect(check.registry).toEqual({ checked: f.uniqueCertificates, mismatches: 0 });
  });

  it('a second run changes nothing', async () => {
    const before = await registrySnapshot(first);
    const result = await importLegacyExport(first.targets, { dir: exportDir, clock: systemClock, batchSize: 100 });
    expect(result.phase).toBe('DONE');
    expect(result.written).toEqual({ subscribers: 0, raCards: 0, certificates: 0, events: 0, cardMgmtCards: 0 });
    expect(await registrySnapshot(first)).toEqual(before);
  });

  it('a run killed (SIGKILL) mid-way and restarted ends exactly like the uninterrupted one', async () => {
    const killed = await createTargets('killed', keys, dir);
    opened.push(killed);
    const cli = () => spawn(process.execPath, [CLI, 'import', '--export', exportDir, '--config', killed.configFile, '--quiet'], { stdio: 'ignore' });
    // Batches committed so far, over every lane of every stage.
    const batches = async () => Number((await killed.ra.query(`SELECT coalesce((SELECT sum(batches) FROM legacy_import.lanes), 0) AS n`).catch(() => ({ rows: [{ n: 0 }] }))).rows[0].n);
    // Kill once while it stages (nothing committed yet) and once at a random batch of the import.
    for (const killAt of [0, 2 + Math.floor(Math.random() * 20)]) {
      const child = cli();
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      const started = Date.now();
      while (child.exitCode === null) {
        if (killAt === 0 ? Date.now() - started > 300 : (await batches()) >= killAt) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      child.kill('SIGKILL');
      await exited;
    }
    const killedAt = await batches();
    const { stdout } = await run(process.execPath, [CLI, 'import', '--export', exportDir, '--config', killed.configFile, '--quiet'], { timeout: 300_000 });
    expect(JSON.parse(stdout).phase).toBe('DONE');
    expect(await registrySnapshot(killed)).toEqual(await registrySnapshot(first));
    expect(killedAt).toBeGreaterThan(0);
  }, 300_000);

  describe('bad input: reported with its location, nothing imported', () => {
    let bad: Targets;
    beforeAll(async () => {
      bad = await createTargets('bad', keys, dir);
      opened.push(bad);
    });

    const expectNothingImported = async () => {
      for (const table of ['certificates', 'subscribers', 'cards', 'outbox']) expect({ table, n: (await bad.ra.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n }).toEqual({ table, n: 0 });
      expect((await bad.cardMgmt.query('SELECT count(*)::int AS n FROM cards')).rows[0].n).toBe(0);
      expect((await bad.ra.query('SELECT count(*)::int AS n FROM legacy_import.certificates')).rows[0].n).toBe(0);
    };
    const importOf = (d: string) => importLegacyExport(bad.targets, { dir: d, clock: systemClock, batchSize: 100 });

    it('a truncated file', async () => {
      const d = await alteredCopy(exportDir, 'certificates.txt', (b) => b.subarray(0, Math.floor(b.length * 0.6)), { keepManifest: true });
      const result = await importOf(d);
      expect(result.ok).toBe(false);
      expect(result.errors[0]!.location).toMatch(/^certificates\.txt:\d+$/);
      expect(result.errors[0]!.problem).toMatch(/cut short/);
      await expectNothingImported();
    });

    it('a certificate that does not verify against its old issuer', async () => {
      const d = await alteredCopy(exportDir, 'certificates.txt', (b) => {
        const lines = b.toString('utf8').split('\n');
        const [serial, b64] = lines[4]!.split('\t');
        const der = Buffer.from(b64!, 'base64');
        der[der.length - 10]! ^= 0x01; // inside the signature
        lines[4] = `${serial}\t${der.toString('base64')}`;
        return Buffer.from(lines.join('\n'));
      });
      const result = await importOf(d);
      expect(result.errors).toEqual([{ location: 'certificates.txt:5', problem: expect.stringMatching(/signature does not verify against generation G1's key/) }]);
      await expectNothingImported();
    });

    it('an unknown status value', async () => {
      const d = await alteredCopy(exportDir, 'status.tsv', (b) => {
        const lines = b.toString('utf8').split('\n');
        const fields = lines[6]!.split('\t');
        fields[1] = 'withdrawn';
        lines[6] = fields.join('\t');
        return Buffer.from(lines.join('\n'));
      });
      const result = await importOf(d);
      expect(result.errors).toEqual([{ location: 'status.tsv:7', problem: expect.stringMatching(/unknown status value 'withdrawn'/) }]);
      await expectNothingImported();
    });

    it('a CRL from another issuer', async () => {
      const { readFile } = await import('node:fs/promises');
      const g1Crl = await readFile(join(exportDir, 'crl', 'G1.crl'));
      const d = await alteredCopy(exportDir, 'crl/G2.crl', () => g1Crl);
      const result = await importOf(d);
      expect(result.errors).toEqual([{ location: 'crl/G2.crl', problem: expect.stringMatching(/CRL from another issuer/) }]);
      await expectNothingImported();
    });
  });
});
