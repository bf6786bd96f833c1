import type { Clock, Logger } from '@pki/kit';
import { CALLER_KINDS, type TallySnapshot } from '../http/usage-tally';
import type { UsagePublishingPort, UsageWindow } from '../ports/usage-publishing';

export interface UsageMeterOptions {
  /** responder_instance: unique per process start, so a restart never reuses a window sequence. */
  instance: string;
  windowMs: number;
  /** Asks the serving threads for their counts; they arrive through `add` (late ones too). */
  collect: (timeoutMs: number) => Promise<void>;
  sink: UsagePublishingPort;
  clock: Clock;
  logger: Logger;
  onPublished?: (window: UsageWindow) => void;
  onFailed?: () => void;
}

/**
 * Metering windows of this responder instance (issue 13). The serving threads count; this, on the
 * main thread, merges their tallies into the open window, closes it every `windowMs`, numbers it
 * (1, 2, 3... per instance) and hands it to the sink (the outbox). A window the sink refuses
 * (PostgreSQL down) is kept, in order, and offered again at the next tick: nothing counted is
 * dropped while the process lives, and a window is recorded at least once with the same
 * (instance, sequence). On shutdown, after the threads have stopped and handed over their last
 * counts, the open window is closed and recorded.
 */
export class UsageMeter {
  readonly #options: UsageMeterOptions;
  readonly #open: [Map<string, number>, Map<string, number>, Map<string, number>] = [new Map(), new Map(), new Map()];
  #anonymous = 0;
  #overflow = 0;
  #start: Date;
  #sequence = 0;
  readonly #pending: UsageWindow[] = [];
  #timer: NodeJS.Timeout | undefined;
  #work: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(options: UsageMeterOptions) {
    this.#options = options;
    this.#start = options.clock.now();
  }

  get instance(): string {
    return this.#options.instance;
  }

  /** Windows closed but not yet recorded (the sink refused them so far). */
  get pending(): number {
    return this.#pending.length;
  }

  /** Merges one thread's counts into the open window. */
  add(tally: TallySnapshot): void {
    for (const [kind, key, requests] of tally.entries) {
      const counts = this.#open[kind];
      counts.set(key, (counts.get(key) ?? 0) + requests);
    }
    this.#anonymous += tally.anonymous;
    this.#overflow += tally.overflow;
  }

  start(): void {
    const tick = () => {
      if (this.#stopped) return;
      this.#timer = setTimeout(() => void this.closeWindow().then(tick, tick), this.#options.windowMs);
      this.#timer.unref?.();
    };
    tick();
  }

  /** Closes the open window now and records what is pending (what the timer does every `windowMs`). */
  closeWindow(): Promise<void> {
    this.#work = this.#work.then(() => this.#closeWindow(true));
    return this.#work;
  }

  /**
   * Stops the timer and records the open window with whatever the threads handed over (call it
   * after the threads have stopped: their last counts are then in). One attempt at recording
   * what is pending; what still fails is logged with its counts.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#work;
    await this.#closeWindow(false);
    if (this.#pending.length > 0) {
      this.#options.logger.error({ windows: this.#pending.map((w) => ({ sequence: w.sequence, anonymous: w.anonymous, entries: w.entries.length })) }, 'ocsp: usage windows could not be recorded before shutdown; their counts are lost');
    }
  }

  async #closeWindow(collect: boolean): Promise<void> {
    if (collect) {
      try {
        await this.#options.collect(Math.min(5_000, Math.max(100, this.#options.windowMs / 2)));
      } catch (err) {
        this.#options.logger.warn({ err }, 'ocsp: collecting usage counts failed; they go to the next window');
      }
    }
    const end = this.#options.clock.now();
    const window: UsageWindow = { instance: this.#options.instance, sequence: ++this.#sequence, start: this.#start, end, entries: [], anonymous: this.#anonymous, overflow: this.#overflow };
    this.#open.forEach((counts, kind) => {
      for (const [callerKey, requests] of counts) window.entries.push({ kind: CALLER_KINDS[kind]!, callerKey, requests });
      counts.clear();
    });
    this.#anonymous = 0;
    this.#overflow = 0;
    this.#start = end;
    this.#pending.push(window);
    await this.#publishPending();
  }

  async #publishPending(): Promise<void> {
    while (this.#pending.length > 0) {
      const window = this.#pending[0]!;
      try {
        await this.#options.sink.publish(window);
      } catch (err) {
        this.#options.onFailed?.();
        this.#options.logger.warn({ err, sequence: window.sequence, pending: this.#pending.length }, 'ocsp: recording a usage window failed; it is offered again at the next window');
        return;
      }
      this.#pending.shift();
      this.#options.onPublished?.(window);
    }
  }
}
