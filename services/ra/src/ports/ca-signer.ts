import type { caSignerV1 } from '@pki/proto';
import type { ServiceClient } from '@pki/grpc';

/** What ra needs of ca-signer: the generated client, or a fake in unit tests. */
export type CaSigner = Pick<ServiceClient<typeof caSignerV1.CaSignerService>, 'issueCertificate' | 'getIssuers'>;
