export * from './adapter';
export * from './identity';
export * from './errors';
export * from './server';
export * from './client';
export * from './allow-lists';
