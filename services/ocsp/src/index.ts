export * from './config';
export * from './app';
export { ResponseStoreWriter, ResponseStoreReader, type StoreLayout } from './store/shared-response-store';
