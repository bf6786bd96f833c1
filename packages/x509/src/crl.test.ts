import { randomBytes, randomInt } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  AuthorityKeyIdentifier,
  BaseCRLNumber,
  CRLDistributionPoints,
  CRLNumber,
  CRLReason,
  DistributionPoint,
  DistributionPointName,
  GeneralName,
  id_ce_authorityKeyIdentifier,
  id_ce_cRLNumber,
  id_ce_cRLReasons,
  id_ce_deltaCRLIndicator,
  id_ce_freshestCRL,
  id_ce_invalidityDate,
  id_ce_issuingDistributionPoint,
  InvalidityDate,
  IssuingDistributionPoint,
  KeyIdentifier,
  Name,
  RevokedCertificate,
  TBSCertList,
  Version,
} from '@peculiar/asn1-x509';
import { PkiError } from '@pki/kit';
import { timeOf } from './certificate';
import { toAsnExtension } from './extensions';
import { positiveInteger, toArrayBuffer } from './public-key';
import { encodeName } from './name';
import { signatureAlgorithmIdentifier, SignatureAlgorithms, type SignatureAlgorithm } from './signature-algorithm';
import {
  buildCrlFrame,
  buildTbsCertList,
  compareSerials,
  CRLReasons,
  decodeRevokedCertificate,
  encodeRevokedCertificate,
  type CrlEntry,
  type TbsCertListSpec,
} from './crl';
import { randomSerial } from './serial';

/** The same TBSCertList built with the @peculiar schema layer: the reference for every byte crl.ts writes. */
function schemaTbs(spec: TbsCertListSpec): Buffer {
  const ext = (extnID: string, critical: boolean, value: ArrayBuffer) => toAsnExtension({ extnID, critical, value: Buffer.from(value) });
  const entries = [...spec.entries]
    .sort((a, b) => compareSerials(a.serial, b.serial))
    .map((e) => {
      const extensions: ReturnType<typeof toAsnExtension>[] = [];
      if (e.reason !== undefined && e.reason !== CRLReasons.unspecified) extensions.push(ext(id_ce_cRLReasons, false, AsnConvert.serialize(new CRLReason(e.reason))));
      if (e.invalidityDate) extensions.push(ext(id_ce_invalidityDate, false, AsnConvert.serialize(new InvalidityDate(e.invalidityDate))));
      return new RevokedCertificate({ userCertificate: positiveInteger(e.serial), revocationDate: timeOf(e.revocationDate), crlEntryExtensions: extensions.length ? extensions : undefined });
    });
  const extensions = [
    ext(id_ce_authorityKeyIdentifier, false, AsnConvert.serialize(new AuthorityKeyIdentifier({ keyIdentifier: new KeyIdentifier(toArrayBuffer(spec.authorityKeyIdentifier)) }))),
    ext(id_ce_cRLNumber, false, AsnConvert.serialize(new CRLNumber(Number(spec.crlNumber)))),
  ];
  if (spec.deltaBaseCrlNumber !== undefined) extensions.push(ext(id_ce_deltaCRLIndicator, true, AsnConvert.serialize(new BaseCRLNumber(Number(spec.deltaBaseCrlNumber)))));
  const dpName = (uri: string) => new DistributionPointName({ fullName: [new GeneralName({ uniformResourceIdentifier: uri })] });
  if (spec.issuingDistributionPoint) {
    const idp = spec.issuingDistributionPoint;
    extensions.push(
      ext(
        id_ce_issuingDistributionPoint,
        true,
        AsnConvert.serialize(new IssuingDistributionPoint({ distributionPoint: dpName(idp.uri), ...(idp.onlyContains === 'userCerts' ? { onlyContainsUserCerts: true } : { onlyContainsCACerts: true }) })),
      ),
    );
  }
  if (spec.freshestCrlUrl) extensions.push(ext(id_ce_freshestCRL, false, AsnConvert.serialize(new CRLDistributionPoints([new DistributionPoint({ distributionPoint: dpName(spec.freshestCrlUrl) })]))));
  if (spec.expiredCertsOnCrl) extensions.push(ext('2.5.29.60', false, AsnConvert.serialize(new InvalidityDate(spec.expiredCertsOnCrl))));
  return Buffer.from(
    AsnConvert.serialize(
      new TBSCertList({
        version: Version.v2,
        signature: signatureAlgorithmIdentifier(spec.signatureAlgorithm),
        issuer: AsnConvert.parse(spec.issuerDer, Name),
        thisUpdate: timeOf(spec.thisUpdate),
        nextUpdate: timeOf(spec.nextUpdate),
        revokedCertificates: entries.length ? entries : undefined,
        crlExtensions: extensions,
      }),
    ),
  );
}

const second = (ms: number) => new Date(Math.floor(ms / 1000) * 1000);
const pick = <T>(items: readonly T[]): T => items[randomInt(items.length)]!;
const REASONS = [undefined, CRLReasons.unspecified, CRLReasons.keyCompromise, CRLReasons.cACompromise, CRLReasons.affiliationChanged, CRLReasons.superseded, CRLReasons.cessationOfOperation, CRLReasons.certificateHold, CRLReasons.removeFromCRL, CRLReasons.privilegeWithdrawn, CRLReasons.aACompromise];
// 1950 to 2100: both time types and the 2049/2050 boundary.
const randomTime = () => second(Date.UTC(1950, 0, 1) + randomInt(0, 2 ** 47) % (Date.UTC(2100, 0, 1) - Date.UTC(1950, 0, 1)));
const issuer = encodeName([{ type: 'C', value: 'TW' }, { type: 'O', value: '行政院' }, { type: 'OU', value: '內政部憑證管理中心'.repeat(randomInt(1, 8)) }]);

function randomEntry(): CrlEntry {
  const serial = randomSerial(randomInt(8, 21));
  if (randomInt(4) === 0) serial[0] = randomInt(1, 0x80); // short and long, every first octet
  const entry: CrlEntry = { serial: randomInt(10) === 0 ? Buffer.from([randomInt(1, 0x80)]) : serial, revocationDate: randomTime() };
  const reason = pick(REASONS);
  if (reason !== undefined) entry.reason = reason;
  if (randomInt(3) === 0) entry.invalidityDate = randomTime();
  return entry;
}

function randomSpec(): TbsCertListSpec {
  const thisUpdate = randomTime();
  const seen = new Set<string>();
  const entries = Array.from({ length: randomInt(0, 40) }, randomEntry).filter((e) => {
    const key = Buffer.from(e.serial).toString('hex');
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  const crlNumber = randomInt(1, 2 ** 47);
  const spec: TbsCertListSpec = {
    signatureAlgorithm: pick(SignatureAlgorithms as readonly SignatureAlgorithm[]),
    issuerDer: issuer,
    authorityKeyIdentifier: randomBytes(20),
    thisUpdate,
    nextUpdate: new Date(thisUpdate.getTime() + randomInt(1, 400) * 86_400_000),
    crlNumber,
    entries,
  };
  const kind = randomInt(4);
  if (kind === 1) spec.deltaBaseCrlNumber = randomInt(0, crlNumber);
  if (kind === 2) spec.issuingDistributionPoint = { uri: `http://crl.example.tw/crl/${randomBytes(20).toString('hex')}/p${randomInt(4096)}.crl`, onlyContains: pick(['userCerts', 'caCerts'] as const) };
  if (kind === 3) spec.freshestCrlUrl = `http://crl.example.tw/crl/${'ab'.repeat(randomInt(1, 60))}/delta.crl`;
  if (randomInt(2) === 0) spec.expiredCertsOnCrl = second(Math.max(Date.UTC(1950, 0, 1), thisUpdate.getTime() - randomInt(0, 1000) * 86_400_000));
  return spec;
}

describe('CRL encoding', () => {
  it('writes the same bytes as the schema layer for 300 random CRLs (every reason, both time types, all extensions)', () => {
    for (let i = 0; i < 300; i++) {
      const spec = randomSpec();
      expect(buildTbsCertList(spec).toString('hex')).toBe(schemaTbs(spec).toString('hex'));
    }
  });

  it('splits a TBS into prefix, entries and suffix whose lengths add up', () => {
    for (let i = 0; i < 50; i++) {
      const spec = randomSpec();
      const entries = [...spec.entries].sort((a, b) => compareSerials(a.serial, b.serial)).map((e) => encodeRevokedCertificate(e));
      const body = Buffer.concat(entries);
      const frame = buildCrlFrame(spec, body.length, entries.length);
      const tbs = Buffer.concat([frame.prefix, body, frame.suffix]);
      expect(tbs.length).toBe(frame.tbsLength);
      expect(tbs.equals(buildTbsCertList(spec))).toBe(true);
    }
  });

  it('encodes long-form lengths for a TBS over 16 MiB', () => {
    const frame = buildCrlFrame(randomSpec(), 40_000_000, 1_000_000);
    expect(frame.prefix.subarray(0, 2).toString('hex')).toBe('3084');
    expect(frame.tbsLength).toBe(frame.prefix.length + 40_000_000 + frame.suffix.length);
  });

  it('reads back exactly what it writes, and the facts', () => {
    for (let i = 0; i < 2000; i++) {
      const entry = randomEntry();
      const der = encodeRevokedCertificate(entry);
      const decoded = decodeRevokedCertificate(Buffer.concat([Buffer.from([0xaa]), der]), 1);
      expect(decoded.end).toBe(der.length + 1);
      expect(decoded.serial.equals(Buffer.from(entry.serial))).toBe(true);
      expect(decoded.revocationDate * 1000).toBe(entry.revocationDate.getTime());
      expect(decoded.reason).toBe(entry.reason === CRLReasons.unspecified ? undefined : entry.reason);
      expect(decoded.invalidityDate === undefined ? undefined : decoded.invalidityDate * 1000).toBe(entry.invalidityDate?.getTime());
    }
  });

  it('refuses every single-octet change that is not another canonical entry', () => {
    const entry: CrlEntry = { serial: Buffer.from('7f0102030405060708090a0b0c0d0e0f', 'hex'), revocationDate: new Date('2026-11-23T01:02:03Z'), reason: CRLReasons.keyCompromise, invalidityDate: new Date('2026-11-20T00:00:00Z') };
    const der = encodeRevokedCertificate(entry);
    for (let i = 0; i < der.length; i++) {
      for (const delta of [1, 0x40, 0x80]) {
        const mutated = Buffer.from(der);
        mutated[i] = (mutated[i]! + delta) & 0xff;
        let decoded;
        try {
          decoded = decodeRevokedCertificate(mutated, 0);
        } catch (err) {
          expect(err).toBeInstanceOf(PkiError);
          continue;
        }
        // Accepted only if it is the canonical encoding of other facts.
        const again = encodeRevokedCertificate({
          serial: decoded.serial,
          revocationDate: new Date(decoded.revocationDate * 1000),
          ...(decoded.reason !== undefined ? { reason: decoded.reason } : {}),
          ...(decoded.invalidityDate !== undefined ? { invalidityDate: new Date(decoded.invalidityDate * 1000) } : {}),
        });
        expect(again.equals(mutated.subarray(0, decoded.end))).toBe(true);
      }
    }
  });

  it.each<[string, Partial<CrlEntry>]>([
    ['a negative serial', { serial: Buffer.from('80', 'hex') }],
    ['a zero serial', { serial: Buffer.from('00', 'hex') }],
    ['a non-minimal serial', { serial: Buffer.from('0012', 'hex') }],
    ['a serial of 21 octets', { serial: Buffer.alloc(21, 1) }],
    ['fractional seconds', { revocationDate: new Date('2026-01-01T00:00:00.500Z') }],
    ['a year before 1950', { revocationDate: new Date('1949-12-31T23:59:59Z') }],
    ['an unknown reason', { reason: 7 as CRLReasons }],
  ])('refuses to encode %s', (_, change) => {
    expect(() => encodeRevokedCertificate({ serial: Buffer.from('01', 'hex'), revocationDate: new Date('2026-01-01T00:00:00Z'), ...change })).toThrow(PkiError);
  });

  it.each<[string, string]>([
    ['GeneralizedTime for a year UTCTime holds', '3014020101180f32303236303130313030303030305a'],
    ['a long-form length', '308112020101170d3236303130313030303030305a'],
    ['an unspecified reason written out', '3020020101170d3236303130313030303030305a300c300a0603551d1504030a0100'],
    ['a critical reasonCode', '3023020101170d3236303130313030303030305a300f300d0603551d150101ff04030a0101'],
    ['an empty extensions SEQUENCE', '3014020101170d3236303130313030303030305a3000'],
    ['30 February', '3012020101170d3236303233303030303030305a'],
  ])('refuses to read %s', (_, hex) => {
    expect(() => decodeRevokedCertificate(Buffer.from(hex, 'hex'), 0)).toThrow(PkiError);
  });

  it('refuses a frame with nextUpdate not after thisUpdate, a delta with freshestCRL, or a base number not below its own', () => {
    const spec = randomSpec();
    expect(() => buildCrlFrame({ ...spec, nextUpdate: spec.thisUpdate }, 0, 0)).toThrow(/nextUpdate must be after thisUpdate/);
    expect(() => buildCrlFrame({ ...spec, crlNumber: 5, deltaBaseCrlNumber: 5, freshestCrlUrl: undefined }, 0, 0)).toThrow(/base number must be lower/);
    expect(() => buildCrlFrame({ ...spec, crlNumber: 5, deltaBaseCrlNumber: 4, freshestCrlUrl: 'http://x.tw/d.crl' }, 0, 0)).toThrow(/must not carry freshestCRL/);
    expect(() => buildTbsCertList({ ...spec, entries: [{ serial: Buffer.from('01', 'hex'), revocationDate: spec.thisUpdate }, { serial: Buffer.from('01', 'hex'), revocationDate: spec.thisUpdate }] })).toThrow(/listed twice/);
  });
});
