import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGrpcClient, type ServiceClient } from '@pki/grpc';
import { caSignerV1 } from '@pki/proto';
import { createTestDatabase } from '@pki/testing';
import { startCaSignerFixture, type CaSignerFixture } from '../../ca-signer/test/service-fixture';
import type { RunningAudit } from '../src/app';
import { auditConfig, createOfficerCa, startTestAudit, waitFor } from './audit-fixture';

/**
 * Fail closed, end to end: a real ca-signer (SoftHSM) and a real audit service sharing one
 * database (the embedded deployment's bus carries ca-signer's audit events to the audit log). With
 * the audit service stopped, ca-signer's audit events stay unconfirmed, and past the bound new
 * issuance is refused; once the audit service runs again, records them and has a checkpoint
 * signed, issuance resumes.
 */
let dir: string;
let signer: CaSignerFixture;
let asRa: ServiceClient<typeof caSignerV1.CaSignerService>;
let audit: RunningAudit | undefined;
let config: ReturnType<typeof auditConfig>;

const subject = [{ type: 'C', value: 'TW' }, { type: 'CN', value: 'Test Citizen' }, { type: 'serialNumber', value: '1234567890123456' }];
const issue = (key: string) => asRa.issueCertificate({ idempotencyKey: key, profile: 'citizen-signature', publicKeySpki: generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' }), subject });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'audit-gate-'));
  const databaseUrl = await createTestDatabase('audit_gate');
  signer = await startCaSignerFixture({ databaseUrl, auditConfirmation: { required: true, maxUnconfirmedSeconds: 5 } });
  asRa = createGrpcClient(caSignerV1.CaSignerService, { address: signer.signer.grpcAddress, serverIdentity: signer.identities['ca-signer'].identity, tls: signer.identities.ra, deadlineMs: 30_000 });
  const officers = createOfficerCa(join(dir, 'officers'));
  config = auditConfig({ databaseUrl, dir, signer, officerCaFile: officers.caFile, transport: { type: 'postgres', url: databaseUrl }, intervalMs: 300 });
});
afterAll(async () => {
  asRa?.close();
  await audit?.runtime.stop();
  await signer?.stop();
  rmSync(dir, { recursive: true, force: true });
});

it('stops issuance while the audit log is down past the bound, and resumes when it catches up', async () => {
  audit = await startTestAudit(config);
  // The audit log records ca-signer's events (the key ceremony's so far) and confirms them in its
  // checkpoints: issuance flows.
  await waitFor('issuance with the audit log confirming', async () => issue('gate-e2e-1/SIGN').then(() => true, () => false), 60_000);

  await audit.runtime.stop();
  audit = undefined;
  await issue('gate-e2e-2/SIGN'); // its intent and result now wait for the audit log
  let refusal: Error | undefined;
  await waitFor('issuance to be refused', async () => {
    refusal = await issue(`gate-e2e-probe-${Date.now()}/SIGN`).then(() => undefined, (err: Error) => err);
    return refusal !== undefined;
  }, 60_000);
  expect(refusal).toMatchObject({ code: 'UNAVAILABLE', message: expect.stringContaining("the audit log has not confirmed this signer's audit events") });

  audit = await startTestAudit(config);
  await waitFor('issuance to resume', async () => issue(`gate-e2e-resumed-${Date.now()}/SIGN`).then(() => true, () => false), 60_000);
});
