import { generateKeyPairSync, sign } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { BasicOCSPResponse, OCSPResponse, OCSPResponseStatus } from '@peculiar/asn1-ocsp';
import { assembleCertificate, buildTbsCertificate } from './certificate';
import { assembleOcspResponse, buildResponseData } from './ocsp';

describe('OCSP response encoding', () => {
  const issuer = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const responder = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = (k: typeof issuer.publicKey) => k.export({ type: 'spki', format: 'der' });
  const now = new Date('2026-11-23T10:00:00Z');
  // The responder's certificate (self-signed here: only its encoding matters in this test).
  const tbs = buildTbsCertificate({
    serialNumber: Buffer.from([0x42]),
    signatureAlgorithm: 'ECDSA-SHA256',
    issuer: [{ type: 'CN', value: 'responder' }],
    subject: [{ type: 'CN', value: 'responder' }],
    validity: { notBefore: now, notAfter: new Date(now.getTime() + 86_400_000) },
    subjectPublicKeyInfo: spki(responder.publicKey),
    extensions: [],
  });
  const certificate = assembleCertificate(tbs, 'ECDSA-SHA256', sign('sha256', tbs, { key: responder.privateKey, dsaEncoding: 'der' }));

  it('wraps exactly the signed ResponseData bytes and the certificate, and parses back', () => {
    const data = buildResponseData({
      issuer: { subjectDer: Buffer.from('3000', 'hex'), subjectPublicKeyInfo: spki(issuer.publicKey) },
      responderSpki: spki(responder.publicKey),
      producedAt: now,
      responses: [{ certIdHash: 'SHA1', serial: Buffer.from([0x7f, 1]), status: { kind: 'good' }, thisUpdate: now, nextUpdate: new Date(now.getTime() + 3_600_000) }],
    });
    const signature = sign('sha256', data, { key: responder.privateKey, dsaEncoding: 'der' });
    const der = assembleOcspResponse(data, 'ECDSA-SHA256', signature, certificate);
    const response = AsnConvert.parse(der, OCSPResponse);
    expect(response.responseStatus).toBe(OCSPResponseStatus.successful);
    const basicDer = response.responseBytes!.response.buffer;
    const basic = AsnConvert.parse(basicDer, BasicOCSPResponse);
    expect(Buffer.from(basic.tbsResponseDataRaw!).equals(data)).toBe(true);
    expect(Buffer.from(basic.signature).equals(signature)).toBe(true);
    expect(basic.certs).toHaveLength(1);
    // and the whole thing is canonical: a schema re-encoding gives the same bytes
    expect(Buffer.from(AsnConvert.serialize(response)).equals(der)).toBe(true);
  });
});
