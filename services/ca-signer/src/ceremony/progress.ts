/**
 * What a ceremony tells its operator while it runs. PKCS#11 reports no progress for key
 * generation (C_GenerateKeyPair is one blocking call; RSA-4096 takes seconds to minutes, mostly
 * searching for primes), so long operations show the elapsed time instead, to show the tool has
 * not hung.
 */
export interface CeremonyProgress {
  /** A line for the operator (what is about to happen, what happened). */
  say(message: string): void;
  /** Shows `label` with the elapsed time until `work` settles, then how long it took. */
  during<T>(label: string, work: Promise<T>): Promise<T>;
}

/** Says nothing: tests and library callers that do not want output. */
export const silentProgress: CeremonyProgress = {
  say: () => undefined,
  during: (_label, work) => work,
};

/** Lines through a callback (the development stack's log); no ticking. */
export function callbackProgress(onMessage: (message: string) => void): CeremonyProgress {
  return {
    say: onMessage,
    async during(label, work) {
      const started = Date.now();
      onMessage(`${label}...`);
      const value = await work;
      onMessage(`${label}: done in ${seconds(Date.now() - started)}`);
      return value;
    },
  };
}

/**
 * Progress on a stream (stderr for the CLI, so stdout stays for results). On a terminal the
 * elapsed time ticks in place every second; otherwise (a log file, CI) a line every 10 seconds.
 */
export function streamProgress(stream: NodeJS.WritableStream & { isTTY?: boolean }, options: { tickMs?: number } = {}): CeremonyProgress {
  const tty = stream.isTTY === true;
  const tickMs = options.tickMs ?? (tty ? 1000 : 10_000);
  return {
    say: (message) => void stream.write(`${message}\n`),
    async during(label, work) {
      const started = Date.now();
      const spinner = ['|', '/', '-', '\\'];
      let ticks = 0;
      const show = () => {
        const elapsed = seconds(Date.now() - started);
        if (tty) stream.write(`\r${spinner[ticks++ % spinner.length]} ${label}... ${elapsed} elapsed`);
        else stream.write(`${label}... ${elapsed} elapsed\n`);
      };
      show();
      const timer = setInterval(show, tickMs);
      try {
        const value = await work;
        stream.write(`${tty ? '\r\x1b[K' : ''}${label}: done in ${seconds(Date.now() - started)}\n`);
        return value;
      } catch (err) {
        stream.write(`${tty ? '\r\x1b[K' : ''}${label}: failed after ${seconds(Date.now() - started)}\n`);
        throw err;
      } finally {
        clearInterval(timer);
      }
    },
  };
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
