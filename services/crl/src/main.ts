import { runMain } from '@pki/kit';
import { crlConfigSchema } from './config';
import { startCrl } from './app';

runMain('crl', crlConfigSchema, async (config) => (await startCrl(config)).runtime);
