import { runMain } from '@pki/kit';
import { caSignerConfigSchema } from './config';
import { startCaSigner } from './app';

runMain('ca-signer', caSignerConfigSchema, async (config) => (await startCaSigner(config)).runtime);
