import type { TLSSocket } from 'node:tls';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import rateLimit from '@fastify/rate-limit';
import { PkiError, canonicalJson, httpStatusOf, type Logger } from '@pki/kit';
import { authorize, permissionsOf, type Permission, type Principal } from '../domain/access';
import type { RegistrationAuthority } from '../domain/registration-authority';
import type { Command } from '../domain/shared';
import { CertificateAuthenticator, type PrincipalDirectory, type RouteAccess } from './auth';
import { declareAgencyRoutes, type AgencyHttpDeps } from './agency-routes';
import { COMMON_ERRORS, SHARED_SCHEMAS, errors, idempotencyHeader, pageOf, pageQuery } from './schemas';
import { HOUSEHOLD_EVENT_KINDS } from '../domain/card-status';
import { REVOCATION_REASONS, PROGRAMME_REVOCATION_REASONS } from '../domain/lifecycle';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal;
  }
  interface FastifyContextConfig {
    access?: RouteAccess;
    permission?: Permission;
    operation?: string;
  }
}

export interface RateLimits {
  officerPerMinute: number;
  householdPerMinute: number;
  citizenPerMinute: number;
  publicPerMinute: number;
}

export interface HttpDeps {
  ra: RegistrationAuthority;
  principals: PrincipalDirectory;
  /** Keyed hash of a request: idempotency fingerprints without storing subscriber codes or IDs. */
  fingerprint: (data: string) => Buffer;
  logger: Logger;
  rateLimits: RateLimits;
  /**
   * HTTPS with optional client certificates; every staff and system route requires one. Absent
   * only when the app is built to print its OpenAPI document (openapi.ts), never to serve.
   */
  https?: { key: Buffer; cert: Buffer; ca: Buffer[] };
  bodyLimitBytes: number;
  /** The agency APIs (issue 13): registry, identity confirmation, statistics and open data. */
  agency: AgencyHttpDeps;
}

export interface RouteSpec {
  method: 'GET' | 'POST';
  url: string;
  access: RouteAccess;
  permission: Permission;
  /** Words that start every error message of the route ("suspend card: ..."). */
  operation: string;
  summary: string;
  tags: string[];
  mutating?: boolean;
  body?: Record<string, unknown>;
  params?: Record<string, unknown>;
  query?: Record<string, unknown>;
  response: Record<number, unknown>;
}

export type Handler = (request: FastifyRequest, reply: FastifyReply, command: Command | undefined) => Promise<unknown>;
/** Declares one route: its access kind and permission are checked before anything else runs. */
export type RouteFn = (spec: RouteSpec, handler: Handler) => void;

/**
 * ra's REST API over HTTPS. Callers are authenticated (client certificate for staff and systems,
 * the subscriber code inside self-service requests, nobody for the public repository) and
 * authorised by the route's permission in an onRequest hook, before the body is even read.
 */
export function buildHttpApp(deps: HttpDeps): FastifyInstance {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    bodyLimit: deps.bodyLimitBytes,
    ...(deps.https ? { https: { key: deps.https.key, cert: deps.https.cert, ca: deps.https.ca, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' as const } } : {}),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: false } },
  }) as unknown as FastifyInstance;
  const authenticator = new CertificateAuthenticator(deps.principals, 10_000, deps.agency.agencies);
  for (const schema of SHARED_SCHEMAS) app.addSchema(schema);

  void app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'ra: citizen certificate registration authority',
        version: '1',
        description:
          'Subscribers, applications, cards and the certificate lifecycle of the citizen certificate programme (自然人憑證). ' +
          'Staff and systems authenticate with a registered client certificate; citizens with their subscriber code; the public repository needs nothing. ' +
          'Every POST that changes state requires an Idempotency-Key header.',
      },
      // OpenAPI 3.1's mutualTLS scheme; the library's types predate it.
      components: { securitySchemes: { clientCertificate: { type: 'mutualTLS', description: 'A client certificate registered to an officer or system in ra' } as never } },
    },
  });

  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', async (_request, reply, payload) => {
    if (closing) reply.header('connection', 'close');
    return payload;
  });

  app.decorateRequest('principal', null as never);
  // Authentication and authorisation come first, before the body is read.
  app.addHook('onRequest', async (request) => {
    const config = request.routeOptions.config;
    if (!config.access || !config.permission) {
      request.principal = { kind: 'public' };
      return;
    }
    const operation = config.operation ?? `${request.method} ${request.routeOptions.url}`;
    request.principal = await authenticator.authenticate(request.raw.socket as TLSSocket, config.access, operation);
    authorize(request.principal, config.permission, operation);
  });

  void app.register(rateLimit, {
    global: true,
    hook: 'preValidation',
    keyGenerator: (request) =>
      request.principal?.kind === 'officer' || request.principal?.kind === 'household-system' || request.principal?.kind === 'agency-system' ? `${request.principal.kind}:${request.principal.id}` : `${request.principal?.kind ?? 'public'}:${request.ip}`,
    max: (request) => {
      switch (request.principal?.kind) {
        case 'agency-system':
          // Each system its own limit, set when it was onboarded.
          return request.principal.rateLimitPerMinute;
        case 'officer':
          return deps.rateLimits.officerPerMinute;
        case 'household-system':
          return deps.rateLimits.householdPerMinute;
        case 'citizen':
          return deps.rateLimits.citizenPerMinute;
        default:
          return deps.rateLimits.publicPerMinute;
      }
    },
    timeWindow: 60_000,
    errorResponseBuilder: (_request, context) => ({ statusCode: 429, error: 'RESOURCE_EXHAUSTED', message: `rate limit: at most ${context.max} requests a minute; retry after ${Math.ceil(context.ttl / 1000)} s` }),
  });

  app.setErrorHandler((err: FastifyError | PkiError, request, reply) => respondWithError(err, request, reply));
  app.setNotFoundHandler((request, reply) => reply.status(404).send({ error: 'NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}` }));

  // Routes are declared in a plugin registered after @fastify/swagger, so that it sees every one.
  void app.register(async (api) => declareRoutes(api, deps));
  app.get('/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  return app;
}

function declareRoutes(app: FastifyInstance, deps: HttpDeps): void {
  const route: RouteFn = (spec, handler) => {
    app.route({
      method: spec.method,
      url: spec.url,
      config: { access: spec.access, permission: spec.permission, operation: spec.operation },
      schema: {
        summary: spec.summary,
        tags: spec.tags,
        ...(spec.access === 'officer' || spec.access === 'household-system' || spec.access === 'agency-system' ? { security: [{ clientCertificate: [] }] } : {}),
        ...(spec.mutating ? { headers: idempotencyHeader } : {}),
        ...(spec.body ? { body: { type: 'object', additionalProperties: false, ...spec.body } } : {}),
        ...(spec.params ? { params: { type: 'object', ...spec.params } } : {}),
        ...(spec.query ? { querystring: { type: 'object', additionalProperties: false, ...spec.query } } : {}),
        response: { ...spec.response, ...errors(...COMMON_ERRORS, 404, 409, 412) },
      },
      handler: async (request, reply) => {
        const command = spec.mutating
          ? { principal: request.principal, idempotencyKey: (request.headers as Record<string, string>)['idempotency-key']!, fingerprint: deps.fingerprint(fingerprintInput(spec.operation, request)) }
          : undefined;
        return handler(request, reply, command);
      },
    });
  };

  const { ra } = deps;
  const cardParam = { properties: { cardNumber: { type: 'string', pattern: '^[A-Z0-9]{8,20}$' } }, required: ['cardNumber'] };
  const idParam = { properties: { id: { type: 'string', format: 'uuid' } }, required: ['id'] };
  const serialParam = { properties: { serial: { type: 'string', pattern: '^[0-9a-fA-F]{1,40}$' } }, required: ['serial'] };
  const reasons = [...new Set([...REVOCATION_REASONS, ...Object.keys(PROGRAMME_REVOCATION_REASONS)])];
  type P = Record<string, string>;
  type Q = Record<string, string | number | undefined>;
  type B = Record<string, unknown>;
  const page = (q: Q) => ({ ...(q.pageToken ? { pageToken: String(q.pageToken) } : {}), limit: Number(q.limit ?? 50) });

  // --- officers -----------------------------------------------------------------------------
  route(
    { method: 'GET', url: '/v1/me', access: 'officer', permission: 'officer.read-self', operation: 'who am I', summary: 'The calling officer, their office and what they may do', tags: ['officers'],
      response: { 200: { type: 'object', properties: { id: { type: 'string' }, role: { type: 'string' }, office: { type: 'string' }, permissions: { type: 'array', items: { type: 'string' } } }, required: ['id', 'role', 'office', 'permissions'] } } },
    async (request) => {
      const p = request.principal as Extract<Principal, { kind: 'officer' }>;
      return { id: p.id, role: p.role, office: p.office, permissions: permissionsOf(p) };
    },
  );

  route(
    { method: 'POST', url: '/v1/subscribers', access: 'officer', permission: 'subscriber.register', operation: 'register subscriber', summary: 'Register a citizen or resident (personal data is encrypted at rest)', tags: ['subscribers'], mutating: true,
      body: {
        required: ['nationalId', 'name', 'birthDate', 'subscriberCode', 'publicationConsent'],
        properties: {
          nationalId: { type: 'string', maxLength: 16, description: 'National ID or resident number (checksum-validated)' },
          name: { type: 'string', maxLength: 256 },
          birthDate: { type: 'string', maxLength: 10, description: 'YYYY-MM-DD' },
          email: { type: 'string', maxLength: 254 },
          subscriberCode: { type: 'string', maxLength: 256, description: '用戶代碼: authenticates self-service; stored only as a memory-hard hash' },
          publicationConsent: { type: 'boolean', description: 'Whether the public repository may show this person\'s certificates' },
        },
      },
      response: { 201: { type: 'object', properties: { subscriberId: { type: 'string', format: 'uuid' } }, required: ['subscriberId'] } } },
    async (request, reply, command) => reply.status(201).send(await ra.subscribers.register(command!, request.body as never)),
  );

  route(
    { method: 'POST', url: '/v1/subscriber-searches', access: 'officer', permission: 'subscriber.read', operation: 'find subscriber', summary: 'Find a subscriber by national ID (in the body, never in a URL)', tags: ['subscribers'],
      body: { required: ['nationalId'], properties: { nationalId: { type: 'string', maxLength: 16 } } },
      response: { 200: { type: 'object', properties: { subscriberId: { type: 'string', format: 'uuid' } }, required: ['subscriberId'] } } },
    async (request) => ra.subscribers.find(request.principal, (request.body as B).nationalId),
  );

  route(
    { method: 'GET', url: '/v1/subscribers/:id', access: 'officer', permission: 'subscriber.read', operation: 'get subscriber', summary: "A subscriber's record with their personal data (audited)", tags: ['subscribers'], params: idParam,
      response: {
        200: {
          type: 'object',
          properties: {
            subscriberId: { type: 'string' }, nationalIdMasked: { type: 'string' }, idKind: { type: 'string' }, gender: { type: 'string' }, name: { type: 'string' },
            birthDate: { type: 'string' }, email: { type: 'string' }, publicationConsent: { type: 'boolean' }, status: { type: 'string' },
            cards: { type: 'array', items: { type: 'object', properties: { cardNumber: { type: 'string' }, status: { type: 'string' } } } },
          },
          required: ['subscriberId', 'nationalIdMasked', 'name', 'birthDate', 'status', 'cards'],
        },
      } },
    async (request) => ra.subscribers.get(request.principal, (request.params as P).id!),
  );

  route(
    { method: 'POST', url: '/v1/applications', access: 'officer', permission: 'application.create', operation: 'create application', summary: "Apply for a card's two certificates (the CSRs prove possession of the card's keys)", tags: ['applications'], mutating: true,
      body: {
        required: ['subscriberId', 'cardNumber', 'kind', 'signingCsr', 'encryptionCsr'],
        properties: {
          subscriberId: { type: 'string', format: 'uuid' },
          cardNumber: { type: 'string', pattern: '^[A-Z0-9]{8,20}$' },
          kind: { type: 'string', enum: ['NEW', 'REPLACEMENT', 'REISSUE'], description: 'REISSUE: after key compromise, needs a second officer (dual control)' },
          replacesCard: { type: 'string', pattern: '^[A-Z0-9]{8,20}$' },
          signingCsr: { type: 'string', maxLength: 16384, description: 'PKCS#10, PEM, made with the SIGN key pair' },
          encryptionCsr: { type: 'string', maxLength: 16384, description: 'PKCS#10, PEM, made with the KEYX key pair' },
        },
      },
      response: { 201: { $ref: 'Application#' } } },
    async (request, reply, command) => reply.status(201).send(await ra.issuance.createApplication(command!, request.body as never)),
  );

  route(
    { method: 'GET', url: '/v1/applications', access: 'officer', permission: 'application.read', operation: 'list applications', summary: "Applications of the officer's office (every office for roles that reach them)", tags: ['applications'],
      query: { properties: { state: { type: 'string', enum: ['SUBMITTED', 'PENDING_APPROVAL', 'ISSUING', 'ISSUED', 'REJECTED', 'FAILED'] }, subscriberId: { type: 'string', format: 'uuid' }, ...pageQuery } },
      response: { 200: pageOf('Application') } },
    async (request) => {
      const q = request.query as Q;
      return ra.queries.applications(request.principal, { ...(q.state ? { state: q.state as never } : {}), ...(q.subscriberId ? { subscriberId: String(q.subscriberId) } : {}) }, page(q));
    },
  );

  route(
    { method: 'GET', url: '/v1/applications/:id', access: 'officer', permission: 'application.read', operation: 'get application', summary: 'One application', tags: ['applications'], params: idParam, response: { 200: { $ref: 'Application#' } } },
    async (request) => ra.queries.application(request.principal, (request.params as P).id!),
  );

  route(
    { method: 'POST', url: '/v1/applications/:id/approval', access: 'officer', permission: 'application.approve', operation: 'approve application', summary: "Approve: ca-signer issues the card's two certificates", tags: ['applications'], mutating: true, params: idParam,
      response: { 201: { $ref: 'Issuance#' } } },
    async (request, reply, command) => reply.status(201).send(await ra.issuance.approve(command!, (request.params as P).id!)),
  );

  route(
    { method: 'POST', url: '/v1/applications/:id/rejection', access: 'officer', permission: 'application.reject', operation: 'reject application', summary: 'Reject an application', tags: ['applications'], mutating: true, params: idParam,
      body: { required: ['reason'], properties: { reason: { type: 'string', minLength: 1, maxLength: 200 } } },
      response: { 200: { $ref: 'Application#' } } },
    async (request, _reply, command) => ra.issuance.reject(command!, (request.params as P).id!, String((request.body as B).reason)),
  );

  route(
    { method: 'GET', url: '/v1/cards/:cardNumber', access: 'officer', permission: 'card.read', operation: 'get card', summary: 'A card and every certificate it carried, with the chain of each generation', tags: ['cards'], params: cardParam, response: { 200: { $ref: 'Card#' } } },
    async (request) => ra.queries.card(request.principal, (request.params as P).cardNumber!),
  );

  for (const [operation, path, summary] of [
    ['activate', 'activation', 'The citizen confirmed receipt: the card is in use'],
    ['suspend', 'suspension', 'Suspend both certificates (certificateHold; 停用)'],
    ['resume', 'resumption', 'Resume both certificates (removeFromCRL; 復用)'],
  ] as const) {
    route(
      { method: 'POST', url: `/v1/cards/:cardNumber/${path}`, access: 'officer', permission: `card.${operation}`, operation: `${operation} card`, summary, tags: ['cards'], mutating: true, params: cardParam,
        body: { properties: { comment: { type: 'string', maxLength: 200 } } },
        response: { 200: { $ref: 'Card#' } } },
      async (request, _reply, command) => ra.cards.byOfficer(command!, (request.params as P).cardNumber!, operation, (request.body as B | undefined)?.comment as string | undefined),
    );
  }

  route(
    { method: 'POST', url: '/v1/cards/:cardNumber/revocation', access: 'officer', permission: 'card.revoke', operation: 'revoke card', summary: 'Revoke both certificates (廢止); waits for a second officer under dual control', tags: ['cards'], mutating: true, params: cardParam,
      body: { required: ['reason'], properties: { reason: { type: 'string', enum: reasons }, invalidityDate: { type: 'string', format: 'date-time' }, comment: { type: 'string', maxLength: 200 } } },
      response: {
        200: { type: 'object', properties: { state: { type: 'string', enum: ['REVOKED'] }, card: { $ref: 'Card#' } }, required: ['state', 'card'] },
        202: { type: 'object', properties: { state: { type: 'string', enum: ['PENDING_APPROVAL'] }, approvalRequestId: { type: 'string' } }, required: ['state', 'approvalRequestId'] },
      } },
    async (request, reply, command) => {
      const outcome = await ra.cards.revoke(command!, (request.params as P).cardNumber!, request.body as never);
      return reply.status(outcome.state === 'REVOKED' ? 200 : 202).send(outcome);
    },
  );

  route(
    { method: 'POST', url: '/v1/cards/:cardNumber/extension', access: 'officer', permission: 'card.extend', operation: 'extend card', summary: "Extend the card's certificates once by three years, with the card's own keys", tags: ['cards'], mutating: true, params: cardParam,
      response: { 201: { $ref: 'Issuance#' } } },
    async (request, reply, command) => reply.status(201).send(await ra.issuance.extend(command!, (request.params as P).cardNumber!)),
  );

  route(
    { method: 'POST', url: '/v1/bulk-revocations', access: 'officer', permission: 'cards.bulk-revoke', operation: 'bulk revoke cards', summary: 'Revoke many cards at once; always waits for a second officer', tags: ['cards'], mutating: true,
      body: { required: ['cardNumbers', 'reason'], properties: { cardNumbers: { type: 'array', minItems: 1, maxItems: 1000, items: { type: 'string', pattern: '^[A-Z0-9]{8,20}$' } }, reason: { type: 'string', enum: reasons }, comment: { type: 'string', maxLength: 200 } } },
      response: { 202: { type: 'object', properties: { approvalRequestId: { type: 'string' }, cards: { type: 'integer' } }, required: ['approvalRequestId', 'cards'] } } },
    async (request, reply, command) => {
      const body = request.body as { cardNumbers: string[]; reason: string; comment?: string };
      return reply.status(202).send(await ra.cards.requestBulkRevocation(command!, body.cardNumbers, body.reason, body.comment));
    },
  );

  route(
    { method: 'GET', url: '/v1/certificates/:serial', access: 'officer', permission: 'certificate.read', operation: 'get certificate', summary: 'One certificate with the chain of the generation that signed it', tags: ['certificates'], params: serialParam, response: { 200: { $ref: 'Certificate#' } } },
    async (request) => ra.queries.certificate(request.principal, (request.params as P).serial!),
  );

  route(
    { method: 'GET', url: '/v1/certificates', access: 'officer', permission: 'certificate.read', operation: 'list certificates', summary: "Certificates of the officer's office", tags: ['certificates'],
      query: { properties: { cardNumber: { type: 'string', pattern: '^[A-Z0-9]{8,20}$' }, status: { type: 'string', enum: ['VALID', 'SUSPENDED', 'REVOKED'] }, ...pageQuery } },
      response: { 200: pageOf('Certificate') } },
    async (request) => {
      const q = request.query as Q;
      return ra.queries.certificates(request.principal, { ...(q.cardNumber ? { cardNumber: String(q.cardNumber) } : {}), ...(q.status ? { status: q.status as never } : {}) }, page(q));
    },
  );

  route(
    { method: 'GET', url: '/v1/approvals', access: 'officer', permission: 'approval.read', operation: 'list approval requests', summary: 'Dual-control requests of the office', tags: ['approvals'],
      query: { properties: { state: { type: 'string', enum: ['PENDING', 'APPROVED', 'REJECTED', 'EXPIRED', 'EXECUTED'] }, ...pageQuery } },
      response: { 200: pageOf('ApprovalRequest') } },
    async (request) => {
      const q = request.query as Q;
      return ra.approvals.list(request.principal, q.state as never, page(q));
    },
  );

  route(
    { method: 'GET', url: '/v1/approvals/:id', access: 'officer', permission: 'approval.read', operation: 'get approval request', summary: 'One dual-control request', tags: ['approvals'], params: idParam, response: { 200: { $ref: 'ApprovalRequest#' } } },
    async (request) => ra.approvals.get(request.principal, (request.params as P).id!),
  );

  route(
    { method: 'POST', url: '/v1/approvals/:id/decision', access: 'officer', permission: 'approval.decide', operation: 'decide request', summary: 'Approve (and carry out) or reject a request; never by the officer who filed it', tags: ['approvals'], mutating: true, params: idParam,
      body: { required: ['decision'], properties: { decision: { type: 'string', enum: ['approve', 'reject'] }, comment: { type: 'string', maxLength: 200 } } },
      response: {
        200: {
          type: 'object',
          properties: {
            approval: { $ref: 'ApprovalRequest#' }, card: { $ref: 'Card#' }, revokedCards: { type: 'integer' }, alreadyRevoked: { type: 'array', items: { type: 'string' } }, issuance: { $ref: 'Issuance#' },
          },
          required: ['approval'],
        },
      } },
    async (request, _reply, command) => {
      const body = request.body as { decision: 'approve' | 'reject'; comment?: string };
      return ra.approvals.decide(command!, (request.params as P).id!, body.decision, body.comment);
    },
  );

  // --- the household-registration system --------------------------------------------------------
  route(
    { method: 'POST', url: '/v1/household-events', access: 'household-system', permission: 'household-event.submit', operation: 'household event', summary: "A change in the household registry (ID or name change, death, loss of nationality) revokes the person's certificates; each event id once", tags: ['household registration'], mutating: true,
      body: {
        required: ['eventId', 'kind', 'nationalId', 'occurredAt'],
        properties: { eventId: { type: 'string', maxLength: 64 }, kind: { type: 'string', enum: [...HOUSEHOLD_EVENT_KINDS] }, nationalId: { type: 'string', maxLength: 16 }, occurredAt: { type: 'string', format: 'date-time' } },
      },
      response: { 200: { type: 'object', properties: { eventId: { type: 'string' }, outcome: { type: 'string', enum: ['CERTIFICATES_REVOKED', 'NO_LIVE_CERTIFICATES', 'UNKNOWN_PERSON'] }, revokedCertificates: { type: 'integer' } }, required: ['eventId', 'outcome', 'revokedCertificates'] } } },
    async (request, _reply, command) => ra.cards.householdEvent(command!, request.body as never),
  );

  // --- citizens (self-service with the subscriber code) ------------------------------------------
  const citizenCard = {
    type: 'object',
    properties: { cardNumber: { type: 'string' }, status: { type: 'string' }, certificates: { type: 'array', items: { type: 'object', properties: { serialHex: { type: 'string' }, keySlot: { type: 'string' }, status: { type: 'string' }, notAfter: { type: 'string' } } } } },
    required: ['cardNumber', 'status', 'certificates'],
  };
  for (const [operation, path, summary] of [
    ['suspend', 'suspension', 'Suspend your card (停用) with its number and your subscriber code'],
    ['resume', 'resumption', 'Resume your card (復用)'],
    ['activate', 'activation', 'Confirm you received your card'],
  ] as const) {
    route(
      { method: 'POST', url: `/v1/self-service/${path}`, access: 'citizen', permission: 'self-service', operation: `self-service ${operation}`, summary, tags: ['self-service'], mutating: true,
        body: { required: ['cardNumber', 'subscriberCode'], properties: { cardNumber: { type: 'string', maxLength: 20 }, subscriberCode: { type: 'string', maxLength: 256 } } },
        response: { 200: citizenCard } },
      async (request, _reply, command) => {
        const body = request.body as { cardNumber: string; subscriberCode: string };
        const card = await ra.cards.bySelfService(command!, operation, body.cardNumber, body.subscriberCode);
        // A citizen sees the card's state, not the registry's internals.
        return { cardNumber: card.cardNumber, status: card.status, certificates: card.certificates.map((c) => ({ serialHex: c.serialHex, keySlot: c.keySlot, status: c.status, notAfter: c.notAfter })) };
      },
    );
  }

  // --- the public repository ---------------------------------------------------------------------
  route(
    { method: 'GET', url: '/v1/public/certificates/:serial', access: 'public', permission: 'public.read', operation: 'public repository', summary: 'A published certificate: name, last four ID digits, serial and status (only with the subscriber\'s consent)', tags: ['public repository'], params: serialParam,
      response: { 200: { $ref: 'PublishedCertificate#' } } },
    async (request) => ra.queries.publishedCertificate((request.params as P).serial!),
  );
  route(
    { method: 'GET', url: '/v1/public/cards/:cardNumber/certificates', access: 'public', permission: 'public.read', operation: 'public repository', summary: "A card's published certificates", tags: ['public repository'], params: cardParam,
      response: { 200: { type: 'array', items: { $ref: 'PublishedCertificate#' } } } },
    async (request) => ra.queries.publishedCertificatesOfCard((request.params as P).cardNumber!),
  );
  route(
    { method: 'GET', url: '/v1/public/issuers', access: 'public', permission: 'public.read', operation: 'CA certificates', summary: 'Every CA generation with its certificate and chain', tags: ['public repository'],
      response: { 200: { type: 'array', items: { $ref: 'Issuer#' } } } },
    async () => ra.queries.issuers(),
  );
  route(
    { method: 'GET', url: '/v1/public/issuers/:keyId/chain.pem', access: 'public', permission: 'public.read', operation: 'CA chain', summary: "One generation's chain, issuing CA first (application/pem-certificate-chain, RFC 8555 §9.1)", tags: ['public repository'],
      params: { properties: { keyId: { type: 'string', pattern: '^[0-9a-f]{2,128}$' } }, required: ['keyId'] }, response: { 200: { type: 'string' } } },
    async (request, reply) => {
      const issuer = (await ra.queries.issuers()).find((i) => i.keyId === (request.params as P).keyId);
      if (!issuer) throw new PkiError('NOT_FOUND', `CA chain: no generation with key id ${(request.params as P).keyId}`);
      return reply.type('application/pem-certificate-chain').send(issuer.chainPem.join(''));
    },
  );

  declareAgencyRoutes(app, route, deps.agency);

}

/** A request's identity for idempotency: the operation, its path parameters and its body, canonically. */
function fingerprintInput(operation: string, request: FastifyRequest): string {
  return `${operation}\n${canonicalJson(request.params ?? {})}\n${canonicalJson(request.body ?? {})}`;
}

/**
 * The one mapping from errors to answers. Bad input and refusals say what was wrong; a dependency
 * that is down answers 503 with Retry-After and no internal detail (hosts, driver messages and
 * HSM codes go to the log only); anything unexpected is a bare 500.
 */
function respondWithError(err: FastifyError | PkiError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (err instanceof PkiError) {
    const status = httpStatusOf(err.code);
    if (err.code === 'UNAVAILABLE' || err.code === 'DEADLINE_EXCEEDED') {
      request.log.warn({ err }, 'dependency unavailable');
      const dependency = err.details.dependency ?? (err.message.includes('database:') ? 'the registry database' : 'a service ra depends on');
      const retry = err.details.retryAfterSeconds ?? '5';
      // Agency systems branch on the request-level code (domain.md: backend unavailable).
      const agency = request.routeOptions.config?.access === 'agency-system' ? { details: { code: 'BACKEND_UNAVAILABLE' } } : {};
      return reply.status(503).header('retry-after', retry).send({ error: 'UNAVAILABLE', message: `${operationOf(request)}: ${dependency} is unavailable; retry in ${retry} s`, ...agency });
    }
    if (err.code === 'INTERNAL') {
      request.log.error({ err }, 'request failed');
      return reply.status(500).send({ error: 'INTERNAL', message: `${operationOf(request)}: internal error` });
    }
    if (err.code === 'RESOURCE_EXHAUSTED' && err.details.retryAfterSeconds) reply.header('retry-after', err.details.retryAfterSeconds);
    const details = Object.fromEntries(Object.entries(err.details).filter(([k]) => k !== 'retryAfterSeconds' && k !== 'dependency'));
    return reply.status(status).send({ error: err.code, message: err.message, ...(Object.keys(details).length > 0 ? { details } : {}) });
  }
  if (err.validation) {
    return reply.status(400).send({ error: 'INVALID_ARGUMENT', message: `${operationOf(request)}: ${err.message}` });
  }
  if (err.statusCode === 429) return reply.status(429).send(err);
  if (err.statusCode && err.statusCode < 500) {
    return reply.status(err.statusCode).send({ error: err.statusCode === 413 ? 'RESOURCE_EXHAUSTED' : 'INVALID_ARGUMENT', message: `${operationOf(request)}: ${err.message}` });
  }
  request.log.error({ err }, 'request failed with an unexpected error');
  return reply.status(500).send({ error: 'INTERNAL', message: `${operationOf(request)}: internal error` });
}

function operationOf(request: FastifyRequest): string {
  return request.routeOptions.config?.operation ?? `${request.method} ${request.routeOptions.url ?? request.url.split('?')[0]}`;
}
