import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureDevHierarchy } from '../src/ceremony/dev-hierarchy';
import { listHierarchy } from '../src/ceremony/steps';
import { systemClock } from '@pki/kit';
import { createCeremonyFixture, type CeremonyFixture, openssl } from './ceremony-fixture';

// The embedded stack's hierarchy goes through the same ceremony steps, without custodians.
let f: CeremonyFixture;
beforeAll(async () => {
  f = await createCeremonyFixture('dev');
});
afterAll(async () => f.dispose());

describe('ensureDevHierarchy', () => {
  it('creates a root, an active issuing CA, its OCSP responder and audit checkpoint key, all audited as the development ceremony', async () => {
    const out = join(f.dir, 'ca');
    const messages: string[] = [];
    const result = await ensureDevHierarchy(f.config, out, { onProgress: (m) => messages.push(m) });
    expect(result.created).toBe(true);
    expect(messages).toContainEqual(expect.stringMatching(/^generating rsa-2048 key 'root-ca-DEV-ROOT' in the HSM: done in/));

    const listing = await listHierarchy(f.pool, systemClock);
    expect(listing.generations.map((g) => [g.role, g.generation, g.active])).toEqual([
      ['ROOT', 'DEV-ROOT', false],
      ['ISSUING', 'DEV-G1', true],
    ]);
    const issuingKeyId = listing.generations[1]!.keyId;
    expect(listing.delegatedSigners.map((d) => [d.purpose, d.issuerKeyId, d.active])).toEqual([
      ['OCSP_RESPONDER', issuingKeyId, true],
      ['AUDIT_CHECKPOINT', issuingKeyId, true],
      ['VALIDATION_RECEIPT', issuingKeyId, true],
    ]);

    const chain = join(out, 'chain.pem');
    expect(readFileSync(chain, 'utf8')).toBe(result.issuingPem + result.rootPem);
    expect(openssl('verify', '-x509_strict', '-CAfile', join(out, 'root.pem'), join(out, 'issuing.pem'))).toBe(`${join(out, 'issuing.pem')}: OK\n`);

    const events = await f.auditEvents();
    expect(new Set(events.map((e) => e.actor))).toEqual(new Set(['development ceremony (no custodians)']));
    expect(new Set(events.map((e) => e.actorType))).toEqual(new Set(['CUSTODIAN']));
    expect(events.filter((e) => e.action.endsWith('.result')).map((e) => `${e.action} ${e.outcome}`)).toEqual([
      'ceremony.create-root.result SUCCESS',
      'ceremony.create-issuing.result SUCCESS',
      'ceremony.activate.result SUCCESS',
      'ceremony.create-ocsp-responder.result SUCCESS',
      'ceremony.create-audit-signer.result SUCCESS',
      'ceremony.create-validation-signer.result SUCCESS',
      'ceremony.sign-arl.result SUCCESS',
    ]);
  });

  it('keeps an existing hierarchy and creates nothing on the next start', async () => {
    const before = await f.auditEvents();
    const again = await ensureDevHierarchy(f.config, join(f.dir, 'ca-again'));
    expect(again.created).toBe(false);
    expect(await f.auditEvents()).toEqual(before);
  });

  it('adds the missing delegated signers to a hierarchy made before they existed', async () => {
    await f.pool.query(`UPDATE delegated_signers SET active = false WHERE purpose = 'OCSP_RESPONDER'`);
    await ensureDevHierarchy(f.config, join(f.dir, 'ca-upgrade'));
    const { rows } = await f.pool.query(`SELECT purpose, count(*)::int AS n, count(*) FILTER (WHERE active)::int AS active FROM delegated_signers GROUP BY purpose ORDER BY purpose`);
    expect(rows).toEqual([
      { purpose: 'AUDIT_CHECKPOINT', n: 1, active: 1 },
      { purpose: 'OCSP_RESPONDER', n: 2, active: 1 },
      { purpose: 'VALIDATION_RECEIPT', n: 1, active: 1 },
    ]);
  });
});
