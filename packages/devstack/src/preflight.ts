import { createServer } from 'node:net';
import { devPorts, portsInUse, type DevPorts } from './layout';
import { UpError } from './terminal';

/** Whether a port of the loopback interface is free to listen on, right now. */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Refuses to start anything when a port of the block is taken, and suggests a free block. */
export async function assertPortsFree(ports: DevPorts): Promise<void> {
  for (const [port, what] of portsInUse(ports)) {
    if (await portIsFree(port)) continue;
    const base = ports.postgres - 32;
    let suggestion = '';
    for (let candidate = base + 1000; candidate <= 60_000; candidate += 1000) {
      const all = portsInUse(devPorts(candidate));
      if ((await Promise.all(all.map(([p]) => portIsFree(p)))).every(Boolean)) {
        suggestion = ` or move every port: PKI_DEV_PORT_BASE=${candidate} make up`;
        break;
      }
    }
    throw new UpError(`port ${port} (${what}) is already in use on 127.0.0.1`, `Stop what uses it (ss -ltnp 'sport = :${port}' shows it)${suggestion}`);
  }
}

