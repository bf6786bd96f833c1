import { appendFileSync, closeSync, openSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import { inspect } from 'node:util';

/* eslint-disable no-console -- this is the operator's terminal, not a service log */

/**
 * A failure the person running `make up` can act on. The terminal shows one line, `make up:
 * <message>. <todo>`, and names the log holding the details (the cause, stack traces, server
 * output); never a stack trace on the terminal.
 */
export class UpError extends Error {
  constructor(
    message: string,
    readonly todo: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface Terminal {
  /** A line for the person, also appended to the run's log with the time. */
  say(line: string): void;
  /** The one line a failure gets on the terminal; the detail goes to the run's log. */
  fail(err: unknown): void;
  /** A path as the person would type it: relative to the clone when inside it. */
  show(file: string): string;
  readonly logFile: string;
}

export function createTerminal(root: string, logFile: string): Terminal {
  const show = (file: string) => {
    const relative = path.relative(root, file);
    return relative && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : file;
  };
  const record = (text: string) => {
    try {
      appendFileSync(logFile, `${new Date().toISOString()} ${text}\n`, { mode: 0o600 });
    } catch {
      // The log folder may be what is broken; the terminal line still goes out.
    }
  };
  return {
    logFile,
    show,
    say(line) {
      console.log(line);
      record(line.replace(/^\n+/, ''));
    },
    fail(err) {
      const line =
        err instanceof UpError
          ? `make up: ${err.message}. ${err.todo} (details: ${show(logFile)})`
          : `make up failed: ${(err as Error)?.message ?? String(err)} (details: ${show(logFile)})`;
      console.error(line);
      record(`${line}\n${inspect(err, { depth: 6 })}`);
    },
  };
}

/**
 * The last thing worth showing from a process's log: the message of its last fatal or error line
 * (the services log JSON lines, PostgreSQL "FATAL:  ..." text), else its last line. Reads only the
 * end of the file.
 */
export function lastLogMessage(file: string, maxLength = 300): string | undefined {
  let text: string;
  try {
    const size = statSync(file).size;
    const length = Math.min(size, 64 * 1024);
    const buffer = Buffer.alloc(length);
    const fd = openSync(file, 'r');
    try {
      readSync(fd, buffer, 0, length, size - length);
    } finally {
      closeSync(fd);
    }
    text = buffer.toString('utf8');
  } catch {
    return undefined;
  }
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  const clip = (s: string) => (s.length > maxLength ? `${s.slice(0, maxLength)}...` : s);
  for (const line of [...lines].reverse()) {
    if (line.startsWith('{')) {
      try {
        const entry = JSON.parse(line) as { level?: string; msg?: string; err?: { message?: string } };
        if (entry.level === 'fatal' || entry.level === 'error') {
          const detail = entry.err?.message && !entry.msg?.includes(entry.err.message) ? `: ${entry.err.message}` : '';
          return clip(`${entry.msg ?? ''}${detail}`);
        }
      } catch {
        // not JSON after all
      }
      continue;
    }
    const pg = /\b(FATAL|PANIC):\s+(.*)$/.exec(line);
    if (pg) return clip(`${pg[1]}: ${pg[2]}`);
  }
  const last = lines.at(-1);
  return last === undefined ? undefined : clip(last);
}
