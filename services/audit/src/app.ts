import { ServiceRuntime, type Logger } from '@pki/kit';
import { connectServiceDatabase } from '@pki/outbox';
import type { AuditConfig } from './config';

export interface Running {
  runtime: ServiceRuntime;
  opsUrl: string;
}

/** Builds and starts audit from a validated config; main.ts only loads the config and calls this. */
export async function startAudit(config: AuditConfig, logger?: Logger): Promise<Running> {
  const runtime = new ServiceRuntime('audit', config, logger);
  // No tables of its own yet: the schema holds the transactional outbox.
  await connectServiceDatabase(runtime, config.database);
  const opsUrl = await runtime.startOps();
  runtime.logger.info({ opsUrl }, 'audit started');
  return { runtime, opsUrl };
}
