import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { create, type DescMethodClientStreaming, type DescMethodUnary, type DescService, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import { PkiError } from '@pki/kit';
import { clientStreamingMethods, methodDefinition, unaryMethods } from './adapter';
import { fromServiceError } from './errors';
import { spiffeIdOf } from './identity';
import type { TlsFiles } from './server';

export interface CallOptions {
  /** Absolute deadline, usually the incoming call's (CallContext.deadline) so that it propagates. */
  deadline?: Date;
}

export type UnaryClientMethod<M extends DescMethodUnary> = (
  request: MessageInitShape<M['input']>,
  options?: CallOptions,
) => Promise<MessageShape<M['output']>>;

/**
 * A client-streaming method: the requests are written as the iterable yields them, each only
 * once the transport has room for it (backpressure), so a producer of millions of entries never
 * runs ahead of the network. Resolves with the one response; rejects with the server's error as
 * soon as it arrives, and then stops pulling from the iterable.
 */
export type ClientStreamingClientMethod<M extends DescMethodClientStreaming> = (
  requests: AsyncIterable<MessageInitShape<M['input']>> | Iterable<MessageInitShape<M['input']>>,
  options?: CallOptions,
) => Promise<MessageShape<M['output']>>;

export type ServiceClient<S extends DescService> = {
  [K in keyof S['method']]: S['method'][K] extends DescMethodUnary
    ? UnaryClientMethod<S['method'][K]>
    : S['method'][K] extends DescMethodClientStreaming
      ? ClientStreamingClientMethod<S['method'][K]>
      : never;
} & { close(): void };

export interface GrpcClientOptions {
  address: string;
  /** The SPIFFE identity the server must present; anything else fails the handshake. */
  serverIdentity: string;
  tls: TlsFiles;
  /** Deadline applied when the caller gives none, and the upper bound when it does. */
  deadlineMs: number;
}

/**
 * A typed client for one service over mTLS. The server is authenticated by its SPIFFE identity
 * rather than by host name: pods move, identities do not. Errors come back as PkiError with the
 * server's code and message.
 */
export function createGrpcClient<S extends DescService>(service: S, options: GrpcClientOptions): ServiceClient<S> {
  const { tls } = options;
  const credentials = grpc.credentials.createSsl(readFileSync(tls.caFile), readFileSync(tls.keyFile), readFileSync(tls.certFile), {
    checkServerIdentity: (_host, cert) => {
      const identity = spiffeIdOf(cert);
      return identity === options.serverIdentity
        ? undefined
        : new Error(`server identity ${identity ?? '(none)'} is not the expected ${options.serverIdentity}`);
    },
  });
  // SNI and :authority carry the service name rather than an IP address (RFC 6066 §3 forbids IP
  // literals in SNI); the certificate itself is checked by SPIFFE identity above.
  const serviceName = options.serverIdentity.split('/').pop() ?? 'localhost';
  const client = new grpc.Client(options.address, credentials, { 'grpc.ssl_target_name_override': serviceName, 'grpc.default_authority': serviceName });
  const methods: Record<string, unknown> = { close: () => client.close() };
  for (const method of unaryMethods(service)) {
    const def = methodDefinition(service, method);
    methods[method.localName] = (request: MessageInitShape<DescMethodUnary['input']>, callOptions: CallOptions = {}) => {
      const ceiling = Date.now() + options.deadlineMs;
      const deadline = callOptions.deadline && callOptions.deadline.getTime() < ceiling ? callOptions.deadline : new Date(ceiling);
      const operation = `${service.name}.${method.name}`;
      if (deadline.getTime() <= Date.now()) {
        return Promise.reject(new PkiError('DEADLINE_EXCEEDED', `${operation}: the caller's deadline has already passed`));
      }
      return new Promise((resolve, reject) => {
        client.makeUnaryRequest(
          def.path,
          def.requestSerialize,
          def.responseDeserialize,
          create(method.input, request),
          new grpc.Metadata(),
          { deadline },
          (err, response) => (err ? reject(fromServiceError(err, operation)) : resolve(response)),
        );
      });
    };
  }
  for (const method of clientStreamingMethods(service)) {
    const def = methodDefinition(service, method);
    methods[method.localName] = async (requests: AsyncIterable<MessageInitShape<DescMethodClientStreaming['input']>>, callOptions: CallOptions = {}) => {
      const ceiling = Date.now() + options.deadlineMs;
      const deadline = callOptions.deadline && callOptions.deadline.getTime() < ceiling ? callOptions.deadline : new Date(ceiling);
      const operation = `${service.name}.${method.name}`;
      if (deadline.getTime() <= Date.now()) throw new PkiError('DEADLINE_EXCEEDED', `${operation}: the caller's deadline has already passed`);
      let failed: PkiError | undefined;
      let wake: (() => void) | undefined;
      const response = new Promise<unknown>((resolve, reject) => {
        const stream = client.makeClientStreamRequest(def.path, def.requestSerialize, def.responseDeserialize, new grpc.Metadata(), { deadline }, (err, value) => {
          if (err) {
            failed = fromServiceError(err, operation);
            reject(failed);
          } else resolve(value);
          wake?.();
        });
        void (async () => {
          try {
            for await (const request of requests) {
              if (failed) return;
              if (!stream.write(create(method.input, request))) {
                await new Promise<void>((resume) => {
                  wake = resume;
                  stream.once('drain', resume);
                });
                wake = undefined;
              }
            }
            if (!failed) stream.end();
          } catch (err) {
            // The producer failed: abandon the call so the server signs nothing.
            stream.cancel();
            failed = PkiError.from(err, operation);
            reject(failed);
          }
        })();
      });
      return response;
    };
  }
  return methods as ServiceClient<S>;
}
