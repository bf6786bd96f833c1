import { runMigrateCli } from '@pki/outbox';
import { MIGRATIONS_DIRECTORY, SHARED_MIGRATIONS } from './app';

// Applies this service's schema alone and exits: the Helm chart's migration Job (deploy/helm).
runMigrateCli('crl', MIGRATIONS_DIRECTORY, SHARED_MIGRATIONS);
