import { runMain } from '@pki/kit';
import { raConfigSchema } from './config';
import { startRa } from './app';

runMain('ra', raConfigSchema, async (config) => (await startRa(config)).runtime);
