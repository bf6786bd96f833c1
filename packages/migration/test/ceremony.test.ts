import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as graphene from 'graphene-pk11';
import { createLogger, systemClock } from '@pki/kit';
import { fromPem, toPem } from '@pki/x509';
import { createCeremonyFixture, type CeremonyFixture, openssl } from '../../../services/ca-signer/test/ceremony-fixture';
import { openCeremony } from '../../../services/ca-signer/src/ceremony/session';
import { CrlSigner } from '../../../services/ca-signer/src/domain/crl-signing';
import { IssuerRegistry } from '../../../services/ca-signer/src/domain/issuer-registry';
import * as der from '../src/der';
import { generateLegacyExport, type GeneratedExport } from '../src/generate';
import { importLegacyExport } from '../src/importer';
import { checkNewSystem } from '../src/report';
import { createKeys, createTargets } from './fixture';

// The migration day's key ceremony against a real SoftHSM token, with OpenSSL as the judge: a
// transport key made in the token, the old CA keys wrapped under it by the "legacy HSM" (the
// generator), unwrapped into the token by `pki ceremony import-legacy`, and a CRL for the old
// generation signed by the new system that OpenSSL verifies against the OLD CA certificate.
let f: CeremonyFixture;
let exported: GeneratedExport;
let transportKeyId: string;
const file = (name: string) => join(f.dir, name);

beforeAll(async () => {
  f = await createCeremonyFixture('legacy-import');
}, 120_000);
afterAll(async () => {
  await f.dispose();
});

const pin = () => ['--pin-file', f.initialPinFile];
/** `openssl crl -CAfile` exits 0 whether or not the signature verifies: its verdict is on stderr. */
const crlVerdict = (crlFile: string, caFile: string, form = 'PEM') => spawnSync('openssl', ['crl', '-inform', form, '-in', crlFile, '-CAfile', caFile, '-noout'], { encoding: 'utf8' }).stderr.trim();

it('creates a transport key whose private half only unwraps', async () => {
  const r = await f.cli(['create-transport-key', '--label', 'migration-transport', '--out', file('transport.pem'), ...pin()]);
  expect(r.stderr).not.toMatch(/error/i);
  expect(r.code).toBe(0);
  transportKeyId = JSON.parse(r.stdout).transportKeyId;
  expect(transportKeyId).toMatch(/^[0-9a-f]{32}$/);
  expect(openssl('pkey', '-pubin', '-in', file('transport.pem'), '-noout', '-text')).toMatch(/Public-Key: \(4096 bit\)/);
}, 120_000);

it('imports a wrapped legacy CA key into the token (C_UnwrapKey) and records the old generation', async () => {
  const spki = fromPem(readFileSync(file('transport.pem'), 'utf8'), 'PUBLIC KEY');
  exported = await generateLegacyExport({ dir: file('export'), certificates: 400, generations: ['G1', 'G2'], transportKeySpki: spki, exportId: 'ceremony-test', dirt: true });
  const wrapped = readFileSync(file('export/keys/G1.wrapped'), 'utf8');
  expect(wrapped).not.toContain('PRIVATE KEY');

  // A wrong transport key id is refused before anything is recorded.
  const wrong = await f.cli(['import-legacy', '--generation', 'L-G1', '--cert', file('export/ca/G1.cer'), '--issuer-cert', file('export/ca/ROOT.cer'),
    '--wrapped', file('export/keys/G1.wrapped'), '--transport-key', '00'.repeat(16), ...pin()]);
  expect(wrong.code).not.toBe(0);
  expect(wrong.stderr).toMatch(/transport key 0+ not found/);

  const r = await f.cli(['import-legacy', '--generation', 'L-G1', '--cert', file('export/ca/G1.cer'), '--issuer-cert', file('export/ca/ROOT.cer'),
    '--wrapped', file('export/keys/G1.wrapped'), '--transport-key', transportKeyId, ...pin()]);
  expect(r.stderr).not.toMatch(/error/i);
  expect(r.code).toBe(0);
  const out = JSON.parse(r.stdout);
  expect(out.keyId).toBe(exported.generations[0]!.keyId);
  const { rows } = await f.pool.query(`SELECT role, generation, active, certificate_der FROM issuers WHERE key_id = $1`, [out.keyId]);
  expect(rows[0]).toMatchObject({ role: 'ISSUING', generation: 'L-G1', active: false });
  expect(Buffer.compare(rows[0].certificate_der, exported.generations[0]!.certificateDer)).toBe(0);

  // In the token: a signing key that is sensitive and not extractable, like a generated one.
  const mod = graphene.Module.load(f.token.modulePath, 'SoftHSM');
  mod.initialize({ flags: 4 }); // CKF_OS_LOCKING_OK
  try {
    const slots = mod.getSlots(true);
    let slot: graphene.Slot | undefined;
    for (let i = 0; i < slots.length; i++) if (slots.items(i).getToken().label.trim() === f.token.label) slot = slots.items(i);
    const session = slot!.open(graphene.SessionFlag.SERIAL_SESSION);
    session.login(f.token.pin);
    const keys = session.find({ class: graphene.ObjectClass.PRIVATE_KEY, label: 'legacy-ca-L-G1' });
    expect(keys.length).toBe(1);
    const attrs = keys.items(0).getAttribute({ sensitive: null, extractable: null, sign: null, decrypt: null });
    expect(attrs).toEqual({ sensitive: true, extractable: false, sign: true, decrypt: false });
    // No secret key (the AES transport key) outlived the step.
    expect(session.find({ class: graphene.ObjectClass.SECRET_KEY }).length).toBe(0);
    session.logout();
    session.close();
  } finally {
    mod.finalize();
  }

  // Audited as a ceremony step: intent, the key import, the result.
  const events = (await f.auditEvents()).filter((e) => e.action.startsWith('ceremony.import-legacy'));
  expect(events.map((e) => e.outcome)).toEqual(expect.arrayContaining(['INTENT', 'SUCCESS']));
  expect(JSON.stringify(events)).not.toMatch(/PRIVATE|wrapped-key/);
}, 120_000);

it('signs a CRL for the old generation that OpenSSL verifies against the old CA certificate', async () => {
  const ceremony = await openCeremony(f.config, { pin: f.token.pin, attendance: { actor: 'test', attributes: {} } });
  try {
    const registry = new IssuerRegistry(f.pool);
    await registry.load();
    const signer = new CrlSigner({ pool: f.pool, registry, keyManager: await ceremony.context.hsm(), clock: systemClock, logger: createLogger({ service: 'test', level: 'silent' }), producer: 'ca-signer' });
    const legacy = der.readCrl(readFileSync(file('export/crl/G1.crl')));
    expect(legacy.entries.length).toBeGreaterThan(0);
    const now = new Date(Math.floor(Date.now() / 1000) * 1000);
    const crlDer = await signer.sign({
      caller: 'migration-test', idempotencyKey: 'legacy-g1-1', issuerKeyId: exported.generations[0]!.keyId, partition: '', crlNumber: '2026120499',
      thisUpdate: now, nextUpdate: new Date(now.getTime() + 86_400_000), announceDeltaCrl: false,
      entries: legacy.entries.map((e) => ({ serialHex: e.serialHex, revocationDate: e.revocationDate, reason: e.reasonCode ?? 0 })),
    });
    writeFileSync(file('new-g1.crl'), toPem(crlDer, 'X509 CRL'));
    writeFileSync(file('g1.pem'), toPem(exported.generations[0]!.certificateDer, 'CERTIFICATE'));
    writeFileSync(file('chain.pem'), toPem(exported.root.certificateDer, 'CERTIFICATE') + toPem(exported.generations[0]!.certificateDer, 'CERTIFICATE'));
    expect(crlVerdict(file('new-g1.crl'), file('g1.pem'))).toBe('verify OK');
    // ... and not against another generation's certificate (same DN, another key).
    writeFileSync(file('g2.pem'), toPem(exported.generations[1]!.certificateDer, 'CERTIFICATE'));
    expect(crlVerdict(file('new-g1.crl'), file('g2.pem'))).toMatch(/verify failure/);
    // Every legacy entry is on the new CRL.
    const text = openssl('crl', '-in', file('new-g1.crl'), '-noout', '-text');
    for (const e of legacy.entries) expect(text).toContain(e.serialHex.toUpperCase().replace(/^0+/, ''));

    // openssl verify -crl_check: a revoked old certificate is refused, a valid one accepted.
    const lines = readFileSync(file('export/certificates.txt'), 'utf8').split('\n').slice(1).filter(Boolean);
    const revokedSerials = new Set(legacy.entries.map((e) => e.serialHex));
    const g1Certs = lines.map((l) => Buffer.from(l.split('\t')[1]!, 'base64')).filter((c) => der.readCertificate(c).authorityKeyId === exported.generations[0]!.keyId);
    const revoked = g1Certs.find((c) => revokedSerials.has(der.readCertificate(c).serialHex))!;
    const valid = g1Certs.find((c) => !revokedSerials.has(der.readCertificate(c).serialHex))!;
    writeFileSync(file('revoked.pem'), toPem(revoked, 'CERTIFICATE'));
    writeFileSync(file('valid.pem'), toPem(valid, 'CERTIFICATE'));
    const verify = (leaf: string) => {
      try {
        return openssl('verify', '-no_check_time', '-crl_check', '-CAfile', file('chain.pem'), '-CRLfile', file('new-g1.crl'), leaf);
      } catch (err) {
        return String((err as { stdout?: Buffer }).stdout ?? '') + String((err as { stderr?: Buffer }).stderr ?? '');
      }
    };
    expect(verify(file('valid.pem'))).toBe(`${file('valid.pem')}: OK\n`);
    expect(verify(file('revoked.pem'))).toMatch(/certificate revoked/);
  } finally {
    await ceremony.close();
  }
}, 120_000);

it('imports the export only once every old generation is in ca-signer, and the new CRLs list exactly what the legacy records say', async () => {
  const keys = await createKeys(f.dir);
  const targets = await createTargets('ceremony', keys, f.dir, { caSigner: { database: { url: f.config.database.url!, schema: 'ca_signer' } } });
  try {
    // G2's key has not been brought in yet: refused, naming the generation, nothing imported.
    const refused = await importLegacyExport(targets.targets, { dir: file('export'), clock: systemClock, batchSize: 100 });
    expect(refused.ok).toBe(false);
    expect(refused.errors).toEqual([{ location: 'generations.tsv', problem: expect.stringMatching(/^generation G2 \(key [0-9a-f]+\) is not an issuer generation in ca-signer/) }]);
    expect((await targets.ra.query('SELECT count(*)::int AS n FROM certificates')).rows[0].n).toBe(0);

    const r = await f.cli(['import-legacy', '--generation', 'L-G2', '--cert', file('export/ca/G2.cer'), '--issuer-cert', file('export/ca/ROOT.cer'),
      '--wrapped', file('export/keys/G2.wrapped'), '--transport-key', transportKeyId, ...pin()]);
    expect(r.code).toBe(0);
    const result = await importLegacyExport(targets.targets, { dir: file('export'), clock: systemClock, batchSize: 100 });
    expect(result.phase).toBe('DONE');

    // The new system's CRL for each old generation, built from ra's registry and signed by ca-signer with the unwrapped keys.
    const ceremony = await openCeremony(f.config, { pin: f.token.pin, attendance: { actor: 'test', attributes: {} } });
    const crls: Buffer[] = [];
    try {
      const registry = new IssuerRegistry(f.pool);
      await registry.load();
      const signer = new CrlSigner({ pool: f.pool, registry, keyManager: await ceremony.context.hsm(), clock: systemClock, logger: createLogger({ service: 'test', level: 'silent' }), producer: 'ca-signer' });
      const reasons: Record<string, number> = { keyCompromise: 1, cACompromise: 2, affiliationChanged: 3, superseded: 4, cessationOfOperation: 5, certificateHold: 6 };
      const now = new Date(Math.floor(Date.now() / 1000) * 1000);
      for (const [i, g] of exported.generations.entries()) {
        const { rows } = await targets.ra.query(`SELECT serial_hex, reason, revocation_time FROM certificates WHERE issuer_key_id = $1 AND status <> 'VALID'`, [g.keyId]);
        const crl = await signer.sign({
          caller: 'migration-test', idempotencyKey: `check-${g.generation}`, issuerKeyId: g.keyId, partition: '', crlNumber: String(2026120500 + i),
          thisUpdate: now, nextUpdate: new Date(now.getTime() + 86_400_000), announceDeltaCrl: false,
          entries: rows.map((row) => ({ serialHex: row.serial_hex, revocationDate: row.revocation_time, reason: reasons[row.reason] ?? 0 })),
        });
        writeFileSync(file(`check-${g.generation}.crl`), crl);
        writeFileSync(file(`check-${g.generation}.pem`), toPem(g.certificateDer, 'CERTIFICATE'));
        expect(crlVerdict(file(`check-${g.generation}.crl`), file(`check-${g.generation}.pem`), 'DER')).toBe('verify OK');
        crls.push(crl);
      }
    } finally {
      await ceremony.close();
    }
    const check = await checkNewSystem(targets.ra, 'ceremony-test', crls);
    expect(check).toMatchObject({ ok: true, registry: { mismatches: 0 }, crl: { mismatches: 0, legacyMissing: 0 } });
    expect(check.crl!.checked).toBe(exported.facts.uniqueCertificates);
  } finally {
    await targets.close();
  }
}, 180_000);
