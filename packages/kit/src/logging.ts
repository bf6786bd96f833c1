import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * Personal data and secrets never reach a log line (architecture.md, "Security lines"): national
 * ID numbers, names, birth dates, PINs, subscriber codes, keys and passwords. Two rules, applied
 * to everything a log call receives (the object, the message and its arguments, a child's
 * bindings, errors and their causes), at any depth:
 *
 * 1. A field whose name says it holds such data has its value replaced, whatever the value is.
 *    Names are compared without case, `_` or `-` (`nationalId`, `national_id`, `NATIONAL-ID`):
 *    `REDACTED_FIELDS` must match exactly, `REDACTED_FIELD_PARTS` anywhere in the name
 *    (`applicantNationalId`, `dateOfBirth`).
 * 2. Text anywhere (a message, a string value, an error message or stack) has what looks like a
 *    national ID or resident certificate number replaced, and the value of a `CN=` in a
 *    distinguished name (the citizen's name in a certificate subject).
 *
 * Cost: the common line (a few short fields, nothing personal) allocates nothing: one cached
 * lookup per field name and one precompiled regular-expression test per string. An object is
 * copied only where something is replaced, so the caller's objects are never modified.
 * docs/benchmarks.md ("Logging") compares it with pino's own path redaction.
 */
export const REDACTED_FIELDS: readonly string[] = [
  'name', 'cn', 'commonname', 'subject', 'subjectdn', 'givenname', 'surname', 'familyname', 'fullname',
  'pin', 'newpin', 'oldpin', 'userpin', 'sopin', 'puk',
  'email', 'emailaddress', 'phone', 'mobile', 'address',
  'authorization', 'cookie', 'setcookie', 'apikey',
];
export const REDACTED_FIELD_PARTS: readonly string[] = [
  'nationalid', 'idnumber', 'birthdate', 'dateofbirth', 'birthday', 'subscribercode',
  'password', 'passphrase', 'secret', 'privatekey',
];

export const REDACTED = '[redacted]';

// A national ID (a letter, 1/2 for citizens or 8/9 for resident numbers, 8 digits), an old
// resident certificate number (two letters A-D, 8 digits), or a DN's common name. One regular
// expression, so that the common case (no match) is a single scan.
const PERSONAL_TEXT = /(?<![A-Za-z0-9])[A-Z][1289A-D]\d{8}(?!\d)|\b(?:CN|commonName)\s*=\s*(?:"[^"]*"|[^,+/\n]+)/g;
// The same, looser and without look-arounds: about twice as fast on text that has none of it (the
// common case); a hit is confirmed by the exact expression above.
const PERSONAL_TEXT_HINT = /[A-Z][1289A-D]\d{8}|CN\s*=|commonName/;

/** Replaces personal data found in free text. */
export function redactText(text: string): string {
  if (text.length < 4 || !PERSONAL_TEXT_HINT.test(text)) return text;
  return text.replace(PERSONAL_TEXT, (match) => {
    const dn = /^(CN|commonName)(\s*=\s*)/.exec(match);
    return dn ? `${dn[1]}${dn[2]}${REDACTED}` : REDACTED;
  });
}

// Field names seen so far and whether to redact them. Log field names come from code, so the set
// stays small; the cap keeps an object keyed by data (serials, ids) from growing it without end.
const fieldDecisions = new Map<string, boolean>();
const FIELD_CACHE_LIMIT = 10_000;
const exactFields = new Set(REDACTED_FIELDS);

export function isRedactedField(name: string): boolean {
  let decision = fieldDecisions.get(name);
  if (decision === undefined) {
    const normal = name.toLowerCase().replace(/[-_\s.]/g, '');
    decision = exactFields.has(normal) || REDACTED_FIELD_PARTS.some((part) => normal.includes(part));
    if (fieldDecisions.size < FIELD_CACHE_LIMIT) fieldDecisions.set(name, decision);
  }
  return decision;
}

// Objects on the path from the root of the value being redacted: a cycle is left to pino's own
// safe stringify. A stack, not a set: the paths are short and this allocates nothing.
const ancestors: object[] = [];

/**
 * `value` with personal data replaced (rules above), at any depth. Returns `value` itself when
 * nothing needed replacing; otherwise a copy of only the containers on the way to what was
 * replaced. Errors stay errors (same prototype, so serializers treat them as before).
 */
export function redactPersonalData<T>(value: T): T {
  return redact(value) as T;
}

function redact(value: unknown): unknown {
  if (typeof value === 'string') return redactText(value);
  if (typeof value !== 'object' || value === null) return value;
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer || value instanceof Date) return value;
  if (ancestors.includes(value)) return value;
  ancestors.push(value);
  try {
    if (Array.isArray(value)) return redactArray(value);
    if (value instanceof Error) return redactError(value);
    // What JSON.stringify would write is what gets logged.
    const toJSON = (value as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') {
      const json: unknown = toJSON.call(value);
      const redacted = redact(json);
      return redacted === json ? value : redacted;
    }
    return redactObject(value as Record<string, unknown>);
  } finally {
    ancestors.pop();
  }
}

function redactArray(items: unknown[]): unknown[] {
  let copy: unknown[] | undefined;
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    const redacted = redact(item);
    if (redacted !== item) (copy ??= items.slice())[i] = redacted;
  }
  return copy ?? items;
}

function redactObject(object: Record<string, unknown>): Record<string, unknown> {
  let copy: Record<string, unknown> | undefined;
  for (const key in object) {
    if (!Object.hasOwn(object, key)) continue;
    const item = object[key];
    const redacted = isRedactedField(key) ? (item === undefined || item === null ? item : REDACTED) : redact(item);
    if (redacted !== item) (copy ??= { ...object })[key] = redacted;
  }
  return copy ?? object;
}

function redactError(error: Error): Error {
  // Own properties, enumerable or not (message, stack, cause, a driver's detail...). `stack` is an
  // accessor on V8 errors: read it through the original, and give the copy plain values.
  const keys = Object.getOwnPropertyNames(error);
  let changed: Map<string, unknown> | undefined;
  for (const key of keys) {
    const item: unknown = (error as unknown as Record<string, unknown>)[key];
    const redacted = isRedactedField(key) && item !== undefined && item !== null ? REDACTED : redact(item);
    if (redacted !== item) (changed ??= new Map()).set(key, redacted);
  }
  if (!changed) return error;
  const copy = Object.create(Object.getPrototypeOf(error)) as Error;
  for (const key of keys) {
    const descriptor = Object.getOwnPropertyDescriptor(error, key)!;
    const value = changed.has(key) ? changed.get(key) : (error as unknown as Record<string, unknown>)[key];
    Object.defineProperty(copy, key, { value, writable: true, configurable: true, enumerable: descriptor.enumerable ?? false });
  }
  return copy;
}

export interface LoggerOptions {
  service: string;
  level?: pino.LevelWithSilent;
  /** Where lines go; defaults to stdout. Tests pass a stream to read what was logged. */
  destination?: pino.DestinationStream;
}

const { serializersSym } = pino.symbols;
const REDACTING = Symbol('pki.redacting-serializer');
type Serializer = ((value: unknown) => unknown) & { [REDACTING]?: true };

/** A serializer whose output is redacted (the value it reduces, e.g. a request, is not walked). */
function redactingSerializer(serializer: Serializer): Serializer {
  if (serializer[REDACTING]) return serializer;
  const wrapped: Serializer = (value) => redact(serializer(value));
  wrapped[REDACTING] = true;
  return wrapped;
}

/** `err` is left as it is: the raw error is redacted before any serializer sees it (see below). */
function redactingSerializers(serializers: Record<string, Serializer> | undefined): Record<string, Serializer> | undefined {
  if (!serializers) return serializers;
  return Object.fromEntries(Object.entries(serializers).map(([key, serializer]) => [key, key === 'err' ? serializer : redactingSerializer(serializer)]));
}

/**
 * The object a log call merges into the line. A field that has a serializer (`req` and `res`
 * under fastify) is left to it: the serializer reduces the value (a request to its method
 * and URL) and its output is redacted, rather than walking a whole request or socket here.
 */
function redactMergingObject(object: Record<string, unknown>, serializers: Record<string, unknown>): Record<string, unknown> {
  let copy: Record<string, unknown> | undefined;
  ancestors.push(object);
  try {
    for (const key in object) {
      // `err` is walked anyway: pino takes the line's message from the raw error when none is given.
      if (!Object.hasOwn(object, key) || (serializers[key] !== undefined && key !== 'err')) continue;
      const item = object[key];
      const redacted = isRedactedField(key) ? (item === undefined || item === null ? item : REDACTED) : redact(item);
      if (redacted !== item) (copy ??= { ...object })[key] = redacted;
    }
  } finally {
    ancestors.pop();
  }
  return copy ?? object;
}

export function createLogger(options: LoggerOptions): Logger {
  const logger = pino(
    {
      level: options.level ?? 'info',
      base: { service: options.service },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      hooks: {
        // Runs only for enabled levels, before pino formats the message and serialises the object.
        logMethod(args, method) {
          const serializers = (this as unknown as Record<symbol, Record<string, unknown>>)[serializersSym]!;
          let redactedArgs: unknown[] | undefined;
          for (let i = 0; i < args.length; i++) {
            const arg: unknown = args[i];
            let redacted: unknown;
            if (i === 0 && typeof arg === 'object' && arg !== null && !(arg instanceof Error) && !Array.isArray(arg) && typeof (arg as { toJSON?: unknown }).toJSON !== 'function') {
              redacted = redactMergingObject(arg as Record<string, unknown>, serializers);
            } else redacted = redact(arg);
            if (redacted !== arg) (redactedArgs ??= [...args])[i] = redacted;
          }
          return method.apply(this, (redactedArgs ?? args) as Parameters<typeof method>);
        },
      },
    },
    options.destination,
  );
  // A child's bindings are serialised once, when it is made: redact them there, and make the
  // serializers it adds redact their output. Children inherit `child` from this logger, so
  // grandchildren come through here as well.
  type MakeChild = (this: Logger, bindings: pino.Bindings, options?: pino.ChildLoggerOptions) => Logger;
  const child = logger.child as unknown as MakeChild;
  const makeChild: MakeChild = function (bindings, childOptions) {
    const options = childOptions?.serializers ? { ...childOptions, serializers: redactingSerializers(childOptions.serializers as Record<string, Serializer>) } : childOptions;
    return child.call(this, redactPersonalData(bindings), options);
  };
  logger.child = makeChild as unknown as Logger['child'];
  return logger;
}
