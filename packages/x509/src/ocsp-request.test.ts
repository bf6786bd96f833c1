import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, Extension, Extensions } from '@peculiar/asn1-x509';
import { CertID, OCSPRequest, Request, TBSRequest } from '@peculiar/asn1-ocsp';
import { assembleCertificate, buildTbsCertificate } from './certificate';
import { assembleOcspResponse, assembleOcspResponseParts, buildCertId, buildResponseData, ocspErrorResponse } from './ocsp';
import { id_pkix_ocsp_nonce, ocspRequestSignatureCheck, parseOcspRequest } from './ocsp-request';
import { encodeDerElement } from './der';
import { verifySignature } from './signature-verification';
import { readOcspResponse } from './ocsp-response-reader';
import { toPem } from './pem';
import { toArrayBuffer } from './public-key';

const limits = { maxCertIds: 4 };
const issuer = { subjectDer: Buffer.from('300f310d300b06035504030c0474657374', 'hex'), subjectPublicKeyInfo: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' }) };

function request(certIds: CertID[], extensions?: Extension[]): Buffer {
  const tbs = new TBSRequest({ requestList: certIds.map((reqCert) => new Request({ reqCert })) });
  if (extensions) tbs.requestExtensions = new Extensions(extensions);
  return Buffer.from(AsnConvert.serialize(new OCSPRequest({ tbsRequest: tbs })));
}

const nonceExtension = (octets: Buffer) => new Extension({ extnID: id_pkix_ocsp_nonce, critical: false, extnValue: new OctetString(AsnConvert.serialize(new OctetString(toArrayBuffer(octets)))) });

describe('OCSP request parsing', () => {
  it('reads SHA-1 and SHA-256 CertIDs, several per request, and the nonce to echo', () => {
    const serial = Buffer.from('0123456789abcdef0123456789abcdef', 'hex');
    const nonce = randomBytes(32);
    const der = request([buildCertId(issuer, serial, 'SHA1'), buildCertId(issuer, Buffer.from([0x7f]), 'SHA256')], [nonceExtension(nonce)]);
    const parsed = parseOcspRequest(der, limits);
    expect(parsed.certIds.map((c) => [c.hash, c.serialHex, c.issuerNameHash.length])).toEqual([
      ['SHA1', serial.toString('hex'), 20],
      ['SHA256', '7f', 32],
    ]);
    // the extnValue contents, i.e. the inner OCTET STRING with its header, exactly as sent
    expect(parsed.nonce?.toString('hex')).toBe(`0420${nonce.toString('hex')}`);
    expect(parsed.signed).toBe(false);
  });

  it('reads the requests OpenSSL makes, with and without nonce', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ocsp-request-'));
    try {
      const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const spki = key.publicKey.export({ type: 'spki', format: 'der' });
      const tbs = buildTbsCertificate({
        serialNumber: Buffer.from('00c0ffee', 'hex'),
        signatureAlgorithm: 'ECDSA-SHA256',
        issuer: [{ type: 'CN', value: 'test' }],
        subject: [{ type: 'CN', value: 'test' }],
        validity: { notBefore: new Date('2026-01-01T00:00:00Z'), notAfter: new Date('2027-01-01T00:00:00Z') },
        subjectPublicKeyInfo: spki,
        extensions: [],
      });
      const cert = join(dir, 'cert.pem');
      writeFileSync(cert, toPem(assembleCertificate(tbs, 'ECDSA-SHA256', sign('sha256', tbs, { key: key.privateKey, dsaEncoding: 'der' })), 'CERTIFICATE'));
      // the digest option must come before -cert
      for (const [flags, hash] of [[['-no_nonce'], 'SHA1'], [['-sha256'], 'SHA256']] as const) {
        const out = join(dir, 'req.der');
        execFileSync('openssl', ['ocsp', ...flags, '-issuer', cert, '-cert', cert, '-reqout', out], { stdio: 'ignore' });
        const parsed = parseOcspRequest(readFileSync(out), limits);
        expect(parsed.certIds).toHaveLength(1);
        expect(parsed.certIds[0]).toMatchObject({ hash, serialHex: '00c0ffee' });
        expect(parsed.nonce === undefined).toBe(flags[0] === '-no_nonce');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses what is not a well-formed request, saying why', () => {
    const good = request([buildCertId(issuer, Buffer.from([1]), 'SHA1')]);
    const cases: Array<[Buffer, RegExp]> = [
      [Buffer.alloc(0), /truncated/],
      [good.subarray(0, good.length - 1), /past the end|truncated/],
      [Buffer.concat([good, Buffer.from([0])]), /octets after the OCSPRequest/],
      [Buffer.from('3080', 'hex'), /indefinite length|truncated/],
      [Buffer.from('308400000000', 'hex'), /non-minimal length|too large/],
      [Buffer.from('3100', 'hex'), /OCSPRequest has tag 0x31/],
      [request(Array.from({ length: 5 }, () => buildCertId(issuer, Buffer.from([1]), 'SHA1'))), /5 CertIDs in one request; at most 4/],
      [request([]), /requestList is empty/],
      [request([buildCertId(issuer, Buffer.from([1]), 'SHA1')], [nonceExtension(Buffer.alloc(33, 1))]), /longer than 32/],
      [request([buildCertId(issuer, Buffer.from([1]), 'SHA1')], [new Extension({ extnID: '1.2.3.4', critical: true, extnValue: new OctetString(2) })]), /unsupported critical extension/],
    ];
    const md5 = buildCertId(issuer, Buffer.from([1]), 'SHA1');
    md5.hashAlgorithm = new AlgorithmIdentifier({ algorithm: '1.2.840.113549.2.5', parameters: null });
    md5.issuerNameHash = new OctetString(16);
    md5.issuerKeyHash = new OctetString(16);
    cases.push([request([md5]), /hash algorithm 2a864886f70d0205 is not supported/]);
    const shortHash = buildCertId(issuer, Buffer.from([1]), 'SHA256');
    shortHash.issuerKeyHash = new OctetString(20);
    cases.push([request([shortHash]), /issuerKeyHash is 20 octets, SHA256 gives 32/]);
    for (const [der, message] of cases) expect(() => parseOcspRequest(der, limits)).toThrow(message);
  });

  it('accepts serials no CA of ours issues, marking them as not ours', () => {
    const negative = buildCertId(issuer, Buffer.from([1]), 'SHA1');
    const der = Buffer.from(AsnConvert.serialize(negative));
    // the serial INTEGER is the last 3 octets: 02 01 01 -> 02 01 ff (-1)
    der[der.length - 1] = 0xff;
    const parsed = parseOcspRequest(request([AsnConvert.parse(der, CertID)]), limits);
    expect(parsed.certIds[0]!.serialHex).toBeUndefined();
  });
});

describe('signed OCSP requests (RFC 6960 §4.1.2)', () => {
  const signer = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const signerSpki = signer.publicKey.export({ type: 'spki', format: 'der' });
  const ecdsaSha256 = Buffer.from('300a06082a8648ce3d040302', 'hex');
  const fakeCert = Buffer.from('3003020101', 'hex'); // a SEQUENCE: only its bytes matter here
  /** OCSPRequest { tbsRequest, [0] { Signature { alg, BIT STRING, [0] { SEQUENCE OF cert } } } } by hand. */
  function signedRequest(options: { unusedBits?: number; certs?: Buffer[]; tamper?: boolean } = {}): { der: Buffer; tbs: Buffer } {
    const tbsDer = Buffer.from(AsnConvert.serialize(new TBSRequest({ requestList: [new Request({ reqCert: buildCertId(issuer, Buffer.from([5]), 'SHA1') })] })));
    let signature = sign('sha256', tbsDer, { key: signer.privateKey, dsaEncoding: 'der' });
    if (options.tamper) signature = Buffer.concat([signature.subarray(0, 10), Buffer.from([signature[10]! ^ 1]), signature.subarray(11)]);
    const bits = encodeDerElement(0x03, Buffer.from([options.unusedBits ?? 0]), signature);
    const certs = options.certs ? [encodeDerElement(0xa0, encodeDerElement(0x30, ...options.certs))] : [];
    const sig = encodeDerElement(0xa0, encodeDerElement(0x30, ecdsaSha256, bits, ...certs));
    return { der: encodeDerElement(0x30, tbsDer, sig), tbs: tbsDer };
  }

  it('reads the signed bytes, algorithm, signature and certificates only when present, and they verify', () => {
    const { der, tbs } = signedRequest({ certs: [fakeCert, fakeCert] });
    const parsed = parseOcspRequest(der, limits);
    expect(parsed.signed).toBe(true);
    expect(parsed.signature!.tbsRequestDer.equals(tbs)).toBe(true);
    expect(parsed.signature!.certs.map((c) => c.toString('hex'))).toEqual([fakeCert.toString('hex'), fakeCert.toString('hex')]);
    expect(verifySignature(ocspRequestSignatureCheck(parsed.signature!, signerSpki))).toBe(true);
    const tampered = parseOcspRequest(signedRequest({ tamper: true }).der, limits);
    expect(tampered.signature!.certs).toEqual([]);
    expect(verifySignature(ocspRequestSignatureCheck(tampered.signature!, signerSpki))).toBe(false);
    expect(parseOcspRequest(request([buildCertId(issuer, Buffer.from([5]), 'SHA1')]), limits).signature).toBeUndefined();
  });

  it('refuses a Signature it cannot read', () => {
    expect(() => parseOcspRequest(signedRequest({ unusedBits: 3 }).der, limits)).toThrow(/not a whole number of octets/);
    expect(() => parseOcspRequest(signedRequest({ certs: Array.from({ length: 5 }, () => fakeCert) }).der, limits)).toThrow(/carries 5 certificates; at most 4/);
    expect(() => parseOcspRequest(signedRequest({ certs: [Buffer.from('020101', 'hex')] }).der, limits)).toThrow(/Signature certificate has tag 0x02/);
  });
});

describe('OCSP response parts', () => {
  const responder = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const responderSpki = responder.publicKey.export({ type: 'spki', format: 'der' });
  const now = new Date('2026-11-23T10:00:00Z');
  const certificate = Buffer.from('3003020101', 'hex'); // only its bytes matter here

  it('echoes a nonce and marks extended revoke, and reads back what it wrote', () => {
    const nonce = Buffer.from('0410' + 'ab'.repeat(16), 'hex');
    const data = buildResponseData({
      issuer,
      responderSpki,
      producedAt: now,
      responses: [{ certIdHash: 'SHA256', serial: Buffer.from([0x42]), status: { kind: 'revoked', revocationTime: new Date(0), reason: 6 }, thisUpdate: now, nextUpdate: new Date(now.getTime() + 60_000) }],
      nonce,
      extendedRevoke: true,
    });
    const signature = sign('sha256', data, { key: responder.privateKey, dsaEncoding: 'der' });
    const der = assembleOcspResponse(data, 'ECDSA-SHA256', signature, certificate);
    const read = readOcspResponse(der);
    expect(read.responseData.equals(data)).toBe(true);
    expect(read.signature.equals(signature)).toBe(true);
    expect(read.certificates.map((c) => c.toString('hex'))).toEqual([certificate.toString('hex')]);
    expect(read.nonce?.equals(nonce)).toBe(true);
    expect(read.extendedRevoke).toBe(true);
    expect(read.singles).toEqual([
      expect.objectContaining({ hash: 'SHA256', serialHex: '42', status: { kind: 'revoked', revocationTime: new Date(0), reason: 6 }, thisUpdate: now, nextUpdate: new Date(now.getTime() + 60_000) }),
    ]);
    // the parts put back together give the same bytes
    expect(assembleOcspResponseParts(read.responseData, read.signatureAlgorithm, read.signature, read.certificates[0]!).equals(der)).toBe(true);
  });

  it('writes status-only answers as RFC 6960 §4.2.1 defines them, and refuses to read them as successful', () => {
    expect(ocspErrorResponse('malformedRequest').toString('hex')).toBe('30030a0101');
    expect(ocspErrorResponse('tryLater').toString('hex')).toBe('30030a0103');
    expect(ocspErrorResponse('unauthorized').toString('hex')).toBe('30030a0106');
    expect(() => readOcspResponse(ocspErrorResponse('tryLater'))).toThrow(/responseStatus is 3, not successful/);
  });
});
