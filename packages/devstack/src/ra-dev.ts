import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ensureSoftwareCa, issueClientCertificate } from '@pki/internal-ca';
import type { DevLayout } from './layout';

/** The development officers `make up` creates, one per role (two registrars: dual control needs a second officer). */
export const DEV_OFFICE = '63000000';
export const DEV_PRINCIPALS = [
  { id: 'registrar', kind: 'officer', role: 'registrar', office: DEV_OFFICE },
  { id: 'registrar-2', kind: 'officer', role: 'registrar', office: DEV_OFFICE },
  { id: 'supervisor', kind: 'officer', role: 'supervisor', office: DEV_OFFICE },
  { id: 'card-centre', kind: 'officer', role: 'card-centre', office: 'CARD-CENTRE' },
  { id: 'auditor', kind: 'officer', role: 'auditor', office: 'AUDIT' },
  { id: 'household', kind: 'household-system' },
] as const;

export interface RaDevInputs {
  officerCaFile: string;
  personalData: { encryptionKeyFile: string; lookupKeyFile: string; referenceKeyFile: string };
  principals: Array<(typeof DEV_PRINCIPALS)[number] & { certFile: string; keyFile: string }>;
}

/**
 * What ra needs in the embedded deployment besides its config: an officer CA with a client
 * certificate per development officer (var/dev/officers), and the personal-data keys (generated
 * once, 0600, reused by every later run so that the data stays readable).
 */
export async function prepareRaDev(layout: DevLayout): Promise<RaDevInputs> {
  const officers = path.join(layout.dev, 'officers');
  const ca = await ensureSoftwareCa(path.join(layout.dev, 'officer-ca'), 'CN=Development officer CA, O=Citizen PKI (make up)');
  const principals: RaDevInputs['principals'] = [];
  for (const p of DEV_PRINCIPALS) {
    const issued = await issueClientCertificate({ caDir: ca.dir, outDir: officers, name: p.id, subject: `CN=${p.id}, O=Citizen PKI (make up)` });
    principals.push({ ...p, certFile: issued.certFile, keyFile: issued.keyFile });
  }
  const key = (name: string) => {
    const file = path.join(layout.secrets, `${name}.key`);
    if (!existsSync(file)) {
      mkdirSync(layout.secrets, { recursive: true, mode: 0o700 });
      writeFileSync(file, randomBytes(32).toString('base64') + '\n', { mode: 0o600 });
    }
    return file;
  };
  return {
    officerCaFile: ca.certFile,
    personalData: { encryptionKeyFile: key('ra-personal-data-1'), lookupKeyFile: key('ra-lookup-1'), referenceKeyFile: key('ra-person-reference') },
    principals,
  };
}

/** The ra CLI invocations that register the development officers (idempotent). */
export function registerPrincipalArgs(raCli: string, configFile: string, principal: RaDevInputs['principals'][number]): string[] {
  return [
    raCli, 'principal', 'add', '--config', configFile, '--id', principal.id, '--kind', principal.kind,
    ...('role' in principal ? ['--role', principal.role, '--office', principal.office] : []),
    '--certificate', principal.certFile,
  ];
}
