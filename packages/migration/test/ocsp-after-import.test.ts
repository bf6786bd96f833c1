import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { issueServiceCertificate } from '@pki/internal-ca';
import { fromPem, toPem } from '@pki/x509';
import * as der from '../src/der';
import { REPO, startUp, type RunningUp } from '../../devstack/test/run-up';
import { generateLegacyExport, type GeneratedExport } from '../src/generate';
import type { Disagreement } from '../src/report';
import { CLI as MIGRATE, reconciledLegacyRecords, type LegacyRecord } from './fixture';

const run = promisify(execFile);

/**
 * Migration day as docs/runbooks/migration.md tells operators, against the embedded deployment
 * `make up` runs (every service its own process, embedded PostgreSQL as the event bus, SoftHSM):
 * the ceremony's transport key, a dirty legacy export wrapped under it, the dry run,
 * import-legacy and create-ocsp-responder per old generation, ca-signer restarted, the import
 * with the built `pki-migrate`, its check; then `openssl ocsp` asks the running ocsp service about
 * each kind of legacy certificate of every old generation, and OpenSSL's verdict on the signature
 * (against the legacy root and the old CA certificate) and on the status is what is asserted.
 */

jest.setTimeout(600_000);

const CA_SIGNER_CLI = path.join(REPO, 'services', 'ca-signer', 'dist', 'cli.js');
const DAY = 86_400_000;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
/** How OpenSSL prints a GeneralizedTime (ASN1_TIME_print): `Dec  4 10:00:00 2026 GMT`. */
const opensslTime = (d: Date) => `${MONTHS[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, ' ')} ${d.toISOString().slice(11, 19)} ${d.getUTCFullYear()} GMT`;

interface Endpoints {
  http: { ocsp: string; crl: string };
  admin: { crl: string };
  serviceCa: string;
  configs: Record<string, string>;
  pids: string;
}

interface Case {
  what: string;
  record: LegacyRecord;
}

describe('after a legacy import, the running ocsp service answers for the imported certificates (openssl ocsp)', () => {
  let parent: string;
  let state: string;
  let work: string;
  let up: RunningUp | undefined;
  let endpoints: Endpoints;
  let db: pg.Client;
  let transportKeyId: string;
  let exported: GeneratedExport;
  let migrationConfig: string;
  let report: { disagreements: Disagreement[] };
  let records: Map<string, LegacyRecord>;
  let generations: Awaited<ReturnType<typeof reconciledLegacyRecords>>['generations'];
  /** ocsp's responses.expiredRetentionDays, set for the migration (below). */
  let retentionDays: number;
  const exportDir = () => path.join(work, 'export');
  const file = (name: string) => path.join(work, name);

  beforeAll(async () => {
    mkdirSync(path.join(REPO, 'var', 'test'), { recursive: true });
    parent = mkdtempSync(path.join(REPO, 'var', 'test', 'migration-ocsp-'));
    chmodSync(parent, 0o700);
    work = path.join(parent, 'work');
    mkdirSync(work);
    ({ up, state } = await startUp((attempt) => path.join(parent, `state-${attempt}`)));
    endpoints = JSON.parse(readFileSync(path.join(state, 'endpoints.json'), 'utf8')) as Endpoints;
    db = new pg.Client({ connectionString: readFileSync(path.join(state, 'secrets', 'database-url'), 'utf8').trim() });
    await db.connect();
  });

  afterAll(async () => {
    await db?.end().catch(() => undefined);
    if (up && up.child.exitCode === null) {
      up.child.kill('SIGTERM');
      await up.exited;
    }
    rmSync(parent, { recursive: true, force: true });
  });

  const configOf = (service: string) => JSON.parse(readFileSync(endpoints.configs[service]!, 'utf8')) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

  /**
   * `pki ceremony <step>` as the runbook runs it. The embedded deployment has no custodians (its
   * hierarchy comes from init-dev, its PIN from a file), so the steps run on a copy of ca-signer's
   * config that allows --pin-file; everything else (token, database) is the running signer's.
   */
  const ceremony = async (...args: string[]) => {
    const config = file('ca-signer-ceremony.json');
    writeFileSync(config, JSON.stringify({ ...configOf('ca-signer'), ceremony: { requireCustody: false } }));
    try {
      const { stdout } = await run(process.execPath, [CA_SIGNER_CLI, 'ceremony', ...args, '--config', config, '--pin-file', path.join(state, 'secrets', 'hsm-pin')], { timeout: 300_000 });
      return JSON.parse(stdout) as Record<string, string>;
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      throw new Error(`pki ceremony ${args[0]} exited with ${e.code}: ${e.stderr ?? ''}${e.stdout ?? ''}`);
    }
  };

  const migrate = async (...args: string[]) => {
    try {
      return await run(process.execPath, [MIGRATE, ...args], { timeout: 300_000 });
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      throw new Error(`pki-migrate ${args[0]} exited with ${e.code}: ${e.stderr ?? ''}${e.stdout ?? ''}`);
    }
  };

  it('creates the transport key in the HSM; the old centre wraps its generations\' keys under it in a dirty export', async () => {
    const out = await ceremony('create-transport-key', '--label', 'migration-test', '--out', file('transport.pem'));
    transportKeyId = out.transportKeyId!;
    expect(transportKeyId).toMatch(/^[0-9a-f]{32}$/);
    exported = await generateLegacyExport({
      dir: exportDir(),
      certificates: 600,
      dirt: true,
      exportId: 'ocsp-after-import',
      transportKeySpki: fromPem(readFileSync(file('transport.pem'), 'utf8'), 'PUBLIC KEY'),
    });
    ({ records, generations } = await reconciledLegacyRecords(exportDir()));
    // The rules read from the export agree with the generator's own truth.
    expect(new Map([...records].map(([serial, r]) => [serial, r.status]))).toEqual(exported.facts.finalStatus);
    for (const kind of ['duplicateCertificates', 'duplicateStatusRows', 'crlOverridesStatus', 'statusNotOnCrl', 'revokedAfterCrl', 'missingSubscribers'] as const) {
      expect({ kind, present: exported.facts[kind] > 0 }).toEqual({ kind, present: true });
    }

    // The migration config: ra's own database and personal-data keys, card-mgmt's and ca-signer's databases.
    const ra = configOf('ra');
    migrationConfig = file('migration.json');
    writeFileSync(
      migrationConfig,
      JSON.stringify({
        ra: { database: ra.database, personalData: ra.personalData, statusProducer: ra.events.producer, auditProducer: ra.events.auditProducer },
        cardMgmt: { database: configOf('card-mgmt').database },
        caSigner: { database: configOf('ca-signer').database },
        batchSize: 100,
      }),
    );
  });

  it('the dry run accepts the export and writes nothing', async () => {
    const { stdout } = await migrate('import', '--export', exportDir(), '--config', migrationConfig, '--dry-run', '--quiet');
    expect(JSON.parse(stdout).phase).toBe('DRY_RUN');
    expect((await db.query('SELECT count(*)::int AS n FROM ra.certificates')).rows[0].n).toBe(0);
  });

  it('brings every old generation into the HSM (import-legacy) with its OCSP responder; ca-signer loads them on restart, ocsp restarts with its archive cutoff', async () => {
    for (const g of exported.generations) {
      const imported = await ceremony('import-legacy', '--generation', `L-${g.generation}`, '--cert', path.join(exportDir(), 'ca', `${g.generation}.cer`), '--issuer-cert', path.join(exportDir(), 'ca', 'ROOT.cer'),
        '--wrapped', path.join(exportDir(), 'keys', `${g.generation}.wrapped`), '--transport-key', transportKeyId);
      expect(imported).toMatchObject({ keyId: g.keyId, active: false, legacy: true });
      const responder = await ceremony('create-ocsp-responder', '--issuer', g.keyId);
      expect(responder).toMatchObject({ purpose: 'OCSP_RESPONDER', issuerKeyId: g.keyId });
    }
    // "Restart ca-signer so it loads them": the supervisor of make up starts it again.
    const pid = Number(readFileSync(path.join(endpoints.pids, 'ca-signer.pid'), 'utf8'));
    process.kill(pid, 'SIGTERM');
    await up!.waitFor(/ca-signer is back \(pid \d+, restart 1\)/, 240_000);

    // ocsp answers unauthorized for a certificate expired more than responses.expiredRetentionDays
    // (365 by default) ago: every certificate of the oldest generation is. The operator chooses the
    // archive cutoff before the import (the runbook says why); here it falls in the middle of the
    // first generation's certificates, so that both sides of it are asked below.
    const first = [...records.values()].filter((r) => r.generation === generations[0]!.generation).map((r) => r.notAfter.getTime()).sort((a, b) => a - b);
    retentionDays = Math.ceil((Date.now() - first[Math.floor(first.length / 2)]!) / DAY);
    expect(retentionDays).toBeGreaterThan(365);
    const ocsp = configOf('ocsp');
    writeFileSync(endpoints.configs.ocsp!, JSON.stringify({ ...ocsp, responses: { ...ocsp.responses, expiredRetentionDays: retentionDays } }, null, 2));
    process.kill(Number(readFileSync(path.join(endpoints.pids, 'ocsp.pid'), 'utf8')), 'SIGTERM');
    await up!.waitFor(/ocsp is back \(pid \d+, restart 1\)/, 240_000);
  });

  it('imports the export with the built pki-migrate, and its check finds ra\'s registry equal to the legacy records', async () => {
    const { stdout } = await migrate('import', '--export', exportDir(), '--config', migrationConfig, '--report', file('final.json'), '--report-text', file('final.txt'), '--quiet');
    expect(JSON.parse(stdout)).toMatchObject({ phase: 'DONE', written: { certificates: exported.facts.uniqueCertificates } });
    report = JSON.parse(readFileSync(file('final.json'), 'utf8'));
    const check = await migrate('check', '--export-id', exported.exportId, '--config', migrationConfig);
    expect(JSON.parse(check.stdout)).toMatchObject({ ok: true, registry: { checked: exported.facts.uniqueCertificates, mismatches: 0 } });
  });

  describe('openssl ocsp against the ocsp service, per old generation', () => {
    let asked = 0;

    beforeAll(async () => {
      for (const g of generations) {
        writeFileSync(file(`${g.generation}.pem`), toPem(g.certificateDer, 'CERTIFICATE'));
        writeFileSync(file(`${g.generation}-chain.pem`), toPem(exported.root.certificateDer, 'CERTIFICATE') + toPem(g.certificateDer, 'CERTIFICATE'));
      }
      // The status events travel ra's outbox -> the bus -> ocsp: wait until ocsp's store holds every imported certificate.
      const until = Date.now() + 300_000;
      for (;;) {
        const { rows } = await db.query(`SELECT count(*)::int AS n FROM ocsp.certificates`);
        if (rows[0].n === records.size) break;
        if (Date.now() > until) throw new Error(`ocsp's store holds ${rows[0].n} of the ${records.size} imported certificates after 300 s`);
        await new Promise((r) => setTimeout(r, 500));
      }
    });

    /** `openssl ocsp` for one serial of one old generation: its whole output (the verdict is on stderr, the status on stdout). */
    const ask = async (generation: string, serialHex: string, nonce = false): Promise<string> => {
      const n = asked++;
      const args = ['ocsp', '-issuer', file(`${generation}.pem`), '-serial', `0x${serialHex}`, '-url', endpoints.http.ocsp, '-CAfile', file(`${generation}-chain.pem`), '-respout', file(`resp-${n}.der`), ...(nonce ? [] : ['-no_nonce'])];
      try {
        const { stdout, stderr } = await run('openssl', args, { timeout: 60_000 });
        return `${stderr}${stdout}`;
      } catch (err) {
        const e = err as { stdout?: string; stderr?: string };
        return `${e.stderr ?? ''}${e.stdout ?? ''}`;
      }
    };
    /** Asks until the responder has a signed answer (tryLater while the response is being signed, unauthorized until the event has reached its memory). */
    const signedAnswer = async (generation: string, serialHex: string, nonce = false): Promise<string> => {
      const until = Date.now() + 180_000;
      for (;;) {
        const text = await ask(generation, serialHex, nonce);
        if (!/Responder Error: (tryLater|unauthorized)/.test(text)) return text;
        if (Date.now() > until) throw new Error(`no signed answer for ${serialHex} within 180 s: ${text}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    };
    const expectAnswer = (text: string, serialHex: string, record: LegacyRecord) => {
      expect(text).toContain('Response verify OK');
      if (record.status === 'VALID') {
        expect(text).toContain(`0x${serialHex}: good`);
        return;
      }
      const lines = new RegExp(`0x${serialHex}: revoked\\n(?:\\s+This Update: .*\\n)(?:\\s+Next Update: .*\\n)?\\s+Reason: (\\S+)\\n\\s+Revocation Time: (.*)\\n`).exec(text);
      expect({ serialHex, answer: lines ? { reason: lines[1], time: lines[2] } : text }).toEqual({ serialHex, answer: { reason: record.reason, time: opensslTime(record.revocationTime!) } });
    };

    /** Within the archive cutoff, with a day's margin either side so that the test's clock and ocsp's cannot disagree. */
    const answerable = (r: LegacyRecord) => r.notAfter.getTime() + retentionDays * DAY > Date.now() + DAY;
    const beyondCutoff = (r: LegacyRecord) => r.notAfter.getTime() + retentionDays * DAY < Date.now() - DAY;

    it('answers every kind of legacy certificate of every old generation as the reconciled legacy records say, signed by that generation\'s responder (OpenSSL: Response verify OK)', async () => {
      const statusVsCrl = new Map(report.disagreements.filter((d) => d.kind === 'status-vs-crl').map((d) => [d.subject, d]));
      const disagreeing = new Set(report.disagreements.map((d) => d.subject));
      const kinds = new Set<string>();
      for (const g of generations) {
        const mine = [...records.values()].filter((r) => r.generation === g.generation && answerable(r));
        const pick = (what: string, test: (r: LegacyRecord) => boolean): Case[] => {
          const found = mine.find(test);
          return found ? [{ what, record: found }] : [];
        };
        const cases = [
          ...pick('valid', (r) => r.status === 'VALID' && r.legacyStatus === 'normal' && !disagreeing.has(r.serialHex)),
          ...pick('valid again after a hold (resumed)', (r) => r.status === 'VALID' && r.legacyStatus === 'resumed' && !disagreeing.has(r.serialHex)),
          ...pick('revoked', (r) => r.status === 'REVOKED' && r.onCrl && !disagreeing.has(r.serialHex)),
          ...pick('held', (r) => r.status === 'SUSPENDED' && !disagreeing.has(r.serialHex)),
          ...pick('status table valid, the CRL revokes or holds: the CRL wins', (r) => statusVsCrl.has(r.serialHex) && r.onCrl && r.status !== 'VALID'),
          ...pick('status table revoked before the CRL, not on it: the CRL wins (valid)', (r) => statusVsCrl.get(r.serialHex)?.rule === 'the legacy CRL is authoritative for revocation' && r.status === 'VALID'),
          ...pick('revoked after the last CRL: the newer status table is kept', (r) => statusVsCrl.get(r.serialHex)?.rule.startsWith('changed after the last CRL') === true && r.status === 'REVOKED'),
        ];
        // Every generation has valid, revoked and held certificates OCSP answers for.
        expect({ generation: g.generation, kinds: cases.map((c) => c.what) }).toEqual({ generation: g.generation, kinds: expect.arrayContaining(['valid', 'revoked', 'held']) });
        for (const c of cases) {
          const text = await signedAnswer(g.generation, c.record.serialHex);
          expect({ generation: g.generation, case: c.what, verified: text.includes('Response verify OK') }).toEqual({ generation: g.generation, case: c.what, verified: true });
          expectAnswer(text, c.record.serialHex, c.record);
          kinds.add(c.what);
        }
        // With a nonce the answer is signed live (RFC 8954) by the same legacy generation's responder.
        const valid = cases.find((c) => c.what === 'valid')!;
        const live = await signedAnswer(g.generation, valid.record.serialHex, true);
        expectAnswer(live, valid.record.serialHex, valid.record);
        expect(live).not.toMatch(/nonce/i);
      }
      // Every kind of status-vs-CRL disagreement was asked about in some generation.
      expect(kinds.size).toBe(7);
    });

    it('answers for every imported certificate as the reconciled legacy records say: within the archive cutoff signed and verified, before it unauthorized', async () => {
      const queue = [...records.values()].filter((r) => answerable(r) || beyondCutoff(r));
      let signed = 0;
      let refused = 0;
      // Two openssl processes at a time: the machine is shared.
      await Promise.all(
        [0, 1].map(async () => {
          for (let r = queue.shift(); r; r = queue.shift()) {
            if (answerable(r)) {
              expectAnswer(await signedAnswer(r.generation, r.serialHex), r.serialHex, r);
              signed++;
            } else {
              expect({ serial: r.serialHex, answer: (await ask(r.generation, r.serialHex)).trim() }).toEqual({ serial: r.serialHex, answer: 'Responder Error: unauthorized (6)' });
              refused++;
            }
          }
        }),
      );
      // Within a day of the cutoff a certificate is left out (the two clocks); every other one was asked.
      expect(signed + refused).toBeGreaterThan(records.size - 10);
      expect(signed).toBeGreaterThan(0);
      expect(refused).toBeGreaterThan(0);
    });

    it('answers unauthorized for a serial the old generation never issued, and for a certificate expired before the archive cutoff', async () => {
      for (const g of generations) {
        let never: string;
        do never = randomBytes(16).toString('hex');
        while (records.has(never));
        expect(await ask(g.generation, never)).toContain('Responder Error: unauthorized (6)');
      }
      const expired = [...records.values()].find((r) => r.generation === generations[0]!.generation && beyondCutoff(r))!;
      expect(expired).toBeDefined();
      expect(await ask(generations[0]!.generation, expired.serialHex)).toContain('Responder Error: unauthorized (6)');
    });
  });

  describe('the CRLs the crl service publishes for the old generations', () => {
    const crls = new Map<string, Buffer>();

    beforeAll(async () => {
      // crl learns each old generation from ca-signer with its first status event, and signs a first
      // complete CRL at once, while the rest of the import's events are still arriving; the next
      // complete one is due hours later. So, once crl holds every revocation of the import, the
      // operator asks for a complete CRL of each old generation (README: CRL, regeneration on demand).
      // (crl forgets a revocation once its certificate has expired: only those not expired are counted.)
      const cutoff = new Date(Date.now() + 3_600_000);
      const listed = [...records.values()].filter((r) => r.status !== 'VALID' && r.notAfter > cutoff).length;
      const until = Date.now() + 300_000;
      for (;;) {
        const { rows } = await db.query(`SELECT count(*)::int AS n FROM crl.revocations WHERE status <> 'VALID' AND not_after > $1`, [cutoff]);
        if (rows[0].n === listed) break;
        if (Date.now() > until) throw new Error(`crl holds ${rows[0].n} of the ${listed} unexpired revocations after 300 s`);
        await new Promise((r) => setTimeout(r, 500));
      }
      const operator = await issueServiceCertificate({ caDir: path.join(state, 'service-ca'), outDir: path.join(work, 'operator'), service: 'operator' });
      for (const g of generations) {
        let done = await admin('POST', '/v1/regenerations', operator, { issuerKeyId: g.keyId, kind: 'full' }, `migration-${g.generation}`);
        while (done.state === 'PENDING') {
          await new Promise((r) => setTimeout(r, 500));
          done = await admin('GET', `/v1/regenerations/${done.id}`, operator);
        }
        expect(done).toMatchObject({ state: 'DONE' });
        const res = await fetch(`${endpoints.http.crl}/${g.keyId}.crl`);
        expect(res.status).toBe(200);
        crls.set(g.generation, Buffer.from(await res.arrayBuffer()));
        writeFileSync(file(`new-${g.generation}.crl`), crls.get(g.generation)!);
      }
    });

    it('are signed with the old generations\' keys now in the HSM: OpenSSL verifies each against its old CA certificate', () => {
      for (const g of generations) {
        const { stderr } = spawnOpenssl(['crl', '-inform', 'DER', '-in', file(`new-${g.generation}.crl`), '-CAfile', file(`${g.generation}.pem`), '-noout']);
        expect({ generation: g.generation, verdict: stderr.trim() }).toEqual({ generation: g.generation, verdict: 'verify OK' });
      }
    });

    it('list exactly the revoked and held certificates of the reconciled legacy records that have not expired, with the legacy time and reason', () => {
      const reasonCode: Record<string, number> = { unspecified: 0, keyCompromise: 1, cACompromise: 2, affiliationChanged: 3, superseded: 4, cessationOfOperation: 5, certificateHold: 6, privilegeWithdrawn: 9 };
      for (const g of generations) {
        const crl = der.readCrl(crls.get(g.generation)!);
        // RFC 5280 §3.3: an entry may leave the CRL once the certificate has expired (crl keeps it schedule.expiredGraceSeconds longer).
        const listedAfter = crl.thisUpdate.getTime() - configOf('crl').schedule.expiredGraceSeconds * 1000;
        const expected = [...records.values()].filter((r) => r.generation === g.generation && r.status !== 'VALID' && r.notAfter.getTime() > listedAfter);
        const got = new Map(crl.entries.map((e) => [e.serialHex, e]));
        expect({ generation: g.generation, entries: crl.entries.length }).toEqual({ generation: g.generation, entries: expected.length });
        for (const r of expected) {
          const e = got.get(r.serialHex);
          expect({ serial: r.serialHex, entry: e && { time: e.revocationDate.toISOString(), reason: e.reasonCode ?? 0 } }).toEqual({ serial: r.serialHex, entry: { time: r.revocationTime!.toISOString(), reason: reasonCode[r.reason!] } });
        }
      }
    });

    it('pki-migrate check (runbook step 6) finds them equal to the reconciled legacy records, expired certificates aside', async () => {
      const crlArgs = generations.flatMap((g) => ['--crl', file(`new-${g.generation}.crl`)]);
      const { stdout } = await migrate('check', '--export-id', exported.exportId, '--config', migrationConfig, ...crlArgs);
      const revokedOrHeld = [...records.values()].filter((r) => r.status !== 'VALID').length;
      const listed = [...crls.values()].reduce((n, crl) => n + der.readCrl(crl).entries.length, 0);
      expect(JSON.parse(stdout)).toMatchObject({ ok: true, crl: { checked: records.size, mismatches: 0, legacyMissing: 0, expired: revokedOrHeld - listed } });
      expect(revokedOrHeld - listed).toBeGreaterThan(0);
    });
  });

  /** A call to crl's operator API (HTTPS, a client certificate of the internal CA naming the operator). */
  const admin = (method: string, pathname: string, identity: { certFile: string; keyFile: string }, body?: unknown, idempotencyKey?: string) =>
    new Promise<{ id: string; state: string }>((resolve, reject) => {
      const url = new URL(pathname, endpoints.admin.crl);
      const req = httpsRequest(
        url,
        {
          method,
          ca: readFileSync(endpoints.serviceCa),
          cert: readFileSync(identity.certFile),
          key: readFileSync(identity.keyFile),
          headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}) },
        },
        (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => ((res.statusCode ?? 500) < 300 ? resolve(JSON.parse(text)) : reject(new Error(`crl admin ${method} ${pathname}: ${res.statusCode} ${text}`))));
        },
      );
      req.on('error', reject);
      req.end(body ? JSON.stringify(body) : undefined);
    });
});

const spawnOpenssl = (args: string[]) => spawnSync('openssl', args, { encoding: 'utf8' });
