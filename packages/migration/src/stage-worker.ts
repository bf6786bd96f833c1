import { parentPort, workerData } from 'node:worker_threads';
import { AesGcmPersonalDataVault, type VaultKeys } from '@pki/ra';
import { type CertificateLine, CertificateBatchPreparer, type IssuerKey } from './certificate-batch';

/** A worker thread of the pre-pass: batches of certificate lines in, prepared rows out. */
const data = workerData as { keys: VaultKeys; issuers: IssuerKey[]; exportId: string };
const preparer = new CertificateBatchPreparer(
  data.issuers.map((i) => ({ ...i, spki: Buffer.from(i.spki) })),
  new AesGcmPersonalDataVault(data.keys),
  data.exportId,
);
parentPort!.on('message', (message: { id: number; lines: CertificateLine[] }) => {
  parentPort!.postMessage({ id: message.id, ...preparer.prepare(message.lines) });
});
