import { runMain } from '@pki/kit';
import { ocspConfigSchema } from './config';
import { startOcsp } from './app';

runMain('ocsp', ocspConfigSchema, async (config) => (await startOcsp(config)).runtime);
