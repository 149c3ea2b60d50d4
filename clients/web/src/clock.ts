/**
 * Time, injected. Every timer of the library goes through a {@link Clock}, so tests can run the
 * protocol's timings on a {@link FakeClock} without sleeping on real time.
 */

/** An opaque handle of a scheduled callback. */
export type TimerHandle = number;

/** Wall-clock time and timers. */
export interface Clock {
  /** Milliseconds since the Unix epoch (UTC), as `Date.now()`. */
  now(): number;
  /** Runs `fn` once, `ms` milliseconds from now. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Cancels a callback scheduled with {@link Clock.setTimeout}; unknown handles are ignored. */
  clearTimeout(handle: TimerHandle): void;
}

/** The real clock: `Date.now()` and the global timers. */
export class SystemClock implements Clock {
  private readonly timers = new Map<TimerHandle, ReturnType<typeof globalThis.setTimeout>>();
  private next = 1;

  now(): number {
    return Date.now();
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const handle = this.next++;
    const t = globalThis.setTimeout(() => {
      this.timers.delete(handle);
      fn();
    }, Math.max(0, ms));
    this.timers.set(handle, t);
    return handle;
  }

  clearTimeout(handle: TimerHandle): void {
    const t = this.timers.get(handle);
    if (t !== undefined) {
      globalThis.clearTimeout(t);
      this.timers.delete(handle);
    }
  }
}

interface FakeTimer {
  handle: TimerHandle;
  at: number;
  order: number;
  fn: () => void;
}

/**
 * A clock that moves only when told to. Timers run in order of their due time (ties in the
 * order they were scheduled), each with {@link FakeClock.now} set to its due time; timers
 * scheduled while advancing run too if they fall due within the advance.
 */
export class FakeClock implements Clock {
  private current: number;
  private timers: FakeTimer[] = [];
  private next = 1;

  /** Starts at `startMs` (Unix milliseconds). */
  constructor(startMs = 1_732_350_000_000) {
    this.current = startMs;
  }

  now(): number {
    return this.current;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const handle = this.next++;
    this.timers.push({ handle, at: this.current + Math.max(0, ms), order: handle, fn });
    return handle;
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers = this.timers.filter((t) => t.handle !== handle);
  }

  /** How many timers are scheduled. */
  pending(): number {
    return this.timers.length;
  }

  /** The due time of the earliest timer, if any. */
  nextAt(): number | undefined {
    let best: number | undefined;
    for (const t of this.timers) if (best === undefined || t.at < best) best = t.at;
    return best;
  }

  /** Moves time on by `ms`, running every timer that falls due. */
  advance(ms: number): void {
    this.advanceTo(this.current + ms);
  }

  /** Moves time on to `at`, running every timer due by then. */
  advanceTo(at: number): void {
    for (;;) {
      let due: FakeTimer | undefined;
      for (const t of this.timers) {
        if (t.at <= at && (due === undefined || t.at < due.at || (t.at === due.at && t.order < due.order))) {
          due = t;
        }
      }
      if (due === undefined) break;
      const run = due;
      this.timers = this.timers.filter((t) => t !== run);
      this.current = Math.max(this.current, run.at);
      run.fn();
    }
    this.current = Math.max(this.current, at);
  }
}
