import { Readable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyRequest } from 'fastify';
import { PkiError, httpStatusOf, type Clock, type Logger } from '@pki/kit';
import { AuditOutcome, AuditActorType } from '@pki/audit-events';
import type { ClientCertificateAuthenticator } from '@pki/client-auth';
import type { Auditor, PostgresAuditLog, StoredCheckpoint, StoredRecord } from '../adapters/postgres/audit-log';
import type { Checkpointer } from '../domain/checkpointer';
import { exportLines } from '../domain/export';

export interface HttpDeps {
  log: PostgresAuditLog;
  checkpointer: Pick<Checkpointer, 'checkpoint'>;
  authenticator: ClientCertificateAuthenticator<Auditor>;
  origin: string;
  clock: Clock;
  logger: Logger;
  maxPageSize: number;
  https: { cert: Buffer; key: Buffer; ca: Buffer[]; requestCert: boolean; rejectUnauthorized: boolean };
}

const errorBody = { type: 'object', properties: { error: { type: 'string' }, message: { type: 'string' } }, required: ['error', 'message'] } as const;
const checkpointBody = {
  type: 'object',
  properties: {
    id: { type: 'integer' },
    treeSize: { type: 'integer' },
    rootHash: { type: 'string', description: 'base64' },
    signedAt: { type: 'string', format: 'date-time' },
    checkpoint: { type: 'string', description: 'the signed text, base64' },
    signature: { type: 'string', description: 'base64' },
    signatureAlgorithm: { type: 'string' },
    signerCertificate: { type: 'string', description: 'DER, base64' },
  },
  required: ['id', 'treeSize', 'rootHash', 'signedAt', 'checkpoint', 'signature', 'signatureAlgorithm', 'signerCertificate'],
} as const;
const recordBody = {
  type: 'object',
  properties: {
    index: { type: 'integer' },
    leafHash: { type: 'string', description: 'hex' },
    recordedAt: { type: 'string', format: 'date-time' },
    leaf: { type: 'string', description: 'the leaf exactly as hashed (one JSON line)' },
  },
  required: ['index', 'leafHash', 'recordedAt', 'leaf'],
} as const;
const size = { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER } as const;

const presentCheckpoint = (c: StoredCheckpoint) => ({
  id: c.id,
  treeSize: c.treeSize,
  rootHash: c.rootHash.toString('base64'),
  signedAt: c.signedAt.toISOString(),
  checkpoint: c.checkpoint.toString('base64'),
  signature: c.signature.toString('base64'),
  signatureAlgorithm: c.signatureAlgorithm,
  signerCertificate: c.signerCertificate.toString('base64'),
});
const presentRecord = (r: StoredRecord) => ({ index: r.index, leafHash: r.leafHash.toString('hex'), recordedAt: r.recordedAt.toISOString(), leaf: r.leaf.toString('utf8') });

/**
 * The auditors' REST API (HTTPS, client certificates). Every route authenticates the auditor
 * before anything else; exports and on-demand checkpoints are themselves audited. Built from its
 * dependencies so tests drive it over real TLS against a real database.
 */
export function buildHttpApp(deps: HttpDeps): FastifyInstance {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    https: deps.https,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: true, allErrors: false } },
  });

  app.setErrorHandler((err: FastifyError | PkiError, request, reply) => {
    if (err instanceof PkiError) {
      if (err.code === 'INTERNAL') request.log.error({ err }, 'request failed');
      if (err.code === 'UNAVAILABLE') reply.header('retry-after', '10');
      // Internal failures keep their detail in the log, not in the answer.
      const message = err.code === 'INTERNAL' ? 'internal error' : err.message;
      return reply.status(httpStatusOf(err.code)).send({ error: err.code, message });
    }
    if (err.validation) return reply.status(400).send({ error: 'INVALID_ARGUMENT', message: `${request.method} ${request.routeOptions.url}: ${err.message}` });
    if (err.statusCode && err.statusCode < 500) return reply.status(err.statusCode).send({ error: 'INVALID_ARGUMENT', message: err.message });
    request.log.error({ err }, 'request failed');
    return reply.status(500).send({ error: 'INTERNAL', message: 'internal error' });
  });
  app.setNotFoundHandler((request, reply) => reply.status(404).send({ error: 'NOT_FOUND', message: `no route ${request.method} ${request.url}` }));

  // Authentication first, before validation or any work (onRequest runs before the body is read).
  app.decorateRequest('auditor', null);
  app.addHook('onRequest', async (request) => {
    const { principal } = await deps.authenticator.authenticate(request.raw.socket as TLSSocket, `${request.method} ${request.url.split('?')[0]}`);
    (request as FastifyRequest & { auditor: Auditor }).auditor = principal;
  });
  const auditorOf = (request: FastifyRequest): Auditor => (request as FastifyRequest & { auditor: Auditor }).auditor;
  const actor = (request: FastifyRequest) => ({ type: AuditActorType.OFFICER, id: auditorOf(request).id, role: 'auditor' });

  const latest = async (operation: string): Promise<StoredCheckpoint> => {
    const c = await deps.log.latestCheckpoint();
    if (!c) throw new PkiError('NOT_FOUND', `${operation}: no checkpoint has been signed yet`);
    return c;
  };

  app.get<{ Querystring: { limit?: number; beforeId?: number } }>(
    '/v1/checkpoints',
    {
      schema: {
        querystring: { type: 'object', additionalProperties: false, properties: { limit: { type: 'integer', minimum: 1, maximum: 1000 }, beforeId: size } },
        response: { 200: { type: 'object', properties: { checkpoints: { type: 'array', items: checkpointBody } }, required: ['checkpoints'] }, 400: errorBody, 401: errorBody },
      },
    },
    async (request) => ({ checkpoints: (await deps.log.listCheckpoints(request.query.limit ?? 100, request.query.beforeId)).map(presentCheckpoint) }),
  );

  app.get('/v1/checkpoints/latest', { schema: { response: { 200: checkpointBody, 404: errorBody, 401: errorBody } } }, async () => presentCheckpoint(await latest('latest checkpoint')));

  app.post<{ Headers: { 'idempotency-key'?: string } }>(
    '/v1/checkpoints',
    {
      schema: {
        headers: { type: 'object', properties: { 'idempotency-key': { type: 'string', minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9._:/-]+$' } }, required: ['idempotency-key'] },
        response: { 201: checkpointBody, 200: checkpointBody, 400: errorBody, 401: errorBody, 412: errorBody, 503: errorBody },
      },
    },
    async (request, reply) => {
      const auditor = auditorOf(request);
      const key = request.headers['idempotency-key']!;
      const replay = await deps.log.checkpointForRequest(auditor.id, key);
      if (replay) return reply.status(200).send(presentCheckpoint(replay));
      const signed = await deps.checkpointer.checkpoint({ force: true, request: { auditorId: auditor.id, idempotencyKey: key } });
      await deps.log.audit({ action: 'audit-checkpoint.request', outcome: AuditOutcome.SUCCESS, actor: actor(request), objects: [{ type: 'checkpoint', id: `${deps.origin}/${signed!.treeSize}` }] });
      return reply.status(201).send(presentCheckpoint(signed!));
    },
  );

  app.get<{ Querystring: { producer?: string; actorType?: string; actorId?: string; action?: string; objectType?: string; objectId?: string; from?: string; to?: string; afterIndex?: number; limit?: number } }>(
    '/v1/events',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            producer: { type: 'string', maxLength: 100 },
            actorType: { type: 'string', enum: ['SERVICE', 'OFFICER', 'CITIZEN', 'HOUSEHOLD_SYSTEM', 'AGENCY_SYSTEM', 'CUSTODIAN'] },
            actorId: { type: 'string', maxLength: 200 },
            action: { type: 'string', maxLength: 200 },
            objectType: { type: 'string', maxLength: 100 },
            objectId: { type: 'string', maxLength: 200 },
            from: { type: 'string', format: 'date-time' },
            to: { type: 'string', format: 'date-time' },
            afterIndex: size,
            limit: { type: 'integer', minimum: 1, maximum: 10_000 },
          },
        },
        response: { 200: { type: 'object', properties: { records: { type: 'array', items: recordBody }, nextAfterIndex: { type: 'integer' } }, required: ['records'] }, 400: errorBody, 401: errorBody },
      },
    },
    async (request) => {
      const q = request.query;
      const limit = Math.min(q.limit ?? 100, deps.maxPageSize);
      const records = await deps.log.records({ ...q, from: q.from ? new Date(q.from) : undefined, to: q.to ? new Date(q.to) : undefined, limit });
      return { records: records.map(presentRecord), ...(records.length === limit ? { nextAfterIndex: records[records.length - 1]!.index } : {}) };
    },
  );

  app.get<{ Params: { index: number } }>(
    '/v1/events/:index',
    { schema: { params: { type: 'object', properties: { index: size }, required: ['index'] }, response: { 200: recordBody, 400: errorBody, 401: errorBody, 404: errorBody } } },
    async (request) => {
      const record = await deps.log.record(request.params.index);
      if (!record) throw new PkiError('NOT_FOUND', `record ${request.params.index}: not in the log`);
      return presentRecord(record);
    },
  );

  app.get<{ Params: { index: number }; Querystring: { treeSize?: number } }>(
    '/v1/events/:index/inclusion-proof',
    {
      schema: {
        params: { type: 'object', properties: { index: size }, required: ['index'] },
        querystring: { type: 'object', additionalProperties: false, properties: { treeSize: size } },
        response: {
          200: {
            type: 'object',
            properties: { index: { type: 'integer' }, treeSize: { type: 'integer' }, leafHash: { type: 'string' }, proof: { type: 'array', items: { type: 'string' } }, checkpoint: checkpointBody },
            required: ['index', 'treeSize', 'leafHash', 'proof', 'checkpoint'],
          },
          400: errorBody,
          401: errorBody,
          404: errorBody,
        },
      },
    },
    async (request) => {
      const operation = `inclusion proof of record ${request.params.index}`;
      const checkpoint = request.query.treeSize === undefined ? await latest(operation) : await deps.log.checkpointAt(request.query.treeSize);
      if (!checkpoint) throw new PkiError('NOT_FOUND', `${operation}: no checkpoint at tree size ${request.query.treeSize}`);
      if (request.params.index >= checkpoint.treeSize) throw new PkiError('NOT_FOUND', `${operation}: not covered by the checkpoint at tree size ${checkpoint.treeSize}`);
      const record = await deps.log.record(request.params.index);
      const proof = await deps.log.inclusionProof(request.params.index, checkpoint.treeSize);
      return { index: request.params.index, treeSize: checkpoint.treeSize, leafHash: record!.leafHash.toString('base64'), proof: proof.map((h) => h.toString('base64')), checkpoint: presentCheckpoint(checkpoint) };
    },
  );

  app.get<{ Querystring: { from: number; to?: number } }>(
    '/v1/consistency-proof',
    {
      schema: {
        querystring: { type: 'object', additionalProperties: false, properties: { from: size, to: size }, required: ['from'] },
        response: {
          200: { type: 'object', properties: { from: { type: 'integer' }, to: { type: 'integer' }, proof: { type: 'array', items: { type: 'string' } }, checkpoint: checkpointBody }, required: ['from', 'to', 'proof', 'checkpoint'] },
          400: errorBody,
          401: errorBody,
          404: errorBody,
        },
      },
    },
    async (request) => {
      const operation = 'consistency proof';
      const to = request.query.to === undefined ? await latest(operation) : await deps.log.checkpointAt(request.query.to);
      if (!to) throw new PkiError('NOT_FOUND', `${operation}: no checkpoint at tree size ${request.query.to}`);
      if (request.query.from > to.treeSize) throw new PkiError('INVALID_ARGUMENT', `${operation}: from (${request.query.from}) exceeds the checkpoint's tree size (${to.treeSize})`);
      const proof = await deps.log.consistencyProof(request.query.from, to.treeSize);
      return { from: request.query.from, to: to.treeSize, proof: proof.map((h) => h.toString('base64')), checkpoint: presentCheckpoint(to) };
    },
  );

  app.get<{ Querystring: { from?: number; to?: number; consistencyFrom?: number } }>(
    '/v1/export',
    { schema: { querystring: { type: 'object', additionalProperties: false, properties: { from: size, to: size, consistencyFrom: size } } } },
    async (request, reply) => {
      const to = request.query.to ?? (await latest('export')).treeSize;
      const range = { from: request.query.from ?? 0, to, consistencyFrom: request.query.consistencyFrom };
      const lines = exportLines(deps.log, deps.origin, range, deps.clock.now());
      // The header is produced before the answer starts, so a bad range still gets a clean 400.
      const first = await lines.next();
      await deps.log.audit({
        action: 'audit-log.export',
        outcome: AuditOutcome.SUCCESS,
        actor: actor(request),
        objects: [{ type: 'checkpoint', id: `${deps.origin}/${to}` }],
        attributes: { from: String(range.from), to: String(to), ...(range.consistencyFrom !== undefined ? { consistencyFrom: String(range.consistencyFrom) } : {}) },
      });
      async function* all() {
        if (!first.done) yield `${first.value}\n`;
        for await (const line of lines) yield `${line}\n`;
      }
      return reply
        .header('content-type', 'application/x-ndjson; charset=utf-8')
        .header('content-disposition', `attachment; filename="audit-export-${range.from}-${to}.jsonl"`)
        .send(Readable.from(all()));
    },
  );

  return app;
}
