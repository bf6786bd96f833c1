import { MobileCertificates } from './mobile';
import { Approvals } from './approvals';
import { CardStatusService } from './card-status';
import { Issuance } from './issuance';
import { Queries } from './queries';
import { Reconciliation, type ReconciliationPolicy } from './reconciliation';
import { Subscribers } from './subscribers';
import type { RaDeps } from './shared';

/** ra's use cases, wired together; the transports (http/, grpc/) call nothing else. */
export class RegistrationAuthority {
  readonly subscribers: Subscribers;
  readonly issuance: Issuance;
  readonly cards: CardStatusService;
  readonly approvals: Approvals;
  readonly queries: Queries;
  readonly reconciliation: Reconciliation;
  readonly mobile: MobileCertificates;

  constructor(deps: RaDeps, reconciliation: ReconciliationPolicy) {
    this.subscribers = new Subscribers(deps);
    this.issuance = new Issuance(deps);
    this.cards = new CardStatusService(deps);
    this.approvals = new Approvals(deps, this.cards, this.issuance);
    this.issuance.useApprovals(this.approvals);
    this.cards.useApprovals(this.approvals);
    this.queries = new Queries(deps);
    this.reconciliation = new Reconciliation(deps, this.issuance, reconciliation);
    this.mobile = new MobileCertificates(deps);
  }
}
