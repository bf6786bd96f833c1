import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PkiError } from '@pki/kit';
import { parseCsr } from './csr';
import { fromPem } from './pem';

describe('parseCsr', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'x509-csr-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function opensslCsr(name: string, keyArgs: string[], signArgs: string[] = []): Buffer {
    const out = join(dir, `${name}.csr`);
    execFileSync('openssl', [
      'req', '-new', '-nodes', ...keyArgs, '-keyout', join(dir, `${name}.key`), '-out', out,
      '-utf8', '-subj', '/C=TW/CN=王小明/serialNumber=0000000012345678', ...signArgs,
    ], { stdio: 'pipe' });
    return fromPem(readFileSync(out, 'utf8'), 'CERTIFICATE REQUEST');
  }

  it('reads an RSA PKCS#1 v1.5 request and checks its signature', () => {
    const csr = parseCsr(opensslCsr('rsa', ['-newkey', 'rsa:2048', '-sha256']));
    expect(csr.signatureValid).toBe(true);
    expect(csr.publicKey).toEqual({ type: 'RSA', bits: 2048, exponent: 65537 });
    expect(csr.subject.map((a) => `${a.type}=${a.value}`)).toEqual(['C=TW', 'CN=王小明', 'serialNumber=0000000012345678']);
    expect(csr.subjectPublicKeyInfo[0]).toBe(0x30);
  });

  it('reads an RSASSA-PSS signed request', () => {
    const csr = parseCsr(opensslCsr('pss', ['-newkey', 'rsa:2048', '-sha256', '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:32']));
    expect(csr.signatureValid).toBe(true);
  });

  it('reads an ECDSA P-256 request', () => {
    const csr = parseCsr(opensslCsr('ec', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-sha256']));
    expect(csr).toMatchObject({ signatureValid: true, publicKey: { type: 'EC', curve: 'P-256' } });
  });

  it('reports a wrong signature as signatureValid false', () => {
    const der = opensslCsr('tampered', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-sha256']);
    // Flip a bit inside the subject's CN: the signature no longer covers these bytes.
    const at = der.indexOf(Buffer.from('王小明'));
    der[at + 2] = der[at + 2]! ^ 0x01;
    expect(parseCsr(der).signatureValid).toBe(false);
  });

  it('refuses garbage and SHA-1 requests with INVALID_ARGUMENT', () => {
    expect(() => parseCsr(Buffer.from('garbage'))).toThrow('parse CSR: not a DER PKCS#10 request');
    const sha1 = opensslCsr('sha1', ['-newkey', 'rsa:2048', '-sha1']);
    expect(() => parseCsr(sha1)).toThrow('parse CSR: unsupported signature algorithm 1.2.840.113549.1.1.5');
    try {
      parseCsr(sha1);
    } catch (err) {
      expect((err as PkiError).code).toBe('INVALID_ARGUMENT');
    }
  });
});
