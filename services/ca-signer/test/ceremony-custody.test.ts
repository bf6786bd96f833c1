import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fromPem } from '@pki/x509';
import { openssl, createCeremonyFixture, type CeremonyFixture } from './ceremony-fixture';

// `pki ceremony` run as operators run it: the built CLI as a child process, against a real
// SoftHSM token and the signer's real PostgreSQL schema.
let f: CeremonyFixture;
let shares: Record<'alice' | 'bob' | 'carol', string>;
beforeAll(async () => {
  f = await createCeremonyFixture('custody');
});
afterAll(async () => f.dispose());

const shareArgs = (...files: string[]) => files.flatMap((file) => ['--share-file', file]);

describe('pki ceremony with m-of-n PIN custody', () => {
  it('split-pin --generate-pin: a new token PIN exists only as 3 share files (0600), and the old PIN stops working', async () => {
    const out = join(f.dir, 'split-1');
    const result = await f.cli(['split-pin', '--custodian', 'alice', '--custodian', 'bob', '--custodian', 'carol', '--threshold', '2', '--generate-pin', '--pin-file', f.initialPinFile, '--out', out]);
    expect(result.stderr).toContain("the token's user PIN was changed");
    expect(result.code).toBe(0);
    const summary = JSON.parse(result.stdout) as { splitId: string; files: string[] };
    expect(summary.files).toHaveLength(3);
    const files = (await readdir(out)).sort();
    expect(files).toEqual([`${summary.splitId.slice(0, 8)}-1-alice.share`, `${summary.splitId.slice(0, 8)}-2-bob.share`, `${summary.splitId.slice(0, 8)}-3-carol.share`]);
    for (const file of files) expect((await stat(join(out, file))).mode & 0o777).toBe(0o600);
    shares = { alice: join(out, files[0]!), bob: join(out, files[1]!), carol: join(out, files[2]!) };

    const events = (await f.auditEvents()).filter((e) => e.action.startsWith('ceremony.split-pin'));
    expect(events.map((e) => [e.action, e.outcome, e.actor])).toEqual([
      ['ceremony.split-pin.intent', 'INTENT', 'alice, bob, carol'],
      ['ceremony.split-pin.result', 'SUCCESS', 'alice, bob, carol'],
    ]);
    expect(events[0]!.attributes).toMatchObject({ splitId: summary.splitId, threshold: '2', shares: '3', authorizedBy: 'PIN file', tokenLabel: 'citizen-ca' });

    // The PIN the token was initialised with no longer opens it.
    const old = await f.cli(['create-root', '--generation', 'R0', '--key', 'p-256', '--subject', 'C=TW, O=Old PIN Root', '--pin-file', f.initialPinFile]);
    expect(old.code).toBe(1);
    expect(old.stderr).toContain('CKR_PIN_INCORRECT');
  });

  it('create-root with 2 of 3 shares works, and every audit event names exactly the custodians present', async () => {
    const certOut = join(f.dir, 'root-r1.pem');
    const before = (await f.auditEvents()).length;
    const result = await f.cli(['create-root', '--generation', 'R1', '--key', 'rsa-2048', '--subject', 'C=TW, O=Government Root Certification Authority', '--validity-years', '25', '--cert-out', certOut, ...shareArgs(shares.alice, shares.carol)]);
    expect(result.stderr).toContain('present: alice, carol');
    expect(result.stderr).toMatch(/generating rsa-2048 key 'root-ca-R1' in the HSM: done in \d+\.\d s/);
    expect(result.code).toBe(0);
    const { keyId } = JSON.parse(result.stdout) as { keyId: string };

    const events = (await f.auditEvents()).slice(before);
    expect(events.map((e) => e.action)).toEqual([
      'ceremony.create-root.intent',
      'ceremony.create-root.key-generated',
      'ceremony.create-root.sign.intent',
      'ceremony.create-root.result',
    ]);
    for (const event of events) {
      expect(event.actor).toBe('alice, carol');
      expect(event.attributes).toMatchObject({ custody: '2 of 3', custodians: 'alice, carol' });
    }
    expect(events[0]!.attributes).toMatchObject({ generation: 'R1', keySpec: 'rsa-2048', subject: 'C=TW, O=Government Root Certification Authority', validityYears: '25' });
    const der = fromPem(await readFile(certOut, 'utf8'), 'CERTIFICATE');
    expect(events[3]).toMatchObject({ outcome: 'SUCCESS', attributes: { keyId, generation: 'R1' } });
    expect(events[3]!.attributes.certificateSha256).toBe(createHash('sha256').update(der).digest('hex'));
    expect(openssl('verify', '-x509_strict', '-CAfile', certOut, certOut)).toBe(`${certOut}: OK\n`);
  });

  it('refuses 1 of 3 shares before anything is recorded or the token is touched', async () => {
    const before = await f.auditEvents();
    const result = await f.cli(['create-root', '--generation', 'R2', '--key', 'rsa-2048', '--subject', 'C=TW, O=Lone Custodian Root', ...shareArgs(shares.bob)]);
    expect(result.code).toBe(65);
    expect(result.stderr).toContain("pki: reconstruct PIN: 2 of 3 custodians' shares are needed, 1 given (bob)");
    expect(await f.auditEvents()).toEqual(before);
  });

  it('refuses shares of two different splits', async () => {
    // A second split of the same PIN (authorised by two custodians of the first), as when custody is re-dealt.
    const out = join(f.dir, 'split-2');
    const resplit = await f.cli(['split-pin', '--custodian', 'dave', '--custodian', 'erin', '--custodian', 'frank', '--threshold', '2', '--split-current', '--out', out, ...shareArgs(shares.alice, shares.bob)]);
    expect(resplit.code).toBe(0);
    const second = (JSON.parse(resplit.stdout) as { files: string[] }).files;
    const before = await f.auditEvents();
    expect(before.at(-1)).toMatchObject({ action: 'ceremony.split-pin.result', actor: 'dave, erin, frank', attributes: { authorizedBy: 'alice, bob' } });

    const mixed = await f.cli(['create-root', '--generation', 'R2', '--key', 'rsa-2048', '--subject', 'C=TW, O=Mixed Root', ...shareArgs(shares.alice, second[1]!)]);
    expect(mixed.code).toBe(65);
    expect(mixed.stderr).toMatch(/reconstruct PIN: the shares come from different PIN splits \([0-9a-f]{8}…: alice; [0-9a-f]{8}…: erin\)/);
    expect(await f.auditEvents()).toEqual(before);

    // Two shares of the second split do open the token.
    const ok = await f.cli(['create-root', '--generation', 'R2', '--key', 'p-384', '--subject', 'C=TW, O=Second Split Root', ...shareArgs(second[0]!, second[2]!)]);
    expect(ok.code).toBe(0);
    expect((await f.auditEvents()).at(-1)).toMatchObject({ action: 'ceremony.create-root.result', actor: 'dave, frank' });
  });

  it('refuses --pin-file where custody is required, and bad usage with EX_USAGE', async () => {
    const refused = await f.cli(['create-root', '--generation', 'R3', '--key', 'rsa-2048', '--subject', 'C=TW, O=X', '--pin-file', f.initialPinFile], { PKI_CEREMONY_REQUIRE_CUSTODY: 'true' });
    expect(refused.code).toBe(77);
    expect(refused.stderr).toContain('this signer requires custodians for ceremonies; a PIN file is refused');
    const usage = await f.cli(['create-issuing', '--generation', 'G9', '--key', 'rsa-2048', ...shareArgs(shares.alice, shares.bob)]);
    expect(usage.code).toBe(64);
    expect(usage.stderr).toContain('give exactly one of --csr-out and --sign-with-root');
  });

  it('list shows the generations without a PIN', async () => {
    const result = await f.cli(['list', '--json']);
    expect(result.code).toBe(0);
    const listing = JSON.parse(result.stdout) as { generations: Array<{ role: string; generation: string; keySpec: string; active: boolean }> };
    expect(listing.generations.map((g) => [g.role, g.generation, g.keySpec, g.active])).toEqual([
      ['ROOT', 'R1', 'rsa-2048', false],
      ['ROOT', 'R2', 'p-384', false],
    ]);
  });
});
