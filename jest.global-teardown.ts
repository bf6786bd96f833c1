import { stopTestServers } from './jest.global-setup';

/** Stops the servers jest.global-setup.ts started (each independently, even if one fails). */
export default async function globalTeardown(): Promise<void> {
  const servers = globalThis.__PKI_TEST_SERVERS__;
  if (!servers) return;
  globalThis.__PKI_TEST_SERVERS__ = undefined;
  const began = Date.now();
  await stopTestServers(servers);
  process.stdout.write(`[test servers] stopped in ${((Date.now() - began) / 1000).toFixed(1)} s\n`);
}
