export {
  CIRCUIT_STATE_VALUE,
  ResilientKeyManager,
  type CircuitState,
  type HsmMetrics,
  type HsmOperation,
  type HsmOutcome,
  type ResilientKeyManagerOptions,
  type ResilientKeyManagerStats,
  type SignatureProbe,
  type TestSignatureRecord,
} from './resilient-key-manager';
