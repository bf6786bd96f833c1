// Generated contracts (packages/proto/src/gen, from proto/ by `make proto`); never edit gen/ by hand.
export * as caSignerV1 from './gen/pki/ca_signer/v1/ca_signer_pb';
export * as healthV1 from './gen/grpc/health/v1/health_pb';
