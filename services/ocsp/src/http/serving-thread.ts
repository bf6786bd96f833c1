import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { parentPort, workerData } from 'node:worker_threads';
import { assembleOcspResponseParts, ocspErrorResponse, parseOcspRequest, type OcspErrorStatus, type ParsedOcspRequest } from '@pki/x509';
import { CallerCertificates } from '../domain/caller-certificates';
import { IssuerMatcher, type DirectorySnapshot, type ResponderEntry } from '../domain/issuer-directory';
import { HASH_INDEX, ResponseStoreReader } from '../store/shared-response-store';
import { Coalescer } from './coalescer';
import type { Ask, MainAnswer, RequestedSingle, ServingThreadData, ToMain, ToThread } from './protocol';
import { decodeGetRequest } from './request-decoding';
import { ServingMetrics, type AnswerKind } from './serving-metrics';
import { MTLS, SIGNED_REQUEST, SYSTEM_URL, UsageTally } from './usage-tally';

/*
 * One serving thread: an HTTP listener on the shared port (SO_REUSEPORT: the kernel spreads
 * connections over the threads) that answers OCSP requests (RFC 6960, RFC 5019) from the shared
 * store without involving the main thread, except for misses (a response not in memory) and live
 * answers, which it sends there and awaits.
 *
 * Every request gets one of the designed answers and nothing else: an OCSPResponse with status
 * 200 (successful, malformedRequest, unauthorized, tryLater, internalError), 304 for a
 * conditional GET of an unchanged response, 404 outside the OCSP path, 405 for other methods,
 * and Node's own 408/431/400 for requests too slow or too large to read.
 *
 * Usage metering (issue 13): every OCSP request is counted once, in this thread, under the
 * strongest identification it carries (a verified TLS client certificate, a verified signed
 * request, the per-system URL) or as anonymous, in a per-thread tally the main thread collects at
 * each window's end. Counting costs a Map lookup and an increment; signed requests, which need a
 * signature check, leave the pre-produced fast path (unsigned ones never pay for it).
 */

const data = workerData as ServingThreadData;
const store = new ResponseStoreReader(data.store);
const metrics = new ServingMetrics(data.metrics, data.thread);
const admission = new Int32Array(data.admission);
let matcher = new IssuerMatcher(data.directory);
let responders: ResponderEntry[] = data.directory.responders;
const prefix = data.pathPrefix;
const prefixWithoutSlash = prefix.length > 1 ? prefix.slice(0, -1) : prefix;
const STATUS_OF_CODE: AnswerKind[] = ['good', 'revoked', 'unknown'];
/** The per-system URL: <prefix>s/<system id>/ then the usual GET or POST forms. */
const SYSTEM_PATH = `${prefix}s/`;
/** A system id as the registry writes it (the agency client profile's CN). */
const SYSTEM_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const metering = data.metering.enabled;
const tally = new UsageTally(data.metering.maxCallersPerWindow);
let callers = new CallerCertificates(data.directory.issuers);
/** The caller key a TLS connection's client certificate identified, set once per connection. */
const CALLER = Symbol('ocsp caller');
type MaybeIdentifiedSocket = Socket & { [CALLER]?: string };

const pending = new Map<number, (answer: MainAnswer | undefined) => void>();
let nextId = 1;

function post(message: ToMain): void {
  parentPort!.postMessage(message);
}
const asks = new Coalescer<Ask>((items) => post({ type: 'asks', asks: items }));

function setDirectory(directory: DirectorySnapshot): void {
  matcher = new IssuerMatcher(directory);
  responders = directory.responders;
  callers = new CallerCertificates(directory.issuers);
}

/** Sends a request to the main thread; resolves undefined when it does not answer in time. */
type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

function askMain(message: WithoutId<Ask>): Promise<MainAnswer | undefined> {
  const id = nextId++;
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      pending.delete(id);
      resolve(undefined);
    }, data.mainTimeoutMs);
    pending.set(id, (answer) => {
      clearTimeout(timer);
      pending.delete(id);
      resolve(answer);
    });
    // A nonce is a view into the request's body (often a slab of Node's buffer pool), and structured
    // clone copies a view's entire backing buffer: copied alone, only the nonce crosses over.
    asks.add(message.type === 'live' && message.nonce !== undefined ? { ...message, nonce: new Uint8Array(message.nonce), id } : ({ ...message, id } as Ask));
  });
}

const HTTP_DATE_CACHE = new Map<number, string>();
function httpDate(seconds: number): string {
  let text = HTTP_DATE_CACHE.get(seconds);
  if (text === undefined) {
    if (HTTP_DATE_CACHE.size > 4096) HTTP_DATE_CACHE.clear();
    HTTP_DATE_CACHE.set(seconds, (text = new Date(seconds * 1000).toUTCString()));
  }
  return text;
}

interface CacheFacts {
  producedAt: number;
  nextUpdate: number;
  etag: string;
}

function elapsed(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e9;
}

/** An OCSPResponse with status 200. Pre-produced responses are cacheable until nextUpdate (RFC 5019 §6); nothing else is. */
function send(req: http.IncomingMessage, res: http.ServerResponse, body: Uint8Array, kind: AnswerKind, started: bigint, issuerIndex?: number, cache?: CacheFacts): void {
  const now = Math.floor(Date.now() / 1000);
  if (cache && req.method === 'GET') {
    const ifNoneMatch = req.headers['if-none-match'];
    const ifModifiedSince = req.headers['if-modified-since'];
    // RFC 9110 §13.1.2 / §13.1.3: If-None-Match wins over If-Modified-Since.
    const unchanged = ifNoneMatch !== undefined ? ifNoneMatch.split(',').some((t) => t.trim() === cache.etag || t.trim() === '*') : ifModifiedSince !== undefined && Date.parse(ifModifiedSince) >= cache.producedAt * 1000;
    if (unchanged) {
      res.writeHead(304, cacheHeaders(cache, now));
      res.end();
      metrics.answer('notModified', issuerIndex, elapsed(started));
      return;
    }
  }
  const headers: http.OutgoingHttpHeaders = cache ? cacheHeaders(cache, now) : { 'cache-control': 'no-store' };
  headers['content-type'] = 'application/ocsp-response';
  headers['content-length'] = body.length;
  res.writeHead(200, headers);
  res.end(body);
  metrics.answer(kind, issuerIndex, elapsed(started));
}

function cacheHeaders(cache: CacheFacts, now: number): http.OutgoingHttpHeaders {
  const maxAge = Math.max(0, Math.min(data.maxAgeSeconds, cache.nextUpdate - now));
  return {
    // RFC 5019 §6.2: cacheable until nextUpdate; no-transform keeps proxies from touching the DER.
    'cache-control': `max-age=${maxAge}, public, no-transform, must-revalidate`,
    'last-modified': httpDate(cache.producedAt),
    expires: httpDate(cache.nextUpdate),
    etag: cache.etag,
  };
}

function sendError(req: http.IncomingMessage, res: http.ServerResponse, status: OcspErrorStatus, started: bigint, issuerIndex?: number): void {
  send(req, res, ocspErrorResponse(status), status, started, issuerIndex);
}

function sendMainAnswer(req: http.IncomingMessage, res: http.ServerResponse, answer: MainAnswer | undefined, started: bigint, issuerIndex: number): void | Promise<void> {
  if (answer === undefined) return sendError(req, res, 'tryLater', started, issuerIndex);
  if (answer.kind === 'error') return sendError(req, res, answer.status, started, issuerIndex);
  if (answer.kind === 'never-issued') return neverIssued(req, res, started, issuerIndex, undefined);
  send(req, res, answer.der, answer.status, started, issuerIndex, answer.cache);
}

async function live(req: http.IncomingMessage, res: http.ServerResponse, started: bigint, issuerIndex: number, singles: RequestedSingle[], nonce: Uint8Array | undefined): Promise<void> {
  // Admission before anything else: a flood of nonces is answered tryLater at the cost of this
  // check, so it can neither exhaust the HSM nor slow the pre-produced answers down.
  if (Atomics.add(admission, 0, 1) >= data.maxLiveInFlight) {
    Atomics.sub(admission, 0, 1);
    metrics.count('shedLive');
    return sendError(req, res, 'tryLater', started, issuerIndex);
  }
  metrics.count('liveRequests');
  try {
    const answer = await askMain({ type: 'live', issuerIndex, singles, ...(nonce ? { nonce } : {}) });
    await sendMainAnswer(req, res, answer, started, issuerIndex);
  } finally {
    Atomics.sub(admission, 0, 1);
  }
}

async function miss(req: http.IncomingMessage, res: http.ServerResponse, started: bigint, issuerIndex: number, single: RequestedSingle): Promise<void> {
  if (Atomics.add(admission, 1, 1) >= data.maxMissesInFlight) {
    Atomics.sub(admission, 1, 1);
    metrics.count('shedMisses');
    return sendError(req, res, 'tryLater', started, issuerIndex);
  }
  metrics.count('memoryMisses');
  try {
    await sendMainAnswer(req, res, await askMain({ type: 'miss', issuerIndex, single }), started, issuerIndex);
  } finally {
    Atomics.sub(admission, 1, 1);
  }
}

/** RFC 6960 §2.2: a serial that was never issued is never "good". */
function neverIssued(req: http.IncomingMessage, res: http.ServerResponse, started: bigint, issuerIndex: number, single: RequestedSingle | undefined): void | Promise<void> {
  metrics.count('neverIssued');
  if (data.neverIssued === 'revoked' && single) return live(req, res, started, issuerIndex, [single], undefined);
  sendError(req, res, 'unauthorized', started, issuerIndex);
}

/** Counts one request for metering under the identification it carries (mTLS before the per-system URL). */
function meter(mtls: string | undefined, system: string | undefined): void {
  if (!metering) return;
  if (mtls !== undefined) {
    tally.identified(MTLS, mtls);
    metrics.count('usageMtls');
  } else if (system !== undefined) {
    tally.identified(SYSTEM_URL, system);
    metrics.count('usageSystemUrl');
  } else {
    tally.anonymous();
    metrics.count('usageAnonymous');
  }
}

function answer(req: http.IncomingMessage, res: http.ServerResponse, der: Buffer, started: bigint, mtls: string | undefined, system: string | undefined): void | Promise<void> {
  let parsed: ParsedOcspRequest;
  try {
    parsed = parseOcspRequest(der, { maxCertIds: data.maxCertIds, minNonceLength: data.minNonceLength });
  } catch {
    meter(mtls, system);
    return sendError(req, res, 'malformedRequest', started);
  }
  if (parsed.signature !== undefined) return signed(req, res, parsed, started, mtls, system);
  meter(mtls, system);
  return respond(req, res, parsed, started);
}

/**
 * RFC 6960 §4.1.2 signed requests, off the fast path: the signature must verify with the first
 * certificate in `certs`, issued by one of our generations. One that does not is answered
 * `unauthorized` (decision 0029: the request is well-formed, its requestor is not established) and
 * is never counted as that caller.
 */
async function signed(req: http.IncomingMessage, res: http.ServerResponse, parsed: ParsedOcspRequest, started: bigint, mtls: string | undefined, system: string | undefined): Promise<void> {
  const identity = await callers.identifySigner(parsed.signature!);
  if (!identity.ok) {
    metrics.count('signedRejected');
    meter(mtls, system);
    return sendError(req, res, 'unauthorized', started);
  }
  metrics.count('signedVerified');
  if (metering && mtls === undefined) {
    tally.identified(SIGNED_REQUEST, identity.callerKey);
    metrics.count('usageSignedRequest');
  } else {
    meter(mtls, system);
  }
  return respond(req, res, parsed, started);
}

function respond(req: http.IncomingMessage, res: http.ServerResponse, parsed: ParsedOcspRequest, started: bigint): void | Promise<void> {
  // Every CertID must name a generation we answer for, and one answer has one responder.
  let issuerIndex = -1;
  for (const certId of parsed.certIds) {
    const issuer = matcher.match(certId.hash, certId.issuerNameHash, certId.issuerKeyHash);
    if (!issuer || (issuerIndex >= 0 && issuer.index !== issuerIndex)) return sendError(req, res, 'unauthorized', started, issuer?.index);
    issuerIndex = issuer.index;
  }
  const singles = parsed.certIds.map((c) => ({ ...(c.serialHex !== undefined ? { serialHex: c.serialHex } : {}), hash: c.hash }));
  const nonce = data.nonce === 'echo' ? parsed.nonce : undefined;
  if (singles.length > 1 || nonce !== undefined) return live(req, res, started, issuerIndex, singles, nonce);

  const certId = parsed.certIds[0]!;
  const single = singles[0]!;
  if (certId.serialHex === undefined) return neverIssued(req, res, started, issuerIndex, single);
  for (let attempt = 0; attempt < 3; attempt++) {
    const found = store.lookup(certId.serial, HASH_INDEX[certId.hash]);
    switch (found.kind) {
      case 'unknown':
        return neverIssued(req, res, started, issuerIndex, single);
      case 'stale':
        // Its status changed and the new response is being signed: never the old answer.
        return sendError(req, res, 'tryLater', started, issuerIndex);
      case 'not-resident':
      case 'unsure':
        return miss(req, res, started, issuerIndex, single);
      case 'resident': {
        const record = found.record;
        // The serial exists, but under another generation: this issuer never issued it.
        if (record.issuerIndex !== issuerIndex) return neverIssued(req, res, started, issuerIndex, single);
        const responder = responders[record.responderIndex];
        if (!responder) return miss(req, res, started, issuerIndex, single);
        const body = assembleOcspResponseParts(record.responseData, responder.signatureAlgorithmDer, record.signature, responder.certificateDer);
        const etag = `"${Buffer.from(record.signature.buffer, record.signature.byteOffset, 12).toString('hex')}"`;
        const facts = { producedAt: record.producedAt, nextUpdate: record.nextUpdate, etag, status: record.status };
        // Copied first, checked after: a record replaced while we read it is read again.
        if (!record.stillValid()) continue;
        metrics.count('memoryHits');
        return send(req, res, body, STATUS_OF_CODE[facts.status] ?? 'unknown', started, issuerIndex, facts);
      }
    }
  }
  return miss(req, res, started, issuerIndex, single);
}

function handle(req: http.IncomingMessage, res: http.ServerResponse): void {
  const started = process.hrtime.bigint();
  const url = req.url ?? '/';
  const fail = (err: unknown) => {
    // Never a 500 and never an internal message: the log (main thread) is not reachable from here, so count it.
    if (!res.headersSent) sendError(req, res, 'internalError', started);
    else res.destroy(err instanceof Error ? err : undefined);
  };
  try {
    const mtls = (req.socket as MaybeIdentifiedSocket)[CALLER];
    if (req.method === 'GET') {
      metrics.count('requestsGet');
      if (!url.startsWith(prefix)) return notFound(res);
      let system: string | undefined;
      let requestAt = prefix.length;
      if (url.startsWith(SYSTEM_PATH)) {
        const slash = url.indexOf('/', SYSTEM_PATH.length);
        system = url.slice(SYSTEM_PATH.length, slash < 0 ? url.length : slash);
        if (slash < 0 || !SYSTEM_ID.test(system)) return badSystemUrl(res);
        requestAt = slash + 1;
      }
      const der = decodeGetRequest(url.slice(requestAt), data.maxRequestBytes);
      if (typeof der === 'string') {
        meter(mtls, system);
        return sendError(req, res, 'malformedRequest', started);
      }
      void Promise.resolve(answer(req, res, der, started, mtls, system)).catch(fail);
      return;
    }
    if (req.method === 'POST') {
      metrics.count('requestsPost');
      const path = url.split('?')[0]!;
      let system: string | undefined;
      if (path.startsWith(SYSTEM_PATH)) {
        system = path.slice(SYSTEM_PATH.length, path.endsWith('/') ? -1 : path.length);
        if (!SYSTEM_ID.test(system)) return badSystemUrl(res);
      } else if (path !== prefix && path !== prefixWithoutSlash) return notFound(res);
      const declared = Number(req.headers['content-length'] ?? NaN);
      if (declared > data.maxRequestBytes) {
        meter(mtls, system);
        return tooLarge(req, res, started);
      }
      const chunks: Buffer[] = [];
      let length = 0;
      req.on('data', (chunk: Buffer) => {
        length += chunk.length;
        if (length > data.maxRequestBytes) {
          req.removeAllListeners('data');
          meter(mtls, system);
          return tooLarge(req, res, started);
        }
        chunks.push(chunk);
      });
      req.on('end', () => {
        if (length > data.maxRequestBytes || res.headersSent) return;
        void Promise.resolve(answer(req, res, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), started, mtls, system)).catch(fail);
      });
      req.on('error', () => res.destroy());
      return;
    }
    metrics.count('requestsOther');
    res.writeHead(405, { allow: 'GET, POST', 'content-length': 0 }).end();
  } catch (err) {
    fail(err);
  }
}

function notFound(res: http.ServerResponse): void {
  res.writeHead(404, { 'content-type': 'text/plain', 'cache-control': 'no-store' }).end(`OCSP requests go to ${prefix} (or ${SYSTEM_PATH}<system id>/)\n`);
}

function badSystemUrl(res: http.ServerResponse): void {
  res
    .writeHead(404, { 'content-type': 'text/plain', 'cache-control': 'no-store' })
    .end(`a per-system OCSP URL is ${SYSTEM_PATH}<system id>/ followed by the request; a system id is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit\n`);
}

/** An oversized body is malformed (RFC 6960 §2.3); the connection is closed rather than read to the end. */
function tooLarge(req: http.IncomingMessage, res: http.ServerResponse, started: bigint): void {
  if (res.headersSent) return;
  res.setHeader('connection', 'close');
  sendError(req, res, 'malformedRequest', started);
  res.on('finish', () => req.socket.destroy());
}

const serverOptions: http.ServerOptions = {
  requestTimeout: data.requestTimeoutMs,
  headersTimeout: data.headersTimeoutMs,
  keepAliveTimeout: data.keepAliveTimeoutMs,
  maxHeaderSize: 16 * 1024,
  // Idle sockets are checked for the timeouts above this often.
  connectionsCheckingInterval: Math.min(1000, data.headersTimeoutMs),
};
const server = http.createServer(serverOptions, handle);
/**
 * The HTTPS listener for agencies identifying with a client certificate. The certificate is asked
 * for but not required (requestCert without rejectUnauthorized): a client without one, or with one
 * that is not ours, is answered like any relying party and counted as anonymous. The TLS handshake
 * has already proved the client holds the certificate's key (CertificateVerify); which issuer
 * vouches for it is checked here, once per connection.
 */
const secureServer = data.https ? https.createServer({ ...serverOptions, cert: data.https.cert, key: data.https.key, requestCert: true, rejectUnauthorized: false }, handle) : undefined;
secureServer?.on('secureConnection', (socket: TLSSocket) => {
  if (!metering) return;
  const peer = socket.getPeerX509Certificate();
  if (peer === undefined) return;
  const identity = callers.identify(peer.raw);
  if (identity.ok) (socket as MaybeIdentifiedSocket)[CALLER] = identity.callerKey;
  else metrics.count('mtlsUnidentified');
});

function onClientError(err: NodeJS.ErrnoException, socket: import('node:stream').Duplex): void {
  // A request too slow to arrive (slow senders), with headers too large, or not HTTP at all.
  if (!socket.writable || socket.destroyed) return void socket.destroy();
  const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
  socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
}
server.on('clientError', onClientError);
// A failed TLS handshake never reaches HTTP: nothing to answer, the socket is closed.
secureServer?.on('tlsClientError', (_err, socket) => socket.destroy());
secureServer?.on('clientError', onClientError);

const closeServer = (s: http.Server | https.Server | undefined) =>
  new Promise<void>((resolve) => {
    if (!s) return resolve();
    s.close(() => resolve());
    s.closeIdleConnections();
  });

parentPort!.on('message', (message: ToThread) => {
  if (message.type === 'answers') for (const { id, answer } of message.answers) pending.get(id)?.(answer);
  else if (message.type === 'directory') setDirectory(message.directory);
  else if (message.type === 'take-usage') post({ type: 'usage', thread: data.thread, tally: tally.take() });
  else if (message.type === 'stop') {
    void Promise.all([closeServer(server), closeServer(secureServer)]).then(() => {
      for (const resolve of pending.values()) resolve(undefined);
      // The last counts of the open window, after the last request: the main thread publishes them.
      if (metering) post({ type: 'usage', thread: data.thread, tally: tally.take() });
      parentPort!.close();
    });
  }
});

const listen = (s: http.Server | https.Server, host: string, port: number) =>
  new Promise<number>((resolve, reject) => {
    s.once('error', reject);
    s.listen({ host, port, reusePort: true }, () => {
      const address = s.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    });
  });

(async () => {
  const port = await listen(server, data.host, data.port);
  const httpsPort = secureServer && data.https ? await listen(secureServer, data.https.host, data.https.port) : undefined;
  post({ type: 'listening', thread: data.thread, port, ...(httpsPort !== undefined ? { httpsPort } : {}) });
})().catch((err: unknown) => post({ type: 'failed', thread: data.thread, message: (err as Error).message }));
