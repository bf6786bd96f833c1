import { readFileSync } from 'node:fs';
import { Pkcs11KeyManager } from '@pki/ca-signer';

/* eslint-disable no-console -- prints its one result for the parent benchmark */

/**
 * The reference the signing benchmark puts next to the service: the same SoftHSM token and key,
 * signed through the same PKCS#11 adapter (Pkcs11KeyManager), with the same sessions and worker
 * threads, and nothing else: no gRPC, no OCSP encoding, no signature check, no audit. It shows what
 * the token itself allows on this machine, so the service's own cost can be told apart from
 * SoftHSM's. Run by signing-bench.ts in a process of its own (UV_THREADPOOL_SIZE is per process);
 * its argument is a JSON object (see Settings).
 */
interface Settings {
  modulePath: string;
  softhsmConfigFile: string;
  tokenLabel: string;
  pinFile: string;
  keyId: string;
  algorithm: 'RSA-SHA256' | 'ECDSA-SHA256';
  seconds: number;
  sessions: number;
  /** Signatures requested at once: enough to keep every session busy. */
  inFlight: number;
  /** Size of each message signed; default 250 (a ResponseData; a citizen TBSCertificate is about 1,200). */
  dataBytes?: number;
}

async function main(): Promise<void> {
  const settings = JSON.parse(process.argv[2] ?? '{}') as Settings;
  process.env.SOFTHSM2_CONF = settings.softhsmConfigFile;
  const keyManager = await Pkcs11KeyManager.open({ modulePath: settings.modulePath, tokenLabel: settings.tokenLabel, pin: readFileSync(settings.pinFile, 'utf8').trim(), sessionPoolSize: settings.sessions });
  try {
    // A message of the size the service signs.
    const data = Buffer.alloc(settings.dataBytes ?? 250, 0x30);
    const sign = () => keyManager.sign({ keyId: settings.keyId, algorithm: settings.algorithm, data });
    const run = async (seconds: number) => {
      const until = Date.now() + seconds * 1000;
      let signatures = 0;
      const cpuBefore = process.cpuUsage();
      const started = process.hrtime.bigint();
      await Promise.all(
        Array.from({ length: settings.inFlight }, async () => {
          while (Date.now() < until) {
            await sign();
            signatures++;
          }
        }),
      );
      const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
      const cpu = process.cpuUsage(cpuBefore);
      return { perSecond: signatures / elapsed, cpuPerSignatureUs: Math.round((cpu.user + cpu.system) / signatures) };
    };
    await run(1); // warm up
    console.log(JSON.stringify(await run(settings.seconds)));
  } finally {
    await keyManager.close();
  }
}

main().catch((err: unknown) => {
  console.error(`pkcs11-alone failed: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
