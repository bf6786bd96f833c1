export * from './errors';
export { status as GrpcStatus } from './grpc-status';
export * from './logging';
export * from './config';
export * from './clock';
export * from './observability';
export * from './lifecycle';
export * from './runtime';
export * from './main';
