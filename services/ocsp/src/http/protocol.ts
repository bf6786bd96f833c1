import type { CertIdHash, OcspErrorStatus } from '@pki/x509';
import type { DirectorySnapshot } from '../domain/issuer-directory';
import type { StoreBuffers } from '../store/shared-response-store';
import type { TallySnapshot } from './usage-tally';

/** What a serving thread is started with (workerData). */
export interface ServingThreadData {
  thread: number;
  host: string;
  port: number;
  pathPrefix: string;
  maxRequestBytes: number;
  requestTimeoutMs: number;
  headersTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxAgeSeconds: number;
  maxCertIds: number;
  minNonceLength: number;
  nonce: 'echo' | 'ignore';
  neverIssued: 'unauthorized' | 'revoked';
  /** Live requests and store lookups admitted at once across the threads, then shed with tryLater. */
  maxLiveInFlight: number;
  maxMissesInFlight: number;
  /** A round trip to the main thread not answered within this gets tryLater. */
  mainTimeoutMs: number;
  store: StoreBuffers;
  metrics: SharedArrayBuffer;
  /** Int32Array [live in flight, misses in flight], shared by the threads. */
  admission: SharedArrayBuffer;
  directory: DirectorySnapshot;
  /** The HTTPS listener (optional client certificates), with its certificate chain and key (PEM). */
  https?: { host: string; port: number; cert: string; key: string };
  metering: { enabled: boolean; maxCallersPerWindow: number };
}

export interface RequestedSingle {
  /** Undefined for a serial no CA of ours can have issued (negative, over 20 octets). */
  serialHex?: string;
  hash: CertIdHash;
}

export type ToMain =
  | { type: 'listening'; thread: number; port: number; httpsPort?: number }
  /** A thread's usage counts since its last hand-over (asked by `take-usage`, and sent once more when it stops). */
  | { type: 'usage'; thread: number; tally: TallySnapshot }
  | { type: 'failed'; thread: number; message: string }
  /** The questions of one turn of a serving thread's event loop, posted together (see Coalescer). */
  | { type: 'asks'; asks: Ask[] };

/** What a serving thread asks the main thread. */
export type Ask =
  /** A known certificate whose response is not in memory. */
  | { type: 'miss'; id: number; issuerIndex: number; single: RequestedSingle }
  /** A request answered by a live signature: a nonce, several CertIDs, or a never-issued serial under the `revoked` policy. */
  | { type: 'live'; id: number; issuerIndex: number; singles: RequestedSingle[]; nonce?: Uint8Array };

/** How the main thread answers a miss or a live request. */
export type MainAnswer =
  | { kind: 'response'; der: Uint8Array; status: 'good' | 'revoked' | 'unknown'; cache?: { producedAt: number; nextUpdate: number; etag: string } }
  | { kind: 'error'; status: OcspErrorStatus }
  | { kind: 'never-issued' };

export type ToThread =
  | { type: 'directory'; directory: DirectorySnapshot }
  /** The answers of one turn of the main thread's event loop, posted together (see Coalescer). */
  | { type: 'answers'; answers: Array<{ id: number; answer: MainAnswer }> }
  | { type: 'take-usage' }
  | { type: 'stop' };
