import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from './logging';

/** A named readiness check: resolves when the dependency is usable, throws (with a reason) when not. */
export interface ReadinessCheck {
  name: string;
  check(): Promise<void>;
  /**
   * False for a dependency the service keeps answering without (ocsp serves from memory while
   * PostgreSQL, Kafka or ca-signer is down): its failure is reported as "degraded: <reason>" and
   * does not make the service unready, so a load balancer does not take away every pod at once.
   */
  critical?: boolean;
}

export interface OpsServerOptions {
  service: string;
  host: string;
  port: number;
  registry: Registry;
  readiness: ReadinessCheck[];
  /**
   * Checks served at /healthz for monitoring (e.g. "the published CRL is within its schedule"):
   * reported, never used for routing or restarts, since a stale answer served is better than none.
   */
  health?: ReadinessCheck[];
  logger: Logger;
  /** Readiness checks that take longer than this count as failed. */
  checkTimeoutMs?: number;
}

/** Per-service metrics registry with the process defaults and a `service` label on everything. */
export function createMetricsRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}

/**
 * The operational endpoint of a service, on its own port so that it is never exposed with the
 * public API: `/metrics` (Prometheus), `/livez` (the process is alive; Kubernetes restarts it
 * when this fails) and `/readyz` (dependencies usable; the load balancer stops routing to it
 * when this fails, and during shutdown).
 */
export class OpsServer {
  readonly #server: http.Server;
  readonly #options: OpsServerOptions;
  #draining = false;

  constructor(options: OpsServerOptions) {
    this.#options = options;
    this.#server = http.createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        options.logger.error({ err }, 'ops endpoint failed');
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    });
  }

  /** From now on /readyz answers 503 so that traffic drains before the process stops. */
  markDraining(): void {
    this.#draining = true;
  }

  async listen(): Promise<{ url: string }> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#options.port, this.#options.host, () => resolve());
    });
    const { port } = this.#server.address() as AddressInfo;
    return { url: `http://${this.#options.host}:${port}` };
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /** Runs every readiness check; the result names each failing dependency. */
  async readiness(): Promise<{ ready: boolean; checks: Record<string, string> }> {
    const checks = await this.#run(this.#options.readiness);
    if (this.#draining) checks.shutdown = 'draining';
    return { ready: Object.values(checks).every((v) => v === 'ok' || v.startsWith('degraded: ')), checks };
  }

  async #run(list: ReadinessCheck[]): Promise<Record<string, string>> {
    const timeout = this.#options.checkTimeoutMs ?? 2_000;
    const checks: Record<string, string> = {};
    await Promise.all(
      list.map(async (c) => {
        try {
          await Promise.race([
            c.check(),
            new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer within ${timeout} ms`)), timeout).unref()),
          ]);
          checks[c.name] = 'ok';
        } catch (err) {
          const reason = err instanceof Error ? err.message : String(err);
          checks[c.name] = c.critical === false ? `degraded: ${reason}` : reason;
        }
      }),
    );
    return checks;
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    if (url === '/livez') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'ok', service: this.#options.service }));
      return;
    }
    if (url === '/readyz') {
      const result = await this.readiness();
      res.writeHead(result.ready ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(result));
      return;
    }
    if (url === '/healthz') {
      const checks = await this.#run(this.#options.health ?? []);
      const healthy = Object.values(checks).every((v) => v === 'ok');
      res.writeHead(healthy ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ healthy, checks }));
      return;
    }
    if (url === '/metrics') {
      const body = await this.#options.registry.metrics();
      res.writeHead(200, { 'content-type': this.#options.registry.contentType }).end(body);
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'NOT_FOUND', message: `no ops endpoint ${url}` }));
  }
}
