import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PkiError } from '@pki/kit';
import { expectNoPkilintErrors, findPkilint, lintChainWithPkilint, lintWithPkilint, pkilintErrors } from './pkilint';

// Documents made by OpenSSL, so these tests check the pkilint plumbing against a producer that
// shares nothing with the CA.
let dir: string;
const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
const der = (file: string) => readFileSync(join(dir, file));

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'pkilint-test-'));
  writeFileSync(
    join(dir, 'ca.cnf'),
    [
      '[ ca ]', 'default_ca = test_ca',
      '[ test_ca ]', `database = ${join(dir, 'index.txt')}`, 'default_md = sha256', 'default_crl_days = 7', 'crlnumber = crlnumber', 'crl_extensions = crl_ext',
      '[ crl_ext ]', 'authorityKeyIdentifier = keyid:always',
      '[ req ]', 'distinguished_name = dn', 'x509_extensions = v3_ca', '[ dn ]',
      '[ v3_ca ]', 'basicConstraints = critical, CA:true', 'keyUsage = critical, keyCertSign, cRLSign', 'subjectKeyIdentifier = hash',
      '[ no_ku ]', 'basicConstraints = critical, CA:true', 'subjectKeyIdentifier = hash',
      '[ leaf ]', 'basicConstraints = critical, CA:false', 'keyUsage = critical, digitalSignature', 'subjectKeyIdentifier = hash', 'authorityKeyIdentifier = keyid:always',
      '',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'crlnumber'), '1000\n');
  openssl('req', '-x509', '-config', 'ca.cnf', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-subj', '/C=TW/O=pkilint test CA', '-days', '30');
  openssl('x509', '-in', 'ca.pem', '-outform', 'DER', '-out', 'ca.der');
  openssl('req', '-x509', '-config', 'ca.cnf', '-extensions', 'no_ku', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'noku.key', '-outform', 'DER', '-out', 'noku.der', '-subj', '/C=TW/O=no key usage', '-days', '30');
  openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/C=TW/CN=leaf');
  openssl('x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', '0x5a17', '-days', '7', '-extfile', 'ca.cnf', '-extensions', 'leaf', '-outform', 'DER', '-out', 'leaf.der');
  openssl('ca', '-config', 'ca.cnf', '-gencrl', '-keyfile', 'ca.key', '-cert', 'ca.pem', '-out', 'crl.pem');
  openssl('crl', '-in', 'crl.pem', '-outform', 'DER', '-out', 'crl.der');
  // An OCSP response for an unknown serial, signed by the CA itself (RFC 6960 §4.2.2.2 case 1).
  openssl('ocsp', '-issuer', 'ca.pem', '-serial', '0x5a17', '-no_nonce', '-reqout', 'req.der');
  openssl('ocsp', '-index', 'index.txt', '-rsigner', 'ca.pem', '-rkey', 'ca.key', '-CA', 'ca.pem', '-reqin', 'req.der', '-respout', 'resp.der', '-ndays', '1');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('pkilint', () => {
  it('is installed where the tests look for it (scripts/install-pkilint.sh)', () => {
    expect(findPkilint()).toMatch(/var\/tools\/pkilint\/bin$/);
  });

  it('reports a CA certificate without keyUsage as an ERROR (RFC 5280 §4.2.1.3)', async () => {
    const findings = await lintWithPkilint('certificate', der('noku.der'));
    expect(pkilintErrors(findings)).toEqual([
      { severity: 'ERROR', code: 'pkix.ca_certificate_no_ku_extension', nodePath: 'certificate.tbsCertificate.extensions', validator: 'KeyUsagePresenceValidator' },
    ]);
    await expect(expectNoPkilintErrors('certificate', der('noku.der'))).rejects.toThrow(
      'pkilint reports 1 error(s) for the certificate:\nERROR pkix.ca_certificate_no_ku_extension @ certificate.tbsCertificate.extensions',
    );
  });

  it('passes a well-formed CA certificate and reports its INFO findings', async () => {
    const findings = await expectNoPkilintErrors('certificate', der('ca.der'));
    expect(findings.map((f) => `${f.severity} ${f.code}`)).toContain('INFO pkix.subject_key_identifier_method_1_identified');
  });

  it('filters by severity', async () => {
    expect(await lintWithPkilint('certificate', der('ca.der'), { severity: 'WARNING' })).toEqual([]);
  });

  it('lints CRLs with lint_crl --type CRL --profile PKIX', async () => {
    const findings = await expectNoPkilintErrors('crl', der('crl.der'));
    expect(pkilintErrors(findings)).toEqual([]);
  });

  it('lints OCSP responses with lint_ocsp_response', async () => {
    expect(pkilintErrors(await lintWithPkilint('ocsp-response', der('resp.der')))).toEqual([]);
  });

  it('lints an issuer/subject pair with lint_pkix_signer_signee_cert_chain', async () => {
    expect(pkilintErrors(await lintChainWithPkilint(der('ca.der'), der('leaf.der')))).toEqual([]);
    // The no-keyUsage CA did not issue the leaf: the key identifiers differ and its key does not verify the signature.
    const mismatched = await lintChainWithPkilint(der('noku.der'), der('leaf.der'));
    expect(pkilintErrors(mismatched).map((f) => f.code)).toEqual(['pkix.issuer_and_subject_key_identifier_not_equal', 'pkix.signature_verification_failed']);
  });

  it('refuses a document pkilint cannot load, with its message', async () => {
    const error = await lintWithPkilint('certificate', Buffer.from('not DER')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PkiError);
    expect((error as PkiError).code).toBe('INVALID_ARGUMENT');
    expect((error as PkiError).message).toMatch(/^pkilint certificate: pkilint rejected the document \(exit 1\): Failed to load certificate/);
  });
});
