import { status as GrpcStatus } from './grpc-status';

/**
 * The error codes every service speaks. Each maps once to an HTTP status and a gRPC status
 * (see {@link httpStatusOf} and {@link grpcStatusOf}); transports never invent their own.
 */
export const ErrorCodes = [
  'INVALID_ARGUMENT', // the request is malformed or breaks a rule; retrying it unchanged will fail again
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'CONFLICT', // e.g. an idempotency key reused with a different request
  'FAILED_PRECONDITION', // the system is not in a state that allows the operation
  'UNAUTHENTICATED',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'UNAVAILABLE', // a dependency (HSM, database, broker) is down; retry later
  'DEADLINE_EXCEEDED',
  'INTERNAL',
] as const;
export type ErrorCode = (typeof ErrorCodes)[number];

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ErrorCodes as readonly string[]).includes(value);
}

/**
 * The one typed error of the project. Messages start with the operation
 * ("issue certificate: public key is RSA-1024, profile requires RSA-2048") so that a log line or
 * an API answer says what failed without a stack trace. Internal failures wrap their cause.
 */
export class PkiError extends Error {
  override readonly name = 'PkiError';
  readonly code: ErrorCode;
  /** Machine-readable details safe to show to the caller (never personal data). */
  readonly details: Readonly<Record<string, string>>;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: Record<string, string> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details ?? {};
  }

  /** Wraps any thrown value: a PkiError passes through, anything else becomes INTERNAL. */
  static from(err: unknown, operation: string): PkiError {
    if (err instanceof PkiError) return err;
    const reason = err instanceof Error ? err.message : String(err);
    return new PkiError('INTERNAL', `${operation}: ${reason}`, { cause: err });
  }
}

const httpStatus: Record<ErrorCode, number> = {
  INVALID_ARGUMENT: 400,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  CONFLICT: 409,
  FAILED_PRECONDITION: 412,
  UNAUTHENTICATED: 401,
  PERMISSION_DENIED: 403,
  RESOURCE_EXHAUSTED: 429,
  UNAVAILABLE: 503,
  DEADLINE_EXCEEDED: 504,
  INTERNAL: 500,
};

const grpcStatus: Record<ErrorCode, GrpcStatus> = {
  INVALID_ARGUMENT: GrpcStatus.INVALID_ARGUMENT,
  NOT_FOUND: GrpcStatus.NOT_FOUND,
  ALREADY_EXISTS: GrpcStatus.ALREADY_EXISTS,
  CONFLICT: GrpcStatus.ABORTED,
  FAILED_PRECONDITION: GrpcStatus.FAILED_PRECONDITION,
  UNAUTHENTICATED: GrpcStatus.UNAUTHENTICATED,
  PERMISSION_DENIED: GrpcStatus.PERMISSION_DENIED,
  RESOURCE_EXHAUSTED: GrpcStatus.RESOURCE_EXHAUSTED,
  UNAVAILABLE: GrpcStatus.UNAVAILABLE,
  DEADLINE_EXCEEDED: GrpcStatus.DEADLINE_EXCEEDED,
  INTERNAL: GrpcStatus.INTERNAL,
};

export function httpStatusOf(code: ErrorCode): number {
  return httpStatus[code];
}

export function grpcStatusOf(code: ErrorCode): GrpcStatus {
  return grpcStatus[code];
}

/** The reverse mapping, for a gRPC error that carries no project error code in its trailers. */
export function errorCodeOfGrpcStatus(code: number): ErrorCode {
  for (const [key, value] of Object.entries(grpcStatus)) if (value === code) return key as ErrorCode;
  return code === GrpcStatus.CANCELLED ? 'UNAVAILABLE' : 'INTERNAL';
}
