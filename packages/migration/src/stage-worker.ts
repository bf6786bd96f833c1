import { parentPort, workerData } from 'node:worker_threads';
import { AesGcmPersonalDataVault, type VaultKeys } from '@pki/ra';
import { type CertificateLine, CertificateBatchPreparer, type IssuerKey } from './certificate-batch';
import { SubscriberBatchPreparer, type SubscriberLine } from './subscriber-batch';

/** A worker thread of the pre-pass: batches of certificate or subscriber lines in, prepared rows out. */
const data = workerData as { keys: VaultKeys; issuers: IssuerKey[]; exportId: string; today: string };
const vault = new AesGcmPersonalDataVault(data.keys);
const certificates = new CertificateBatchPreparer(
  data.issuers.map((i) => ({ ...i, spki: Buffer.from(i.spki) })),
  vault,
  data.exportId,
);
const subscribers = new SubscriberBatchPreparer(vault, new Date(data.today));
parentPort!.on('message', (message: { id: number; kind: 'certificates' | 'subscribers'; lines: unknown[] }) => {
  const prepared = message.kind === 'subscribers' ? subscribers.prepare(message.lines as SubscriberLine[]) : certificates.prepare(message.lines as CertificateLine[]);
  parentPort!.postMessage({ id: message.id, ...prepared });
});
