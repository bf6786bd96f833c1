export * from './format';
export { generateLegacyExport, wrapPrivateKey, type GenerateOptions, type GeneratedExport } from './generate';
export { importLegacyExport, type ImportOptions, type ImportResult, type ImportTargets } from './importer';
export { buildReport, checkNewSystem, renderReport, type NewSystemCheck, type ReconciliationReport } from './report';
export { stderrProgress, silentProgress, type Progress } from './progress';
export { migrationConfigSchema, type MigrationConfig } from './config';
export { targetsFrom, closeTargets } from './cli';
