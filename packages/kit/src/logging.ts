import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * Fields that carry personal data or secrets anywhere in a log object. National ID numbers,
 * names, birth dates, PINs and subscriber codes never reach a log line (architecture.md,
 * "Security lines"); pino removes them before serialisation, so a careless `log.info(req.body)`
 * cannot leak them either.
 */
export const REDACTED_FIELDS = [
  'nationalId', 'national_id', 'name', 'fullName', 'birthDate', 'birth_date', 'pin', 'newPin', 'puk',
  'subscriberCode', 'subscriber_code', 'password', 'secret', 'privateKey', 'private_key', 'authorization',
  'email', 'phone', 'address',
];

function redactPaths(): string[] {
  const paths: string[] = [];
  for (const f of REDACTED_FIELDS) paths.push(f, `*.${f}`, `*.*.${f}`, `*[*].${f}`);
  paths.push('req.headers.authorization', 'req.headers.cookie');
  return paths;
}

export interface LoggerOptions {
  service: string;
  level?: pino.LevelWithSilent;
  /** Where lines go; defaults to stdout. Tests pass a stream to read what was logged. */
  destination?: pino.DestinationStream;
}

export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: options.service },
      redact: { paths: redactPaths(), censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination,
  );
}
