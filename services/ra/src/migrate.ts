import { runMigrateCli } from '@pki/outbox';
import { MIGRATIONS_DIRECTORY } from './app';

// Applies this service's schema alone and exits: the Helm chart's migration Job (deploy/helm).
runMigrateCli('ra', MIGRATIONS_DIRECTORY);
