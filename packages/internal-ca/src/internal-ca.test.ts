import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { ensureServiceCa, issueServiceCertificate, serviceIdentity } from './index';

describe('internal service CA', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'internal-ca-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('issues service certificates that OpenSSL verifies for both TLS roles, with the SPIFFE identity', async () => {
    const ca = await ensureServiceCa(path.join(dir, 'ca'));
    const creds = await issueServiceCertificate({ caDir: ca.dir, outDir: path.join(dir, 'svc'), service: 'ra' });
    for (const purpose of ['sslserver', 'sslclient']) {
      const out = execFileSync('openssl', ['verify', '-purpose', purpose, '-CAfile', creds.caFile, creds.certFile], { encoding: 'utf8' });
      expect(out.trim()).toBe(`${creds.certFile}: OK`);
    }
    const cert = new X509Certificate(readFileSync(creds.certFile));
    expect(cert.subjectAltName).toContain(`URI:${serviceIdentity('ra')}`);
    expect(statSync(creds.keyFile).mode & 0o077).toBe(0); // key readable by its owner only
  });

  it('keeps an existing CA and a still-valid certificate instead of replacing them', async () => {
    const caDir = path.join(dir, 'ca2');
    const first = await ensureServiceCa(caDir);
    const caPem = readFileSync(first.certFile, 'utf8');
    await ensureServiceCa(caDir);
    expect(readFileSync(first.certFile, 'utf8')).toBe(caPem);

    const a = await issueServiceCertificate({ caDir, outDir: path.join(dir, 'svc2'), service: 'ocsp' });
    const pem = readFileSync(a.certFile, 'utf8');
    await issueServiceCertificate({ caDir, outDir: path.join(dir, 'svc2'), service: 'ocsp' });
    expect(readFileSync(a.certFile, 'utf8')).toBe(pem);
    await issueServiceCertificate({ caDir, outDir: path.join(dir, 'svc2'), service: 'ocsp', force: true });
    expect(readFileSync(a.certFile, 'utf8')).not.toBe(pem);
  });
});
