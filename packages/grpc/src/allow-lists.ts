/**
 * Who may call each RPC of the PKI's gRPC servers, by the caller's service name. This is the one
 * source of every deployment's `allow` blocks (services/<name>/src/config.ts): `make up`'s
 * configs (packages/devstack) and the Helm chart's (deploy/helm/citizen-pki/files/allow-lists.json,
 * generated from this by packages/deploy, a test failing when the two differ), whose
 * NetworkPolicies are derived from the same file, so that the network and the servers' own checks
 * cannot drift apart.
 *
 * '*' admits any caller holding a valid certificate of the internal service CA (every service of
 * the PKI); the Health service of every server is '*' too and is not listed here.
 */
export const PKI_SERVICES = ['ca-signer', 'ra', 'card-mgmt', 'ocsp', 'crl', 'audit'] as const;
export type PkiServiceName = (typeof PKI_SERVICES)[number];
export type AllowListSource = Readonly<Record<string, readonly (PkiServiceName | '*')[]>>;

export const GRPC_ALLOW_LISTS = {
  /** pki.ca.v1.CaSignerService: the signing key's callers, one RPC at a time. */
  'ca-signer': {
    IssueCertificate: ['ra'],
    IssueCertificates: ['ra'],
    GetIssuers: ['*'],
    SignCrl: ['crl'],
    SignOcspResponses: ['ocsp'],
    SignLiveOcspResponses: ['ocsp'],
    SignAuditCheckpoint: ['audit'],
    ListIssuances: ['ra'],
    SignValidationReceipt: ['ra'],
  },
  /** pki.ra.v1.RaService: card-mgmt's counter operations (decision 0023); ocsp and crl rebuild their state. */
  ra: {
    GetCertificate: ['card-mgmt', 'ocsp', 'crl'],
    ListCertificateStatuses: ['ocsp', 'crl'],
    GetCard: ['card-mgmt'],
    ResolveOfficer: ['card-mgmt'],
    IssueCardCertificates: ['card-mgmt'],
    ChangeCardStatus: ['card-mgmt'],
    VerifySubscriberCode: ['card-mgmt'],
    IssueMobileCertificate: ['card-mgmt'],
    ChangeMobileCertificateStatus: ['card-mgmt'],
  },
} as const satisfies Partial<Record<PkiServiceName, AllowListSource>>;

export type GrpcServerName = keyof typeof GRPC_ALLOW_LISTS;

/** A server's allow-lists as its config wants them: identities (e.g. spiffe://pki.internal/ra) instead of names. */
export function allowListsWithIdentities<S extends GrpcServerName>(server: S, identityOf: (service: string) => string): { [R in keyof (typeof GRPC_ALLOW_LISTS)[S]]: string[] } {
  const lists = GRPC_ALLOW_LISTS[server] as AllowListSource;
  return Object.fromEntries(Object.entries(lists).map(([rpc, callers]) => [rpc, callers.map((c) => (c === '*' ? '*' : identityOf(c)))])) as never;
}

/**
 * The services that may open a connection to a server's gRPC port: the union of its RPCs'
 * callers, '*' standing for every other service of the PKI. What a NetworkPolicy can express.
 */
export function grpcCallersOf(server: GrpcServerName): PkiServiceName[] {
  const callers = new Set<PkiServiceName>();
  for (const list of Object.values(GRPC_ALLOW_LISTS[server] as AllowListSource)) {
    for (const c of list) {
      if (c === '*') PKI_SERVICES.filter((s) => s !== server).forEach((s) => callers.add(s));
      else callers.add(c);
    }
  }
  return PKI_SERVICES.filter((s) => callers.has(s));
}
