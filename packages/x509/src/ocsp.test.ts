import { createHash, generateKeyPairSync, randomBytes, randomInt, sign } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { CRLReason, CRLReasons } from '@peculiar/asn1-x509';
import { BasicOCSPResponse, CertStatus, KeyHash, OCSPResponse, OCSPResponseStatus, ResponderID, ResponseData, RevokedInfo, SingleResponse } from '@peculiar/asn1-ocsp';
import { assembleCertificate, buildTbsCertificate } from './certificate';
import { assembleOcspResponse, buildCertId, buildResponseData, publicKeyBits, type OcspSingleResponseSpec, type ResponseDataSpec } from './ocsp';
import { toArrayBuffer } from './public-key';

/** The same ResponseData through the schema layer: the reference the direct DER encoder must match. */
function schemaResponseData(spec: ResponseDataSpec): Buffer {
  const responses = spec.responses.map((r) => {
    let certStatus: CertStatus;
    if (r.status.kind === 'good') certStatus = new CertStatus({ good: null });
    else if (r.status.kind === 'unknown') certStatus = new CertStatus({ unknown: null });
    else {
      const reason = r.status.reason;
      certStatus = new CertStatus({ revoked: new RevokedInfo({ revocationTime: r.status.revocationTime, revocationReason: reason === undefined ? undefined : new CRLReason(reason) }) });
    }
    return new SingleResponse({ certID: buildCertId(spec.issuer, r.serial, r.certIdHash), certStatus, thisUpdate: r.thisUpdate, nextUpdate: r.nextUpdate });
  });
  const keyHash = createHash('sha1').update(publicKeyBits(spec.responderSpki)).digest();
  const data = new ResponseData({ responderID: new ResponderID({ byKey: new KeyHash(toArrayBuffer(keyHash)) }), producedAt: spec.producedAt, responses });
  return Buffer.from(AsnConvert.serialize(data));
}

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

  it('encodes ResponseData exactly as the schema layer does, over random serials, statuses, hashes and times', () => {
    const rsaSpki = spki(issuer.publicKey);
    const ecSpki = spki(responder.publicKey);
    // A long issuer name (over 127 octets) exercises long-form lengths.
    const issuers = [
      { subjectDer: Buffer.from('3000', 'hex'), subjectPublicKeyInfo: rsaSpki },
      { subjectDer: Buffer.concat([Buffer.from([0x30, 0x81, 0xc8]), randomBytes(200)]), subjectPublicKeyInfo: ecSpki },
    ];
    const reasons = Object.values(CRLReasons).filter((v): v is number => typeof v === 'number');
    const second = (ms: number) => new Date(Math.floor(ms / 1000) * 1000);
    for (let i = 0; i < 300; i++) {
      const count = 1 + randomInt(i % 10 === 0 ? 40 : 3);
      const responses: OcspSingleResponseSpec[] = Array.from({ length: count }, () => {
        const thisUpdate = second(Date.UTC(1950, 0, 1) + randomInt(150 * 365 * 86_400_000));
        const serial = randomBytes(1 + randomInt(20));
        if (randomInt(4) === 0) serial[0] = 0; // leading zeros are dropped, as DER requires
        const kind = (['good', 'unknown', 'revoked'] as const)[randomInt(3)]!;
        const status: OcspSingleResponseSpec['status'] =
          kind === 'revoked' ? { kind, revocationTime: second(thisUpdate.getTime() - randomInt(10 ** 9)), reason: randomInt(3) === 0 ? undefined : reasons[randomInt(reasons.length)] } : { kind };
        return { certIdHash: randomInt(2) === 0 ? 'SHA1' : 'SHA256', serial, status, thisUpdate, nextUpdate: second(thisUpdate.getTime() + 1000 + randomInt(10 ** 9)) };
      });
      const spec: ResponseDataSpec = { issuer: issuers[i % 2]!, responderSpki: i % 3 === 0 ? rsaSpki : ecSpki, producedAt: second(Date.now() - randomInt(10 ** 9)), responses };
      expect(buildResponseData(spec).toString('hex')).toBe(schemaResponseData(spec).toString('hex'));
    }
  });

  it('refuses what GeneralizedTime or the response cannot carry', () => {
    const base = { issuer: { subjectDer: Buffer.from('3000', 'hex'), subjectPublicKeyInfo: spki(issuer.publicKey) }, responderSpki: spki(responder.publicKey), producedAt: now };
    const single = { certIdHash: 'SHA1' as const, serial: Buffer.from([1]), status: { kind: 'good' as const }, thisUpdate: now, nextUpdate: new Date(now.getTime() + 1000) };
    expect(() => buildResponseData({ ...base, responses: [] })).toThrow(/no responses/);
    expect(() => buildResponseData({ ...base, producedAt: new Date(now.getTime() + 1), responses: [single] })).toThrow(/producedAt must be a valid date in whole seconds/);
    expect(() => buildResponseData({ ...base, responses: [{ ...single, nextUpdate: now }] })).toThrow(/nextUpdate must be after thisUpdate/);
    expect(() => buildResponseData({ ...base, responses: [{ ...single, thisUpdate: new Date(Date.UTC(10000, 0, 1)), nextUpdate: new Date(Date.UTC(10001, 0, 1)) }] })).toThrow(/year 10000 does not fit GeneralizedTime/);
    expect(() => buildResponseData({ ...base, responses: [{ ...single, status: { kind: 'revoked', revocationTime: now, reason: 7 as CRLReasons } }] })).toThrow(/7 is not a CRLReason/);
    expect(() => buildResponseData({ ...base, responses: [{ ...single, certIdHash: 'MD5' as 'SHA1' }] })).toThrow(/unknown CertID hash MD5/);
  });
});
