import { fromBinary, toBinary, type DescMessage, type DescMethodClientStreaming, type DescMethodUnary, type DescService } from '@bufbuild/protobuf';
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';

/**
 * The one bridge between protobuf-es descriptors and @grpc/grpc-js: grpc-js only needs a path
 * and (de)serialisers per method, which protobuf-es provides from the generated descriptors.
 */
export function unaryMethods(service: DescService): DescMethodUnary[] {
  return service.methods.filter((m): m is DescMethodUnary => m.methodKind === 'unary');
}

/** Methods whose request is a stream of messages and whose response is one message. */
export function clientStreamingMethods(service: DescService): DescMethodClientStreaming[] {
  return service.methods.filter((m): m is DescMethodClientStreaming => m.methodKind === 'client_streaming');
}

/** The methods this adapter serves: unary and client-streaming (no server or bidi streams yet). */
export function servedMethods(service: DescService): Array<DescMethodUnary | DescMethodClientStreaming> {
  return [...unaryMethods(service), ...clientStreamingMethods(service)];
}

export function methodPath(service: DescService, method: { name: string }): string {
  return `/${service.typeName}/${method.name}`;
}

function serializer<D extends DescMessage>(desc: D) {
  return (message: Parameters<typeof toBinary<D>>[1]): Buffer => Buffer.from(toBinary(desc, message));
}
function deserializer<D extends DescMessage>(desc: D) {
  return (bytes: Buffer) => fromBinary(desc, bytes);
}

export function methodDefinition(service: DescService, method: DescMethodUnary | DescMethodClientStreaming): MethodDefinition<unknown, unknown> {
  return {
    path: methodPath(service, method),
    requestStream: method.methodKind === 'client_streaming',
    responseStream: false,
    requestSerialize: serializer(method.input) as (value: unknown) => Buffer,
    requestDeserialize: deserializer(method.input),
    responseSerialize: serializer(method.output) as (value: unknown) => Buffer,
    responseDeserialize: deserializer(method.output),
  };
}

export function serviceDefinition(service: DescService): ServiceDefinition {
  const def: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const method of servedMethods(service)) def[method.localName] = methodDefinition(service, method);
  return def;
}
