import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import { PkiError, httpStatusOf, type Logger } from '@pki/kit';
import { ENROLMENT_PROFILES, certificatePem, enrolCertificate, findCertificate, type EnrolmentDeps, type IssuedCertificate } from '../domain/enrolment';

export interface HttpDeps extends EnrolmentDeps {
  /** The CA chain returned with every certificate (issuing CA first, root last), PEM. */
  chain: () => Promise<string[]>;
  /** How long an enrolment may take end to end, including the HSM. */
  requestDeadlineMs: number;
  logger: Logger;
}

const errorBody = {
  type: 'object',
  properties: { error: { type: 'string' }, message: { type: 'string' } },
  required: ['error', 'message'],
} as const;

// Response schemas double as an allow-list of fields: nothing else (no personal data) can leave.
const certificateBody = {
  type: 'object',
  properties: {
    serialHex: { type: 'string' },
    issuerKeyId: { type: 'string' },
    profile: { type: 'string' },
    status: { type: 'string', enum: ['VALID', 'SUSPENDED', 'REVOKED'] },
    notBefore: { type: 'string', format: 'date-time' },
    notAfter: { type: 'string', format: 'date-time' },
    certificate: { type: 'string', description: 'PEM' },
    chain: { type: 'array', items: { type: 'string' }, description: 'PEM, issuing CA first' },
  },
  required: ['serialHex', 'issuerKeyId', 'profile', 'status', 'notBefore', 'notAfter', 'certificate'],
} as const;

/**
 * ra's REST API. Built by a function of its dependencies so that tests run it with
 * `app.inject()` against a real database, and main.ts only listens.
 */
export function buildHttpApp(deps: HttpDeps): FastifyInstance {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    bodyLimit: 64 * 1024,
    // Fastify's default silently strips unknown properties; a request carrying fields we do not
    // expect (say, a national ID) must be refused, not half-processed.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  });

  // Graceful shutdown: requests still in flight when close() begins finish normally, but their
  // responses carry `Connection: close`, so keep-alive clients do not hold the server open.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', async (_request, reply, payload) => {
    if (closing) reply.header('connection', 'close');
    return payload;
  });

  app.setErrorHandler((err: FastifyError | PkiError, request, reply) => {
    if (err instanceof PkiError) {
      if (err.code === 'INTERNAL') request.log.error({ err }, 'request failed');
      return reply.status(httpStatusOf(err.code)).send({ error: err.code, message: err.message });
    }
    if (err.validation) {
      return reply.status(400).send({ error: 'INVALID_ARGUMENT', message: `${request.method} ${request.routeOptions.url}: ${err.message}` });
    }
    if (err.statusCode && err.statusCode < 500) {
      return reply.status(err.statusCode).send({ error: 'INVALID_ARGUMENT', message: err.message });
    }
    request.log.error({ err }, 'request failed');
    return reply.status(500).send({ error: 'INTERNAL', message: 'internal error' });
  });
  app.setNotFoundHandler((request, reply) => reply.status(404).send({ error: 'NOT_FOUND', message: `no route ${request.method} ${request.url}` }));

  const present = async (c: IssuedCertificate, withChain: boolean) => ({
    serialHex: c.serialHex,
    issuerKeyId: c.issuerKeyId,
    profile: c.profile,
    status: c.status,
    notBefore: c.notBefore.toISOString(),
    notAfter: c.notAfter.toISOString(),
    certificate: certificatePem(c.certificateDer),
    ...(withChain ? { chain: await deps.chain() } : {}),
  });

  // Enrol one certificate for a key pair generated on the card, proven by a PKCS#10 request.
  app.post<{ Body: { csr: string; profile: (typeof ENROLMENT_PROFILES)[number] }; Headers: { 'idempotency-key'?: string } }>(
    '/v1/enrolments',
    {
      schema: {
        headers: { type: 'object', properties: { 'idempotency-key': { type: 'string', minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9._:/-]+$' } } },
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['csr', 'profile'],
          properties: {
            csr: { type: 'string', minLength: 1, maxLength: 16384, description: 'PKCS#10 certificate request, PEM' },
            profile: { type: 'string', enum: [...ENROLMENT_PROFILES] },
          },
        },
        response: { 201: certificateBody, 400: errorBody, 409: errorBody, 503: errorBody },
      },
    },
    async (request, reply) => {
      const certificate = await enrolCertificate(deps, {
        csr: request.body.csr,
        profile: request.body.profile,
        idempotencyKey: request.headers['idempotency-key'],
        deadline: new Date(Date.now() + deps.requestDeadlineMs),
      });
      return reply.status(201).send(await present(certificate, true));
    },
  );

  app.get<{ Params: { serial: string } }>(
    '/v1/certificates/:serial',
    {
      schema: {
        params: { type: 'object', properties: { serial: { type: 'string', maxLength: 64 } }, required: ['serial'] },
        response: { 200: certificateBody, 400: errorBody, 404: errorBody },
      },
    },
    async (request) => present(await findCertificate(deps.pool, request.params.serial.toLowerCase()), false),
  );

  return app;
}
