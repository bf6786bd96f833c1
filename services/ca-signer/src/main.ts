import { availableParallelism } from 'node:os';
import { runMain } from '@pki/kit';
import { caSignerConfigSchema } from './config';
import { startCaSigner } from './app';

runMain('ca-signer', caSignerConfigSchema, async (config) => {
  // libuv reads UV_THREADPOOL_SIZE once, when the pool first starts: nothing has used the pool yet
  // (the config was read synchronously). The pool runs every PKCS#11 signature (pkcs11-key-manager.ts).
  process.env.UV_THREADPOOL_SIZE = String(config.hsm.workerThreads ?? process.env.UV_THREADPOOL_SIZE ?? availableParallelism());
  return (await startCaSigner(config)).runtime;
});
