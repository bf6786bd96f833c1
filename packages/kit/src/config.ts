import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { PkiError } from './errors';

/**
 * Service configuration: one strict schema per service, composed from the shared fragments
 * below. Unknown keys are rejected (a typo must not silently fall back to a default), secrets
 * are never inline but read from files named by `*File` keys, and a bad config stops the
 * service before it opens a port, with a message naming the key.
 */

/** A secret read from a file at load time; the config itself only holds the path. */
export const secretFile = z
  .string()
  .min(1)
  .describe('path to a file holding a secret')
  .transform((file, ctx) => {
    try {
      return new Secret(readFileSync(file, 'utf8').trim());
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `cannot read secret file ${file}: ${(err as NodeJS.ErrnoException).code ?? err}` });
      return z.NEVER;
    }
  });

/** Wraps a secret so that logging or serialising a config never prints it. */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toJSON(): string {
    return '[secret]';
  }
  toString(): string {
    return '[secret]';
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return '[secret]';
  }
}

export const logConfig = z.strictObject({
  level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export const httpListenConfig = z.strictObject({
  host: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(0).max(65535),
});

/** The operational endpoint every service has: /metrics, /livez, /readyz. */
export const opsConfig = httpListenConfig;

export const databaseConfig = z.strictObject({
  url: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL').optional(),
  /** Alternative to `url` for production: the URL (with its password) lives in a secret file. */
  urlFile: secretFile.optional(),
  schema: z.string().regex(/^[a-z_][a-z0-9_]*$/, 'must be a lower-case SQL identifier'),
  maxConnections: z.number().int().min(1).max(200).default(10),
  statementTimeoutMs: z.number().int().min(100).default(15_000),
}).refine((c) => (c.url === undefined) !== (c.urlFile === undefined), { message: 'set exactly one of url and urlFile' });

/** mTLS material of this service's identity, issued by the internal service CA (never the citizen CA). */
export const tlsIdentityConfig = z.strictObject({
  caFile: z.string().min(1),
  certFile: z.string().min(1),
  keyFile: z.string().min(1),
});

export const grpcServerConfig = z.strictObject({
  host: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(0).max(65535),
  tls: tlsIdentityConfig,
});

export const grpcClientConfig = z.strictObject({
  /** host:port of the server */
  address: z.string().regex(/^[^:]+:\d+$/, 'must be host:port'),
  /** The identity the server's certificate must carry (spiffe://pki.internal/<service>). */
  serverIdentity: z.string().min(1),
  deadlineMs: z.number().int().min(10).default(10_000),
});

export const eventTransportConfig = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('kafka'), brokers: z.array(z.string().min(1)).min(1), clientId: z.string().min(1) }),
  z.strictObject({ type: z.literal('postgres') }),
]);

function describeIssue(issue: z.core.$ZodIssue): string {
  const at = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((k) => `unknown key '${at ? `${at}.` : ''}${k}'`).join('; ');
  }
  if (issue.code === 'invalid_type' && (issue as { input?: unknown }).input === undefined) {
    return `missing key '${at}'`;
  }
  return `'${at || '(root)'}': ${issue.message}`;
}

/** Parses an already-loaded object against a schema, or throws a PkiError naming every bad key. */
export function parseConfig<S extends z.ZodType>(schema: S, raw: unknown, source = '(in memory)'): z.output<S> {
  const result = schema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map(describeIssue);
    throw new PkiError('INVALID_ARGUMENT', `load config ${source}: ${problems.join('; ')}`);
  }
  return result.data;
}

/**
 * Loads a JSON config file. Relative paths inside it (`*File` keys) are resolved against the
 * working directory, as operators expect from a command line.
 */
export function loadConfigFile<S extends z.ZodType>(schema: S, file: string): z.output<S> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new PkiError('INVALID_ARGUMENT', `load config ${file}: cannot read file (${(err as NodeJS.ErrnoException).code})`, { cause: err });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new PkiError('INVALID_ARGUMENT', `load config ${file}: not valid JSON (${(err as Error).message})`, { cause: err });
  }
  return parseConfig(schema, raw, path.basename(file));
}

export { z };

/** The part every service's config has: logging, the ops endpoint and its database. */
export const baseServiceConfig = z.strictObject({
  log: logConfig,
  ops: opsConfig,
  database: databaseConfig,
});
