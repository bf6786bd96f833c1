export * from './layout';
export * from './configs';
export * from './ra-dev';
export * from './database';
export * from './preflight';
export * from './supervisor';
export * from './terminal';
