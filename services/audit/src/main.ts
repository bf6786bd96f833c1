import { runMain } from '@pki/kit';
import { auditConfigSchema } from './config';
import { startAudit } from './app';

runMain('audit', auditConfigSchema, async (config) => (await startAudit(config)).runtime);
