import type { RevocationChange } from '../domain/status-change';

export type CrlKind = 'FULL' | 'DELTA' | 'PARTITION' | 'ARL';

/** A CA generation as the crl service knows it (from ca-signer's GetIssuers). */
export interface KnownIssuer {
  keyId: string;
  role: 'ROOT' | 'ISSUING';
  certificateDer: Buffer;
  /** ISSUING: the partition count recorded with the generation. */
  crlPartitions: number | null;
  crlBaseUrl: string | null;
  notAfter: Date;
}

/** A CRL's record (its bytes are in chunks). */
export interface CrlRecord {
  id: string;
  issuerKeyId: string;
  /** 'full' (complete and delta CRLs share it), 'p<N>', 'arl'. */
  scope: string;
  kind: CrlKind;
  crlNumber: bigint;
  baseCrlNumber: bigint | undefined;
  thisUpdate: Date;
  nextUpdate: Date;
  entries: number;
  size: number;
  snapshotSeq: bigint;
  publishedAt: Date | undefined;
  generationMs: number | undefined;
}

/** Who may publish: the lease holder and the fencing token it got when it took the lease. */
export interface LeaseClaim {
  holder: string;
  token: bigint;
}

/** A consistent read of the entries one CRL lists (a database snapshot). */
export interface EntrySnapshot {
  /** Every change up to this one is visible, none after. */
  seq: bigint;
  count: number;
  length: number;
  /** The entries' DER in CRL order, in batches of whole entries. */
  batches(): AsyncIterable<Buffer>;
  close(): Promise<void>;
}

export interface EntryFilter {
  issuerKeyId: string;
  partition?: number;
  /** Listed if not_after is after this (thisUpdate less the grace period). */
  expiredBefore: Date;
  /** Listed if revoked at or before this (thisUpdate). */
  revokedBy: Date;
}

/** One entry of a delta: the current entry, or removeFromCRL with the date the base listed. */
export type DeltaEntry = { serial: Buffer; entryDer: Buffer } | { serial: Buffer; removedRevocationTime: Date };

export interface RegenerationRequest {
  id: string;
  issuerKeyId: string;
  kind: 'FULL' | 'DELTA' | 'PARTITION';
  partition: number | undefined;
}

/** The crl service's records: status, numbers, lease, CRLs and their bytes. */
export interface CrlStore {
  saveIssuers(issuers: readonly KnownIssuer[]): Promise<void>;
  issuers(): Promise<KnownIssuer[]>;
  /** Applies one status event once (dedupe by producer and sequence in the same transaction). */
  applyStatusChange(event: { producer: string; seq: number }, change: RevocationChange, partitions: number | undefined): Promise<'applied' | 'duplicate' | 'stale' | 'ignored'>;

  /** Takes the lease if free or expired, or renews it for its holder; undefined when another holds it. */
  claimLease(holder: string, leaseSeconds: number, current: LeaseClaim | undefined): Promise<LeaseClaim | undefined>;
  releaseLease(claim: LeaseClaim): Promise<void>;

  /** The next number of a scope, reserved while the claim is valid; refused (FAILED_PRECONDITION) otherwise. */
  reserveNumber(claim: LeaseClaim, issuerKeyId: string, scope: string, now: Date, atLeast?: bigint): Promise<bigint>;
  openSnapshot(filter: EntryFilter, batchEntries: number): Promise<EntrySnapshot>;
  deltaEntries(issuerKeyId: string, base: { snapshotSeq: bigint; thisUpdate: Date; expiredBefore: Date }, now: { thisUpdate: Date; expiredBefore: Date }): Promise<{ seq: bigint; entries: DeltaEntry[] }>;
  scopeChanges(issuerKeyId: string): Promise<Map<string, bigint>>;

  beginCrl(claim: LeaseClaim, record: Omit<CrlRecord, 'id' | 'size' | 'publishedAt' | 'generationMs'>): Promise<string>;
  writeChunk(crlId: string, seq: number, data: Buffer): Promise<void>;
  /**
   * Publishes a CRL built under `claim`, in one transaction that checks the lease (holder, token,
   * not expired) and that the number is above every published one of the scope; refuses with
   * FAILED_PRECONDITION otherwise, and the CRL stays unpublished.
   */
  publishCrl(claim: LeaseClaim, crlId: string, final: { header: Buffer; trailer: Buffer; lastSeq: number; size: number; tbsSha256: Buffer; generationMs: number }, audit: Record<string, string>): Promise<void>;
  latest(issuerKeyId?: string): Promise<CrlRecord[]>;
  find(issuerKeyId: string, scope: string, kind: CrlKind, crlNumber?: bigint): Promise<CrlRecord | undefined>;
  history(issuerKeyId: string): Promise<CrlRecord[]>;
  chunks(crlId: string): Promise<Array<{ seq: number; length: number }>>;
  chunk(crlId: string, seq: number): Promise<Buffer>;
  /** Drops unfinished CRLs, superseded ones past retention, and rows no CRL needs any more. */
  prune(retentionSeconds: number, issuerKeyId: string, base: { snapshotSeq: bigint; expiredBefore: Date } | undefined): Promise<void>;

  pendingRegenerations(): Promise<RegenerationRequest[]>;
  finishRegeneration(id: string, outcome: { crlNumber: bigint } | { error: string }): Promise<void>;
}
