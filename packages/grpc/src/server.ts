import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { create, type DescMethodClientStreaming, type DescMethodUnary, type DescService, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import { PkiError, type Logger, type ReadinessCheck } from '@pki/kit';
import { healthV1 } from '@pki/proto';
import { serviceDefinition, servedMethods } from './adapter';
import { isAllowed, spiffeIdOf, type AllowList } from './identity';
import { toServiceError } from './errors';
import type { Counter, Histogram, Registry } from 'prom-client';
import * as prom from 'prom-client';

/** What a handler knows about the call besides the request. */
export interface CallContext {
  /** Caller identity from its mTLS certificate (spiffe://pki.internal/<service>). */
  caller: string;
  /** RPC name, e.g. "IssueCertificate". */
  method: string;
  /** When the caller stops waiting; outgoing calls made on its behalf must not outlive it. */
  deadline: Date | undefined;
  logger: Logger;
}

export type UnaryHandler<M extends DescMethodUnary> = (
  request: MessageShape<M['input']>,
  context: CallContext,
) => Promise<MessageInitShape<M['output']>>;

/**
 * A client-streaming method's handler: it reads the requests as they arrive (the stream applies
 * backpressure: an unread message is not followed by more than grpc-js and HTTP/2 flow control
 * buffer) and answers once. Throwing ends the call with the error, whatever is still unread.
 */
export type ClientStreamingHandler<M extends DescMethodClientStreaming> = (
  requests: AsyncIterable<MessageShape<M['input']>>,
  context: CallContext,
) => Promise<MessageInitShape<M['output']>>;

/** Handlers of every unary and client-streaming method of a service, keyed by the generated local name. */
export type ServiceHandlers<S extends DescService> = {
  [K in keyof S['method']]: S['method'][K] extends DescMethodUnary
    ? UnaryHandler<S['method'][K]>
    : S['method'][K] extends DescMethodClientStreaming
      ? ClientStreamingHandler<S['method'][K]>
      : never;
};

export interface ServiceRegistration<S extends DescService = DescService> {
  service: S;
  handlers: ServiceHandlers<S>;
  /** Allow-list per RPC name (as in the .proto). Every RPC must have one; there is no default. */
  allow: Readonly<Record<string, AllowList>>;
}

export interface TlsFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}

export interface GrpcServerOptions {
  host: string;
  port: number;
  tls: TlsFiles;
  logger: Logger;
  registry?: Registry;
  /** Backs grpc.health.v1.Health/Check: SERVING only when every check passes. */
  readiness?: ReadinessCheck[];
}

/**
 * A gRPC server that only speaks mTLS (a client without a certificate from the internal service
 * CA cannot complete the handshake), checks each RPC's allow-list against the caller's SPIFFE
 * identity before the handler runs, maps PkiError to status + trailers once, and serves the
 * standard health service.
 */
export class GrpcServer {
  readonly #server = new grpc.Server({ 'grpc.max_receive_message_length': 8 * 1024 * 1024 });
  readonly #options: GrpcServerOptions;
  readonly #handled: Counter<'method' | 'code'>;
  readonly #latency: Histogram<'method'>;
  #port: number | undefined;
  #serving = true;

  constructor(options: GrpcServerOptions, registrations: ServiceRegistration<DescService>[]) {
    this.#options = options;
    const registers = options.registry ? [options.registry] : [];
    this.#handled = new prom.Counter({ name: 'grpc_server_handled_total', help: 'RPCs completed, by method and status code', labelNames: ['method', 'code'], registers });
    this.#latency = new prom.Histogram({ name: 'grpc_server_handling_seconds', help: 'RPC handling time', labelNames: ['method'], registers, buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] });
    for (const r of registrations) this.#register(r);
    this.#registerHealth();
  }

  async listen(): Promise<{ port: number; address: string }> {
    const { tls } = this.#options;
    const credentials = grpc.ServerCredentials.createSsl(
      readFileSync(tls.caFile),
      [{ cert_chain: readFileSync(tls.certFile), private_key: readFileSync(tls.keyFile) }],
      true, // require and verify a client certificate: no anonymous callers
    );
    this.#port = await new Promise<number>((resolve, reject) => {
      this.#server.bindAsync(`${this.#options.host}:${this.#options.port}`, credentials, (err, port) => (err ? reject(err) : resolve(port)));
    });
    return { port: this.#port, address: `${this.#options.host}:${this.#port}` };
  }

  /** Stops accepting calls and waits for in-flight ones, then forces the rest after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    this.#serving = false;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#server.forceShutdown();
        resolve();
      }, graceMs);
      this.#server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  #register<S extends DescService>(registration: ServiceRegistration<S>): void {
    const { service, handlers, allow } = registration;
    const methods = servedMethods(service);
    const known = new Set(methods.map((m) => m.name));
    for (const name of Object.keys(allow)) {
      if (!known.has(name)) throw new PkiError('INVALID_ARGUMENT', `register ${service.typeName}: allow-list names unknown RPC '${name}'`);
    }
    const impl: grpc.UntypedServiceImplementation = {};
    for (const method of methods) {
      const list = allow[method.name];
      if (!list) throw new PkiError('INVALID_ARGUMENT', `register ${service.typeName}: RPC '${method.name}' has no allow-list`);
      const handler = (handlers as Record<string, (request: never, context: CallContext) => Promise<unknown>>)[method.localName];
      if (!handler) throw new PkiError('INVALID_ARGUMENT', `register ${service.typeName}: RPC '${method.name}' has no handler`);
      impl[method.localName] = this.#wrap(method, list, handler);
    }
    this.#server.addService(serviceDefinition(service), impl);
  }

  #wrap(
    method: DescMethodUnary | DescMethodClientStreaming,
    allow: AllowList,
    handler: (request: never, context: CallContext) => Promise<unknown>,
  ): grpc.handleUnaryCall<unknown, unknown> | grpc.handleClientStreamingCall<unknown, unknown> {
    const logger = this.#options.logger;
    return (call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerReadableStream<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      const stopTimer = this.#latency.startTimer({ method: method.name });
      const finish = (code: grpc.status, err: Partial<grpc.ServiceError> | null, response?: unknown): void => {
        stopTimer();
        this.#handled.inc({ method: method.name, code: grpc.status[code] ?? String(code) });
        callback(err, response);
      };
      const caller = spiffeIdOf(call.getAuthContext()?.sslPeerCertificate);
      if (!isAllowed(allow, caller)) {
        logger.warn({ method: method.name, caller: caller ?? '(no identity)' }, 'caller refused by allow-list');
        const err = new PkiError('PERMISSION_DENIED', `${method.name}: caller ${caller ?? 'without a service identity'} is not allowed to call this RPC`);
        finish(grpc.status.PERMISSION_DENIED, toServiceError(err));
        return;
      }
      const rawDeadline = call.getDeadline();
      const deadline = rawDeadline instanceof Date ? rawDeadline : Number.isFinite(rawDeadline) ? new Date(rawDeadline) : undefined;
      const context: CallContext = { caller: caller!, method: method.name, deadline, logger: logger.child({ method: method.name, caller }) };
      const input = method.methodKind === 'unary' ? (call as grpc.ServerUnaryCall<unknown, unknown>).request : (call as grpc.ServerReadableStream<unknown, unknown>);
      handler(input as never, context).then(
        (init) => finish(grpc.status.OK, null, create(method.output, init as MessageInitShape<typeof method.output>)),
        (err: unknown) => {
          // A client stream the handler stopped reading early: drop what is still coming.
          if (method.methodKind === 'client_streaming') (call as grpc.ServerReadableStream<unknown, unknown>).resume();
          if (err instanceof PkiError) {
            if (err.code === 'INTERNAL') context.logger.error({ err }, 'RPC failed');
            const serviceError = toServiceError(err);
            finish(serviceError.code ?? grpc.status.UNKNOWN, serviceError);
            return;
          }
          // Never leak internals to the caller; the log has the cause.
          context.logger.error({ err }, 'RPC failed with an unexpected error');
          finish(grpc.status.INTERNAL, toServiceError(new PkiError('INTERNAL', `${method.name}: internal error`)));
        },
      );
    };
  }

  #registerHealth(): void {
    const checks = this.#options.readiness ?? [];
    const Status = healthV1.HealthCheckResponse_ServingStatus;
    const handlers: ServiceHandlers<typeof healthV1.Health> = {
      check: async () => {
        if (!this.#serving) return { status: Status.NOT_SERVING };
        try {
          await Promise.all(checks.filter((c) => c.critical !== false).map((c) => c.check()));
          return { status: Status.SERVING };
        } catch {
          return { status: Status.NOT_SERVING };
        }
      },
    };
    this.#register({ service: healthV1.Health, handlers, allow: { Check: ['*'] } });
  }
}
