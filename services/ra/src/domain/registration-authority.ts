import { MobileCertificates } from './mobile';
import { Approvals } from './approvals';
import { CardStatusService } from './card-status';
import { Issuance } from './issuance';
import { Queries } from './queries';
import { Reconciliation, type ReconciliationPolicy } from './reconciliation';
import { Subscribers } from './subscribers';
import type { RaDeps } from './shared';
import type { AgencyStore } from '../ports/agency';
import { AgencySystems, type AgencyPolicy } from './agency-systems';
import { IdentityConfirmation, type IdentityConfirmationPolicy } from './identity-confirmation';
import { UsageMetering } from './usage-metering';
import { Statistics } from './statistics';

/** The agency part (issue 13): its own store (the same database) and policies. */
export interface AgencyWiring {
  store: AgencyStore;
  policy: AgencyPolicy;
  identityConfirmation: IdentityConfirmationPolicy;
}

/** ra's use cases, wired together; the transports (http/, grpc/) call nothing else. */
export class RegistrationAuthority {
  readonly subscribers: Subscribers;
  readonly issuance: Issuance;
  readonly cards: CardStatusService;
  readonly approvals: Approvals;
  readonly queries: Queries;
  readonly reconciliation: Reconciliation;
  readonly mobile: MobileCertificates;
  readonly agencies: AgencySystems;
  readonly identityConfirmation: IdentityConfirmation;
  readonly usage: UsageMetering;
  readonly statistics: Statistics;

  constructor(deps: RaDeps, reconciliation: ReconciliationPolicy, agency: AgencyWiring) {
    this.subscribers = new Subscribers(deps);
    this.issuance = new Issuance(deps);
    this.cards = new CardStatusService(deps);
    this.approvals = new Approvals(deps, this.cards, this.issuance);
    this.issuance.useApprovals(this.approvals);
    this.cards.useApprovals(this.approvals);
    this.queries = new Queries(deps);
    this.reconciliation = new Reconciliation(deps, this.issuance, reconciliation);
    this.mobile = new MobileCertificates(deps);
    this.agencies = new AgencySystems({ store: agency.store, signer: deps.signer, clock: deps.clock, policy: agency.policy });
    this.identityConfirmation = new IdentityConfirmation({ store: agency.store, vault: deps.vault, clock: deps.clock, policy: agency.identityConfirmation });
    this.usage = new UsageMetering(agency.store, deps.logger);
    this.statistics = new Statistics(agency.store);
  }
}
