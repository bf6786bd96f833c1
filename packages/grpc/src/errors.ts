import { Metadata, type ServiceError, type status } from '@grpc/grpc-js';
import { PkiError, errorCodeOfGrpcStatus, grpcStatusOf, isErrorCode } from '@pki/kit';

/** Trailer that carries the project's error code across the wire (Boulder does the same). */
export const ERROR_CODE_TRAILER = 'pki-error-code';

export function toServiceError(err: PkiError): Partial<ServiceError> {
  const metadata = new Metadata();
  metadata.set(ERROR_CODE_TRAILER, err.code);
  for (const [key, value] of Object.entries(err.details)) metadata.set(`pki-detail-${key.toLowerCase()}`, value);
  // kit's enum and grpc-js's carry the same protocol-defined numbers.
  return { code: grpcStatusOf(err.code) as number as status, details: err.message, metadata };
}

/** Turns a gRPC failure back into a PkiError, keeping the server's code and message. */
export function fromServiceError(err: ServiceError, operation: string): PkiError {
  const trailer = err.metadata?.get(ERROR_CODE_TRAILER)[0];
  const code = isErrorCode(trailer) ? trailer : errorCodeOfGrpcStatus(err.code);
  const details: Record<string, string> = {};
  for (const [key, value] of Object.entries(err.metadata?.getMap() ?? {})) {
    if (key.startsWith('pki-detail-')) details[key.slice('pki-detail-'.length)] = String(value);
  }
  return new PkiError(code, `${operation}: ${err.details || err.message}`, { cause: err, details });
}
