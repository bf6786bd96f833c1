export * from './layout';
export * from './configs';
