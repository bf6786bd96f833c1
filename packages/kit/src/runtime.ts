import type { Registry } from 'prom-client';
import { Lifecycle } from './lifecycle';
import { createLogger, type Logger } from './logging';
import { OpsServer, createMetricsRegistry, type ReadinessCheck } from './observability';
import type { z } from 'zod';
import type { logConfig, opsConfig } from './config';

/**
 * What every service has regardless of its domain: a logger, a metrics registry, readiness
 * checks, the ops endpoint and an ordered shutdown. A service's app.ts builds one of these,
 * adds its own dependencies to it, and never repeats this wiring.
 */
export class ServiceRuntime {
  readonly service: string;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly lifecycle: Lifecycle;
  readonly readiness: ReadinessCheck[] = [];
  readonly health: ReadinessCheck[] = [];
  readonly #ops: OpsServer;
  #opsUrl: string | undefined;

  constructor(service: string, config: { log: z.output<typeof logConfig>; ops: z.output<typeof opsConfig> }, logger?: Logger) {
    this.service = service;
    this.logger = logger ?? createLogger({ service, level: config.log.level });
    this.registry = createMetricsRegistry(service);
    this.lifecycle = new Lifecycle(this.logger);
    this.#ops = new OpsServer({ service, host: config.ops.host, port: config.ops.port, registry: this.registry, readiness: this.readiness, health: this.health, logger: this.logger });
    // Readiness fails first so that load balancers stop routing before listeners close.
    this.lifecycle.onShutdownBegins(() => this.#ops.markDraining());
    this.lifecycle.onClose({ name: 'ops endpoint', stop: () => this.#ops.close() });
  }

  addReadinessCheck(check: ReadinessCheck): void {
    this.readiness.push(check);
  }

  /** A check reported at /healthz for monitoring; unlike readiness it never takes the service out of routing. */
  addHealthCheck(check: ReadinessCheck): void {
    this.health.push(check);
  }

  /** Serves /metrics, /livez and /readyz; returns the base URL. */
  async startOps(): Promise<string> {
    this.#opsUrl = (await this.#ops.listen()).url;
    return this.#opsUrl;
  }

  get opsUrl(): string {
    if (!this.#opsUrl) throw new Error(`${this.service}: ops endpoint not started`);
    return this.#opsUrl;
  }

  stop(): Promise<void> {
    return this.lifecycle.stop();
  }
}
