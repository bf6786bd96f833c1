#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { parseArgs } from 'node:util';
import { loadConfigFile, systemClock } from '@pki/kit';
import { createPool, withTransaction } from '@pki/db';
import { appendAuditEvent, AuditActorType, AuditOutcome } from '@pki/audit-events';
import { certificateSha256 } from '@pki/client-auth';
import { databaseUrl } from '@pki/outbox';
import { auditConfigSchema } from './config';

/* eslint-disable no-console -- an operator's command-line tool */

const USAGE = `usage: node services/audit/dist/cli.js auditors add --config audit.json --id ID --cert auditor.crt
       node services/audit/dist/cli.js auditors disable --config audit.json --id ID

Registers (or disables) an auditor by the SHA-256 of their client certificate, issued by the
officer CA the audit service's http.clientCaFiles names. Each change is itself an audit event.`;

async function main(): Promise<number> {
  const { positionals, values } = parseArgs({ allowPositionals: true, options: { config: { type: 'string' }, id: { type: 'string' }, cert: { type: 'string' } } });
  const [group, command] = positionals;
  if (group !== 'auditors' || !['add', 'disable'].includes(command ?? '') || !values.config || !values.id || (command === 'add' && !values.cert)) {
    console.error(USAGE);
    return 2;
  }
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(values.id)) {
    console.error('auditors: --id must be 1-64 letters, digits, . _ -');
    return 2;
  }
  const config = loadConfigFile(auditConfigSchema, values.config);
  const pool = createPool({ url: databaseUrl(config.database), schema: config.database.schema, maxConnections: 1, applicationName: 'audit-cli' });
  const operator = `audit-cli (${process.env.SUDO_USER ?? process.env.USER ?? 'operator'})`;
  const channel = { producer: config.events.producer, clock: systemClock };
  try {
    if (command === 'add') {
      const certificate = new X509Certificate(readFileSync(values.cert!));
      const sha256 = certificateSha256(certificate.raw);
      await withTransaction(pool, async (tx) => {
        await tx.query('INSERT INTO auditors (id, certificate_sha256, subject) VALUES ($1, $2, $3)', [values.id, sha256, certificate.subject]);
        await appendAuditEvent(tx, channel, { action: 'auditor.add', outcome: AuditOutcome.SUCCESS, actor: { type: AuditActorType.SERVICE, id: operator }, objects: [{ type: 'officer', id: values.id! }], attributes: { certificateSha256: sha256 } });
      });
      console.log(`auditor ${values.id} registered (certificate SHA-256 ${sha256})`);
    } else {
      await withTransaction(pool, async (tx) => {
        const { rowCount } = await tx.query('UPDATE auditors SET active = false, disabled_at = now() WHERE id = $1 AND active', [values.id]);
        if (rowCount !== 1) throw new Error(`no active auditor ${values.id}`);
        await appendAuditEvent(tx, channel, { action: 'auditor.disable', outcome: AuditOutcome.SUCCESS, actor: { type: AuditActorType.SERVICE, id: operator }, objects: [{ type: 'officer', id: values.id! }] });
      });
      console.log(`auditor ${values.id} disabled`);
    }
    return 0;
  } catch (err) {
    console.error(`auditors ${command}: ${(err as Error).message}`);
    return 1;
  } finally {
    await pool.end();
  }
}

void main().then((code) => process.exit(code));
