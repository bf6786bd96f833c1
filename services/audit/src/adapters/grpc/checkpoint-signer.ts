import { createGrpcClient, type ServiceClient } from '@pki/grpc';
import { caSignerV1 } from '@pki/proto';
import type { CheckpointSigner } from '../../domain/checkpointer';
import type { SignedCheckpoint } from '../../domain/checkpoint';

/** SignAuditCheckpoint over mTLS; errors arrive as PkiError with ca-signer's code and details. */
export class GrpcCheckpointSigner implements CheckpointSigner {
  readonly #client: ServiceClient<typeof caSignerV1.CaSignerService>;

  constructor(options: Parameters<typeof createGrpcClient>[1]) {
    this.#client = createGrpcClient(caSignerV1.CaSignerService, options);
  }

  async sign(request: Parameters<CheckpointSigner['sign']>[0]): Promise<SignedCheckpoint> {
    const response = await this.#client.signAuditCheckpoint({
      origin: request.origin,
      treeSize: BigInt(request.treeSize),
      rootHash: request.rootHash,
      previousTreeSize: BigInt(request.previousTreeSize),
      consistencyProof: request.consistencyProof,
      producerHeads: request.producerHeads.map((h) => ({ producer: h.producer, sequence: BigInt(h.seq) })),
    });
    return {
      checkpoint: Buffer.from(response.checkpoint),
      signature: Buffer.from(response.signature),
      signatureAlgorithm: response.signatureAlgorithm,
      signerCertificate: Buffer.from(response.signerCertificate),
    };
  }

  close(): void {
    this.#client.close();
  }
}
