import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ResponseStoreWriter } from '@pki/ocsp';

/* eslint-disable no-console -- prints its one result for the parent benchmark */

/**
 * Memory of one responder holding N responses, in a process of its own so that its RSS is the
 * store's: the shared index for N certificates and N records in the arena. The records are real
 * signed responses of the benchmark's population (ResponseData and signature as ca-signer made
 * them, read from a file), filed under fresh random serials: the sizes are the real ones; no
 * serving thread answers from these (the serials would not match their responses).
 * Argument: JSON { count, samplesFile } where samplesFile holds length-prefixed "responseData|signature" pairs.
 */
interface Settings {
  count: number;
  samplesFile: string;
}

function main(): void {
  const settings = JSON.parse(process.argv[2] ?? '{}') as Settings;
  const raw = readFileSync(settings.samplesFile);
  const samples: Array<{ responseData: Buffer; signature: Buffer }> = [];
  for (let at = 0; at < raw.length; ) {
    const dataLength = raw.readUInt16BE(at);
    const signatureLength = raw.readUInt16BE(at + 2);
    samples.push({ responseData: raw.subarray(at + 4, at + 4 + dataLength), signature: raw.subarray(at + 4 + dataLength, at + 4 + dataLength + signatureLength) });
    at += 4 + dataLength + signatureLength;
  }
  const before = process.memoryUsage().rss;
  // The arena holds the records the loop below files, samples taken in turn: their sizes differ
  // (revoked answers are longer, RSA signatures longer than ECDSA), so size it from all of them.
  const recordBytes = (sample: { responseData: Buffer; signature: Buffer }) => Math.ceil((32 + 16 + sample.responseData.length + sample.signature.length + 16) / 64) * 64;
  const cycleBytes = samples.reduce((sum, sample) => sum + recordBytes(sample), 0);
  const remainder = samples.slice(0, settings.count % samples.length).reduce((sum, sample) => sum + recordBytes(sample), 0);
  const needed = Math.floor(settings.count / samples.length) * cycleBytes + remainder;
  const writer = ResponseStoreWriter.create({ maxCertificates: settings.count, arenaBytes: Math.ceil(needed * 1.05) });
  const started = Date.now();
  for (let i = 0; i < settings.count; i++) {
    const sample = samples[i % samples.length]!;
    const serial = randomBytes(16);
    serial[0]! &= 0x7f;
    if (!writer.put({ serial, hash: 0, issuerIndex: 0, responderIndex: 0, status: 0, producedAt: 0, nextUpdate: 0, statusSeq: i, responseData: sample.responseData, signature: sample.signature })) {
      throw new Error(`memory full after ${i} responses: ${JSON.stringify(writer.stats())}`);
    }
  }
  // SharedArrayBuffers are committed as they are touched: RSS is what the responder would use.
  const rss = process.memoryUsage().rss;
  const stats = writer.stats();
  console.log(
    JSON.stringify({
      responses: settings.count,
      rssBytes: rss,
      rssBytesAboveBaseline: rss - before,
      bytesPerResponse: Math.round((rss - before) / settings.count),
      arenaBytesInUse: stats.arenaBytesInUse,
      indexBytes: stats.indexSlots * 17,
      fillSeconds: (Date.now() - started) / 1000,
      sampleResponseDataBytes: samples[0]!.responseData.length,
      sampleSignatureBytes: samples[0]!.signature.length,
    }),
  );
}

main();
