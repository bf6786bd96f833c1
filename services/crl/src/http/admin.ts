import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { TLSSocket } from 'node:tls';
import type { Pool } from 'pg';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { PkiError, httpStatusOf, type Logger } from '@pki/kit';
import { withTransaction } from '@pki/db';
import { isAllowed, spiffeIdOf } from '@pki/grpc';
import { appendAuditEvent, AuditActorType, AuditOutcome, type AuditChannel } from '@pki/audit-events';
import type { CrlConfig } from '../config';

export interface AdminDeps {
  pool: Pool;
  audit: AuditChannel;
  logger: Logger;
  admin: CrlConfig['admin'];
  /** How long a request waits for its CRL before answering 202 with where to look. */
  waitMs: number;
  /** Wakes the generator (this pod or, through NOTIFY, the lease holder). */
  wake(): Promise<void>;
}

const errorBody = { type: 'object', properties: { error: { type: 'string' }, message: { type: 'string' } }, required: ['error', 'message'] } as const;
const regenerationBody = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    issuerKeyId: { type: 'string' },
    kind: { type: 'string' },
    partition: { type: 'integer' },
    state: { type: 'string', enum: ['PENDING', 'DONE', 'FAILED'] },
    crlNumber: { type: 'string' },
    error: { type: 'string' },
  },
  required: ['id', 'issuerKeyId', 'kind', 'state'],
} as const;

interface RegenerationRow {
  id: string;
  issuer_key_id: string;
  kind: string;
  partition: number | null;
  state: 'PENDING' | 'DONE' | 'FAILED';
  crl_number: string | null;
  error: string | null;
  request_sha256?: Buffer;
}

const present = (r: RegenerationRow) => ({
  id: r.id,
  issuerKeyId: r.issuer_key_id,
  kind: r.kind.toLowerCase(),
  ...(r.partition !== null ? { partition: r.partition } : {}),
  state: r.state,
  ...(r.crl_number !== null ? { crlNumber: r.crl_number } : {}),
  ...(r.error !== null ? { error: r.error } : {}),
});

/**
 * The operators' API: HTTPS where the client certificate (from the operators' CA, `admin.tls.caFile`)
 * is the credential and its SPIFFE identity must be in `admin.allow`. The TLS layer asks for a
 * certificate but does not drop a connection without one, so that such a caller gets a clear 401
 * rather than a failed handshake. Everything is checked before anything is written.
 */
export function buildAdminApp(deps: AdminDeps): FastifyInstance {
  const { tls } = deps.admin;
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    https: { ca: readFileSync(tls.caFile), cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile), requestCert: true, rejectUnauthorized: false },
    bodyLimit: 16 * 1024,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  });

  app.setErrorHandler((err: Error & { statusCode?: number; validation?: unknown }, request, reply) => {
    if (err instanceof PkiError) {
      if (err.code === 'INTERNAL') request.log.error({ err }, 'request failed');
      const status = httpStatusOf(err.code);
      if (status === 503) reply.header('retry-after', '5');
      return reply.status(status).send({ error: err.code, message: status === 500 ? 'internal error' : err.message });
    }
    if (err.validation) return reply.status(400).send({ error: 'INVALID_ARGUMENT', message: `${request.method} ${request.routeOptions.url}: ${err.message}` });
    if (err.statusCode && err.statusCode < 500) return reply.status(err.statusCode).send({ error: 'INVALID_ARGUMENT', message: err.message });
    request.log.error({ err }, 'request failed');
    return reply.status(503).header('retry-after', '5').send({ error: 'UNAVAILABLE', message: 'a dependency is unavailable; retry later' });
  });
  app.setNotFoundHandler((request, reply) => reply.status(404).send({ error: 'NOT_FOUND', message: `no route ${request.method} ${request.url}` }));

  // Authentication and authorisation before anything else runs (routing included).
  app.addHook('onRequest', async (request) => {
    const socket = request.raw.socket as TLSSocket;
    const certificate = socket.getPeerCertificate?.();
    if (!certificate || Object.keys(certificate).length === 0) throw new PkiError('UNAUTHENTICATED', 'CRL operations: a client certificate from the operators\' CA is required');
    if (!socket.authorized) throw new PkiError('UNAUTHENTICATED', 'CRL operations: the client certificate is not from the operators\' CA (or has expired)');
    const identity = spiffeIdOf(certificate);
    if (!isAllowed(deps.admin.allow, identity)) throw new PkiError('PERMISSION_DENIED', `CRL operations: ${identity ?? 'a certificate without one SPIFFE identity'} is not an allowed operator`);
    (request as { operator?: string }).operator = identity;
  });

  const regeneration = async (id: string): Promise<RegenerationRow | undefined> =>
    (await deps.pool.query<RegenerationRow>(`SELECT id::text, issuer_key_id, kind, partition, state, crl_number::text, error FROM regeneration_requests WHERE id = $1`, [id])).rows[0];

  app.post<{ Body: { issuerKeyId: string; kind: 'full' | 'delta' | 'partition'; partition?: number }; Headers: { 'idempotency-key'?: string } }>(
    '/v1/regenerations',
    {
      schema: {
        headers: { type: 'object', properties: { 'idempotency-key': { type: 'string', minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9._:/-]+$' } }, required: ['idempotency-key'] },
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['issuerKeyId', 'kind'],
          properties: {
            issuerKeyId: { type: 'string', pattern: '^([0-9a-f]{2}){1,64}$' },
            kind: { type: 'string', enum: ['full', 'delta', 'partition'] },
            partition: { type: 'integer', minimum: 0, maximum: 4095 },
          },
        },
        response: { 200: regenerationBody, 201: regenerationBody, 202: regenerationBody, 400: errorBody, 401: errorBody, 403: errorBody, 404: errorBody, 409: errorBody },
      },
    },
    async (request, reply) => {
      const operation = 'regenerate CRL';
      const operator = (request as { operator?: string }).operator!;
      const { issuerKeyId, kind, partition } = request.body;
      const key = request.headers['idempotency-key']!;
      const issuer = (await deps.pool.query(`SELECT role, crl_partitions FROM issuers WHERE key_id = $1`, [issuerKeyId])).rows[0];
      if (!issuer || issuer.role !== 'ISSUING') throw new PkiError('NOT_FOUND', `${operation}: no issuing CA generation with key identifier ${issuerKeyId}`);
      if (kind === 'partition') {
        if (partition === undefined) throw new PkiError('INVALID_ARGUMENT', `${operation}: kind partition needs a partition number`);
        if (partition >= issuer.crl_partitions) throw new PkiError('INVALID_ARGUMENT', `${operation}: generation ${issuerKeyId} has partitions 0 to ${issuer.crl_partitions - 1}, not ${partition}`);
      } else if (partition !== undefined) throw new PkiError('INVALID_ARGUMENT', `${operation}: only kind partition takes a partition number`);
      const requestSha256 = createHash('sha256').update(JSON.stringify({ issuerKeyId, kind, partition: partition ?? null })).digest();
      const row = await withTransaction(deps.pool, async (tx) => {
        const existing = (
          await tx.query<RegenerationRow>(
            `SELECT id::text, issuer_key_id, kind, partition, state, crl_number::text, error, request_sha256 FROM regeneration_requests WHERE caller = $1 AND idempotency_key = $2`,
            [operator, key],
          )
        ).rows[0];
        if (existing) {
          if (!existing.request_sha256!.equals(requestSha256)) throw new PkiError('CONFLICT', `${operation}: idempotency key '${key}' was already used for a different request`);
          return { row: existing, created: false };
        }
        const inserted = (
          await tx.query<RegenerationRow>(
            `INSERT INTO regeneration_requests (caller, idempotency_key, request_sha256, issuer_key_id, kind, partition, state) VALUES ($1, $2, $3, $4, $5, $6, 'PENDING')
             RETURNING id::text, issuer_key_id, kind, partition, state, crl_number::text, error`,
            [operator, key, requestSha256, issuerKeyId, kind.toUpperCase(), partition ?? null],
          )
        ).rows[0]!;
        await appendAuditEvent(tx, deps.audit, {
          action: 'crl.regenerate.request',
          outcome: AuditOutcome.SUCCESS,
          actor: { type: AuditActorType.OFFICER, id: operator, role: 'operator' },
          objects: [{ type: 'issuer', id: issuerKeyId }],
          attributes: { kind, ...(partition !== undefined ? { partition: String(partition) } : {}), requestId: inserted.id },
        });
        return { row: inserted, created: true };
      });
      if (row.created) await deps.wake();
      const until = Date.now() + deps.waitMs;
      let current = row.row;
      while (current.state === 'PENDING' && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 25));
        current = (await regeneration(current.id)) ?? current;
      }
      reply.header('location', `/v1/regenerations/${current.id}`);
      return reply.status(current.state === 'PENDING' ? 202 : row.created ? 201 : 200).send(present(current));
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/regenerations/:id',
    { schema: { params: { type: 'object', properties: { id: { type: 'string', pattern: '^[0-9]{1,18}$' } }, required: ['id'] }, response: { 200: regenerationBody, 404: errorBody } } },
    async (request) => {
      const row = await regeneration(request.params.id);
      if (!row) throw new PkiError('NOT_FOUND', `get regeneration: no request ${request.params.id}`);
      return present(row);
    },
  );

  return app;
}
