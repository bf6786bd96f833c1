import { runMain } from '@pki/kit';
import { cardMgmtConfigSchema } from './config';
import { startCardMgmt } from './app';

runMain('card-mgmt', cardMgmtConfigSchema, async (config) => (await startCardMgmt(config)).runtime);
