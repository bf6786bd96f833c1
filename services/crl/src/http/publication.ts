import { Readable } from 'node:stream';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { PkiError, httpStatusOf, type Clock, type Logger } from '@pki/kit';
import { parseCrlPartitionName } from '@pki/x509';
import type { CrlConfig } from '../config';
import type { CrlKind, CrlRecord, CrlStore } from '../ports/crl-store';

export interface PublicationDeps {
  store: CrlStore;
  clock: Clock;
  logger: Logger;
  http: CrlConfig['http'];
}

const KEY_ID = /^(?:[0-9a-f]{2}){1,64}$/;
const PEM_LINE = 64;

/** What a URL names: the latest CRL of a scope and kind, or one kept in the archive. */
interface CrlAddress {
  keyId: string;
  scope: string;
  kind: CrlKind;
  number?: bigint;
  pem: boolean;
}

function notFound(what: string): PkiError {
  return new PkiError('NOT_FOUND', `get CRL: ${what}`);
}

/**
 * Where things are published, under `http.crlPath` (the path of ca-signer's crlBaseUrl):
 *   <keyId>.crl                 complete CRL of an issuing generation, or the ARL of a root
 *   <keyId>/delta.crl           latest delta CRL (the complete CRL's freshestCRL)
 *   <keyId>/p<N>.crl            partition N (the URL certificates name in their CRL DP)
 *   <keyId>/archive/<full|delta|arl|p<N>>-<number>.crl   a retained CRL
 *   <keyId>/index.json, index.json                       what is published, and what is retained
 * each also as PEM with `.pem` appended; CA certificates under `http.caPath` as <keyId>.crt.
 */
export function buildPublicationApp(deps: PublicationDeps): FastifyInstance {
  // Requests are not logged one by one (relying parties fetch CRLs by the million): warnings and errors only.
  const app = Fastify({ loggerInstance: deps.logger.child({ component: 'publication' }, { level: 'warn' }) as FastifyBaseLogger });
  const { store, clock, http } = deps;
  const crlPath = http.crlPath.replace(/\/+$/, '');
  const caPath = http.caPath.replace(/\/+$/, '');

  app.setErrorHandler((err: Error & { statusCode?: number }, request, reply) => {
    if (err instanceof PkiError) {
      if (err.code === 'INTERNAL' || err.code === 'UNAVAILABLE') request.log.error({ err }, 'request failed');
      const status = httpStatusOf(err.code);
      if (status === 503) reply.header('retry-after', '5');
      return reply.status(status).send({ error: err.code, message: status >= 500 ? 'CRL store unavailable; retry later' : err.message });
    }
    if (err.statusCode && err.statusCode < 500) return reply.status(err.statusCode).send({ error: 'INVALID_ARGUMENT', message: err.message });
    request.log.error({ err }, 'request failed');
    // A database that went away is unavailability, not a bug: tell clients to come back.
    return reply.status(503).header('retry-after', '5').send({ error: 'UNAVAILABLE', message: 'CRL store unavailable; retry later' });
  });
  app.setNotFoundHandler((request, reply) => reply.status(404).send({ error: 'NOT_FOUND', message: `no route ${request.method} ${request.url}` }));

  const maxAgeOf = (crl: CrlRecord, now: Date): number => {
    const limit = crl.kind === 'FULL' ? http.maxAgeSeconds.full : crl.kind === 'DELTA' ? http.maxAgeSeconds.delta : crl.kind === 'ARL' ? http.maxAgeSeconds.arl : http.maxAgeSeconds.partition;
    // Never beyond nextUpdate: a cache must not serve a CRL past its validity.
    return Math.max(0, Math.min(limit, Math.floor((crl.nextUpdate.getTime() - now.getTime()) / 1000)));
  };

  async function serveCrl(request: FastifyRequest, reply: FastifyReply, address: CrlAddress): Promise<FastifyReply> {
    const crl = await store.find(address.keyId, address.scope, address.kind, address.number);
    if (!crl) throw notFound(`no ${address.kind === 'ARL' ? 'ARL' : 'CRL'} published at ${request.url}`);
    const chunks = await store.chunks(crl.id);
    const etag = `"${address.keyId.slice(0, 16)}-${address.scope}-${address.kind.toLowerCase()}-${crl.crlNumber}${address.pem ? '-pem' : ''}"`;
    const now = clock.now();
    reply
      .header('etag', etag)
      .header('last-modified', crl.thisUpdate.toUTCString())
      .header('cache-control', `public, max-age=${maxAgeOf(crl, now)}, no-transform`)
      .header('expires', crl.nextUpdate.toUTCString());
    // RFC 9110 §13.1.2 / §13.1.3: If-None-Match wins over If-Modified-Since.
    const ifNoneMatch = request.headers['if-none-match'];
    const ifModifiedSince = request.headers['if-modified-since'];
    if (ifNoneMatch !== undefined ? ifNoneMatch.split(/\s*,\s*/).some((t) => t === '*' || t.replace(/^W\//, '') === etag) : ifModifiedSince !== undefined && Date.parse(ifModifiedSince) >= Math.floor(crl.thisUpdate.getTime() / 1000) * 1000) {
      return reply.status(304).send();
    }
    const body = async function* (from: number, to: number): AsyncIterable<Buffer> {
      // Chunks are read one at a time: a 40 MB CRL never sits in this process whole.
      let offset = 0;
      for (const c of chunks) {
        const end = offset + c.length;
        if (end > from && offset <= to) {
          const data = await store.chunk(crl.id, c.seq);
          yield data.subarray(Math.max(0, from - offset), Math.min(c.length, to - offset + 1));
        }
        offset = end;
        if (offset > to) return;
      }
    };
    if (address.pem) {
      reply.header('content-type', 'application/x-pem-file').header('accept-ranges', 'none').header('content-length', String(pemLength(crl.size)));
      return reply.send(Readable.from(pemStream(body(0, crl.size - 1))));
    }
    reply.header('content-type', 'application/pkix-crl').header('accept-ranges', 'bytes');
    const ifRange = request.headers['if-range'];
    const range = parseRange(request.headers.range, Array.isArray(ifRange) ? ifRange[0] : ifRange, etag, crl.size);
    if (range === 'unsatisfiable') return reply.status(416).header('content-range', `bytes */${crl.size}`).send();
    if (range) {
      reply.status(206).header('content-range', `bytes ${range.from}-${range.to}/${crl.size}`).header('content-length', String(range.to - range.from + 1));
      return reply.send(Readable.from(body(range.from, range.to)));
    }
    reply.header('content-length', String(crl.size));
    return reply.send(Readable.from(body(0, crl.size - 1)));
  }

  /** `<keyId>.crl[.pem]`: the complete CRL of an issuing generation, or a root's ARL. */
  app.get<{ Params: { file: string } }>(`${crlPath}/:file`, async (request, reply) => {
    const match = /^([0-9a-f]+)\.crl(\.pem)?$/.exec(request.params.file);
    if (request.params.file === 'index.json') return reply.send(await indexOf(store, undefined, crlPath));
    if (!match || !KEY_ID.test(match[1]!)) throw notFound(`'${request.params.file.slice(0, 80)}' is not <key id>.crl`);
    const keyId = match[1]!;
    const issuer = (await store.issuers()).find((i) => i.keyId === keyId);
    if (!issuer) throw notFound(`no CA generation with key identifier ${keyId}`);
    return serveCrl(request, reply, { keyId, scope: issuer.role === 'ROOT' ? 'arl' : 'full', kind: issuer.role === 'ROOT' ? 'ARL' : 'FULL', pem: match[2] !== undefined });
  });

  /** `<keyId>/delta.crl`, `<keyId>/p<N>.crl`, `<keyId>/index.json`. */
  app.get<{ Params: { keyId: string; file: string } }>(`${crlPath}/:keyId/:file`, async (request, reply) => {
    const { keyId, file } = request.params;
    if (!KEY_ID.test(keyId)) throw notFound(`'${keyId.slice(0, 80)}' is not a key identifier`);
    if (file === 'index.json') return reply.send(await indexOf(store, keyId, crlPath));
    const match = /^(delta|p\d{1,4})\.crl(\.pem)?$/.exec(file);
    if (!match) throw notFound(`'${file.slice(0, 80)}' is not delta.crl or p<N>.crl`);
    const pem = match[2] !== undefined;
    if (match[1] === 'delta') return serveCrl(request, reply, { keyId, scope: 'full', kind: 'DELTA', pem });
    if (parseCrlPartitionName(match[1]!) === undefined) throw notFound(`no partition '${match[1]}'`);
    return serveCrl(request, reply, { keyId, scope: match[1]!, kind: 'PARTITION', pem });
  });

  /** `<keyId>/archive/<full|delta|arl|p<N>>-<number>.crl`: a retained CRL. */
  app.get<{ Params: { keyId: string; file: string } }>(`${crlPath}/:keyId/archive/:file`, async (request, reply) => {
    const { keyId, file } = request.params;
    const match = /^(full|delta|arl|p\d{1,4})-([0-9]{1,48})\.crl(\.pem)?$/.exec(file);
    if (!KEY_ID.test(keyId) || !match) throw notFound(`'${file.slice(0, 80)}' is not <full|delta|arl|pN>-<number>.crl`);
    const name = match[1]!;
    const kind: CrlKind = name === 'full' ? 'FULL' : name === 'delta' ? 'DELTA' : name === 'arl' ? 'ARL' : 'PARTITION';
    const scope = kind === 'FULL' || kind === 'DELTA' ? 'full' : name;
    return serveCrl(request, reply, { keyId, scope, kind, number: BigInt(match[2]!), pem: match[3] !== undefined });
  });

  /** CA certificates (AIA caIssuers, RFC 5280 §4.2.2.1): DER, application/pkix-cert. */
  app.get<{ Params: { file: string } }>(`${caPath}/:file`, async (request, reply) => {
    const match = /^([0-9a-f]+)\.crt$/.exec(request.params.file);
    if (!match || !KEY_ID.test(match[1]!)) throw new PkiError('NOT_FOUND', `get CA certificate: '${request.params.file.slice(0, 80)}' is not <key id>.crt`);
    const issuer = (await store.issuers()).find((i) => i.keyId === match[1]);
    if (!issuer) throw new PkiError('NOT_FOUND', `get CA certificate: no CA with key identifier ${match[1]}`);
    return reply.header('content-type', 'application/pkix-cert').header('cache-control', 'public, max-age=86400').header('etag', `"${issuer.keyId}"`).send(issuer.certificateDer);
  });

  return app;
}

/** The published CRLs (and, for one generation, every retained one) with their URLs. */
async function indexOf(store: CrlStore, keyId: string | undefined, crlPath: string): Promise<unknown> {
  const records = keyId ? await store.history(keyId) : await store.latest();
  const name = (c: CrlRecord) => (c.kind === 'FULL' ? 'full' : c.kind === 'DELTA' ? 'delta' : c.kind === 'ARL' ? 'arl' : c.scope);
  const current = (c: CrlRecord) => (c.kind === 'FULL' || c.kind === 'ARL' ? `${crlPath}/${c.issuerKeyId}.crl` : c.kind === 'DELTA' ? `${crlPath}/${c.issuerKeyId}/delta.crl` : `${crlPath}/${c.issuerKeyId}/${c.scope}.crl`);
  return {
    crls: records.map((c) => ({
      issuerKeyId: c.issuerKeyId,
      kind: c.kind,
      scope: c.scope,
      crlNumber: c.crlNumber.toString(),
      ...(c.baseCrlNumber !== undefined ? { baseCrlNumber: c.baseCrlNumber.toString() } : {}),
      thisUpdate: c.thisUpdate.toISOString(),
      nextUpdate: c.nextUpdate.toISOString(),
      entries: c.entries,
      size: c.size,
      url: keyId ? `${crlPath}/${c.issuerKeyId}/archive/${name(c)}-${c.crlNumber}.crl` : current(c),
    })),
  };
}

/**
 * A single byte range (RFC 9110 §14.2): `bytes=a-b`, `bytes=a-`, `bytes=-n`. Several ranges, or
 * an If-Range that does not match, get the whole CRL (allowed by §14.2); a range past the end, 416.
 */
export function parseRange(header: string | undefined, ifRange: string | undefined, etag: string, size: number): { from: number; to: number } | 'unsatisfiable' | undefined {
  if (header === undefined || size === 0) return undefined;
  if (ifRange !== undefined && ifRange !== etag) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return undefined;
  let from: number;
  let to: number;
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0) return 'unsatisfiable';
    from = Math.max(0, size - suffix);
    to = size - 1;
  } else {
    from = Number(match[1]);
    to = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
    if (from >= size) return 'unsatisfiable';
    if (to < from) return undefined;
  }
  return { from, to };
}

/** Length of the PEM ("X509 CRL" label, 64-character lines) of `size` DER octets. */
export function pemLength(size: number): number {
  const base64 = Math.ceil(size / 3) * 4;
  return '-----BEGIN X509 CRL-----\n'.length + base64 + Math.ceil(base64 / PEM_LINE) + '-----END X509 CRL-----\n'.length;
}

/** PEM (RFC 7468 §5) of a DER stream, 48 octets (one line) at a time. */
export async function* pemStream(der: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
  yield Buffer.from('-----BEGIN X509 CRL-----\n');
  let carry = Buffer.alloc(0);
  for await (const piece of der) {
    const data = carry.length > 0 ? Buffer.concat([carry, piece]) : piece;
    const whole = data.length - (data.length % 48);
    const lines: string[] = [];
    for (let i = 0; i < whole; i += 48) lines.push(data.toString('base64', i, i + 48));
    if (lines.length > 0) yield Buffer.from(lines.join('\n') + '\n');
    carry = Buffer.from(data.subarray(whole));
  }
  if (carry.length > 0) yield Buffer.from(carry.toString('base64') + '\n');
  yield Buffer.from('-----END X509 CRL-----\n');
}
