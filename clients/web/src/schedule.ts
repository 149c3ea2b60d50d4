/**
 * The retry schedules of the signaling link, as pure functions (PROTOCOL "WebSocket
 * transport"/"Reconnecting"): reconnect attempts at 0, 3, 9, 27, 60 and 120 s from the start
 * of a series, then every 60 s; token fetch attempts at 0, 1 and 4 s from the start of a fetch;
 * each plus a uniform jitter below 2 s; each fetch or connection attempt bounded by 15 s.
 */

import type { Random } from "./random.js";

/** The schedules as data; {@link DEFAULT_SCHEDULE} is the documented one. */
export interface RetrySchedule {
  /** Offsets (ms) of token fetch attempts from the start of a fetch. */
  readonly tokenFetchAtMs: readonly number[];
  /** Offsets (ms) of reconnect attempts from the start of a series. */
  readonly reconnectAtMs: readonly number[];
  /** Spacing (ms) of reconnect attempts after the listed ones. */
  readonly reconnectEveryMs: number;
  /** Upper bound (exclusive, ms) of the jitter added to every attempt; 0 for none. */
  readonly jitterMs: number;
  /** Whether the very first connection attempt (and its first token fetch try) is jittered. */
  readonly firstAttemptJitter: boolean;
  /** Longest one token fetch or connection attempt may take (ms). */
  readonly attemptTimeoutMs: number;
}

/** 0/1/4 s token fetches; 0/3/9/27/60/120 s reconnects then every 60 s; jitter < 2 s; 15 s bound. */
export const DEFAULT_SCHEDULE: RetrySchedule = {
  tokenFetchAtMs: [0, 1000, 4000],
  reconnectAtMs: [0, 3000, 9000, 27000, 60000, 120000],
  reconnectEveryMs: 60000,
  jitterMs: 2000,
  firstAttemptJitter: true,
  attemptTimeoutMs: 15000,
};

function jitter(s: RetrySchedule, random: Random): number {
  return s.jitterMs <= 0 ? 0 : Math.floor(random.float() * s.jitterMs);
}

/** When reconnect attempt `k` (0-based) starts, from the start of its series. Never ends. */
export function reconnectAttemptAt(s: RetrySchedule, k: number, first: boolean, random: Random): number {
  const listed = s.reconnectAtMs[k];
  const base = listed !== undefined ? listed : (s.reconnectAtMs[s.reconnectAtMs.length - 1] ?? 0) + s.reconnectEveryMs * (k + 1 - s.reconnectAtMs.length);
  if (first && !s.firstAttemptJitter) return base;
  return base + jitter(s, random);
}

/** The offsets of every try of one token fetch. `first`: the session's very first fetch. */
export function tokenOffsets(s: RetrySchedule, first: boolean, random: Random): number[] {
  return s.tokenFetchAtMs.map((at, k) => (k === 0 && first && !s.firstAttemptJitter ? at : at + jitter(s, random)));
}
