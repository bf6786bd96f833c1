export * from './layout';
export * from './configs';
export * from './ra-dev';
