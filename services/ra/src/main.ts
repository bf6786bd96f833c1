import { runMain } from '@pki/kit';
import { raConfigSchema } from './config';
import { startRa } from './app';
import { crashPointsFromEnvironment } from './crash-points';

runMain('ra', raConfigSchema, async (config) => (await startRa(config, { faults: crashPointsFromEnvironment() })).runtime);
