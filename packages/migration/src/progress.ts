/**
 * A progress line on stderr with rate and time left. On a terminal it redraws one line; in a log
 * (not a TTY) it writes a plain line every few seconds instead of a stream of carriage returns.
 */
export interface Progress {
  start(phase: string, total: number): void;
  tick(n?: number): void;
  done(): void;
}

export function stderrProgress(stream: NodeJS.WriteStream = process.stderr, now: () => number = Date.now, isTTY = stream.isTTY === true): Progress {
  let phase = '';
  let total = 0;
  let count = 0;
  let started = 0;
  let last = 0;
  const tty = isTTY;
  const render = (final: boolean) => {
    const elapsed = (now() - started) / 1000;
    const rate = elapsed > 0 ? count / elapsed : 0;
    const left = rate > 0 && total > count ? (total - count) / rate : 0;
    const fraction = total > 0 ? Math.min(1, count / total) : 1;
    const text = `${phase}: ${count.toLocaleString('en')}/${total.toLocaleString('en')} ${(fraction * 100).toFixed(1)}%  ${Math.round(rate).toLocaleString('en')}/s  ${final ? `done in ${formatSeconds(elapsed)}` : `${formatSeconds(left)} left`}  ${memory()}`;
    if (tty) {
      const width = 24;
      const filled = Math.round(fraction * width);
      stream.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}\x1b[K${final ? '\n' : ''}`);
    } else {
      stream.write(`${text}\n`);
    }
  };
  return {
    start(p, t) {
      phase = p;
      total = t;
      count = 0;
      started = now();
      last = 0;
    },
    tick(n = 1) {
      count += n;
      const t = now();
      if (t - last >= (tty ? 200 : 5000)) {
        last = t;
        render(false);
      }
    },
    done() {
      render(true);
    },
  };
}

export const silentProgress: Progress = { start: () => undefined, tick: () => undefined, done: () => undefined };

/** What the operator watches against the host's memory budget: the process (worker threads included) and this thread's heap. */
function memory(): string {
  const m = process.memoryUsage();
  const mb = (n: number) => Math.round(n / 1048576);
  return `rss ${mb(m.rss)} MB (heap ${mb(m.heapUsed)}/${mb(m.heapTotal)}, buffers ${mb(m.arrayBuffers)})`;
}

function formatSeconds(s: number): string {
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${s.toFixed(1)}s`;
}
