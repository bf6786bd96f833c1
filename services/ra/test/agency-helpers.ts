import { execFileSync } from 'node:child_process';
import { randomBytes, sign } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';
import type { Clock } from '@pki/kit';
import type { ApiResponse, RaFixture } from './ra-fixture';

/** An onboarded application system as the agency holds it: its key, its certificate, and how to name it as signer. */
export interface AgencyClient {
  id: string;
  keyFile: string;
  certFile: string;
  key: string;
  serialHex: string;
  issuerKeyId: string;
  agent: Agent;
}

let keys = 0;

/** The agency's key pair and PKCS#10 request, made by OpenSSL as an agency would. */
export function agencyCsr(f: RaFixture, name: string, algorithm: 'rsa' | 'ec' = 'rsa'): { csr: string; keyFile: string } {
  const keyFile = join(f.dir, `${name}-${++keys}.agency.key`);
  const csrFile = `${keyFile}.csr`;
  const newkey = algorithm === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  execFileSync('openssl', ['req', '-new', ...newkey, '-nodes', '-keyout', keyFile, '-subj', `/CN=${name}`, '-out', csrFile], { stdio: 'ignore' });
  return { csr: readFileSync(csrFile, 'utf8'), keyFile };
}

export function clientFrom(f: RaFixture, id: string, keyFile: string, certificatePem: string, credential: { serialHex: string; issuerKeyId: string }): AgencyClient {
  const certFile = `${keyFile}.crt`;
  writeFileSync(certFile, certificatePem);
  const key = readFileSync(keyFile, 'utf8');
  const agent = new Agent({ connect: { ca: readFileSync(f.signer.identities.ra.caFile), cert: certificatePem, key, servername: 'localhost' } });
  return { id, keyFile, certFile, key, serialHex: credential.serialHex, issuerKeyId: credential.issuerKeyId, agent };
}

export async function onboard(
  f: RaFixture,
  id: string,
  sector: 'GOVERNMENT' | 'PUBLIC',
  options: { notAfter?: Date; algorithm?: 'rsa' | 'ec'; rateLimitPerMinute?: number } = {},
): Promise<{ client: AgencyClient; response: ApiResponse }> {
  const { csr, keyFile } = agencyCsr(f, id, options.algorithm);
  const response = await f.call('supervisor-a', 'POST', '/v1/agency-systems', {
    id, agency: sector === 'GOVERNMENT' ? '財政部財政資訊中心' : '某銀行股份有限公司', name: `${id} 系統`, sector,
    contact: { name: 'Service desk', email: `desk@${id.toLowerCase()}.example.tw`, phone: '+886-2-2345-6789' },
    csr, ...(options.notAfter ? { notAfter: options.notAfter.toISOString() } : {}), ...(options.rateLimitPerMinute ? { rateLimitPerMinute: options.rateLimitPerMinute } : {}),
  });
  if (response.status !== 201) throw new Error(`onboard ${id}: ${response.status} ${response.text}`);
  const credential = (response.body.credentials as Array<{ serialHex: string; issuerKeyId: string; certificate: string }>)[0]!;
  return { client: clientFrom(f, id, keyFile, credential.certificate, credential), response };
}

export interface IdentityRecordInput {
  seq: number;
  serialNumber: string;
  nationalId: string;
  birthDate?: string;
}

export function identityBody(clock: Clock, records: IdentityRecordInput[], overrides: Record<string, unknown> = {}): string {
  return JSON.stringify({ nonce: randomBytes(16).toString('hex'), requestTime: clock.now().toISOString(), records, ...overrides });
}

export function identityXml(clock: Clock, records: IdentityRecordInput[], nonce = randomBytes(16).toString('hex')): string {
  const items = records.map((r) => `<record><seq>${r.seq}</seq><serialNumber>${r.serialNumber}</serialNumber><nationalId>${r.nationalId}</nationalId>${r.birthDate ? `<birthDate>${r.birthDate}</birthDate>` : ''}</record>`).join('');
  return `<?xml version="1.0" encoding="UTF-8"?>\n<IdentityConfirmationRequest><nonce>${nonce}</nonce><requestTime>${clock.now().toISOString()}</requestTime><records>${items}</records></IdentityConfirmationRequest>`;
}

/**
 * Calls the identity confirmation as `client` (mTLS), with the body signed by `signer`'s key
 * (default: the client's own) over the exact bytes; `send` replaces the bytes sent (tampering).
 */
export async function confirm(
  f: RaFixture,
  client: AgencyClient | Agent,
  body: string,
  options: { signer?: AgencyClient; send?: string; contentType?: string; unsigned?: boolean } = {},
): Promise<ApiResponse> {
  const agent = client instanceof Agent ? client : client.agent;
  const signer = options.signer ?? (client instanceof Agent ? undefined : client);
  const headers: Record<string, string> = { 'content-type': options.contentType ?? (body.startsWith('<') ? 'application/xml' : 'application/json') };
  if (signer && !options.unsigned) {
    headers['pki-signer'] = `${signer.issuerKeyId}:${signer.serialHex}`;
    headers['pki-signature'] = sign('sha256', Buffer.from(body, 'utf8'), signer.key).toString('base64');
  }
  const res = await undiciFetch(`${f.httpUrl}/v1/identity-confirmations`, { method: 'POST', headers, body: options.send ?? body, dispatcher: agent });
  const text = await res.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = text.startsWith('{') ? JSON.parse(text) : { raw: text };
  } catch {
    parsed = { raw: text };
  }
  return { status: res.status, body: parsed, headers: res.headers as unknown as Headers, text };
}

export function codesOf(response: ApiResponse): Record<number, number> {
  return Object.fromEntries((response.body.results as Array<{ seq: number; code: number }>).map((r) => [r.seq, r.code]));
}
