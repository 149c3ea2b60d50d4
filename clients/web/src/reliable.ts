/**
 * Reliable delivery (PROTOCOL §7): what a device sent and waits to see acknowledged, the
 * retransmission schedule (500 ms, doubling to a cap of 4 s, until the lifetime ends), and the
 * de-duplication window of received envelopes. Pure bookkeeping: times are passed in.
 */

import type { Envelope } from "./envelope.js";

/** Timing of reliable delivery; {@link DEFAULT_RELIABILITY} is the protocol's. */
export interface Reliability {
  /** First retransmission after this many ms (SIP T1). */
  readonly initialRtoMs: number;
  /** Cap of the doubling interval (SIP T2). */
  readonly maxRtoMs: number;
  /** How long a received envelope's key is remembered. */
  readonly dedupeWindowMs: number;
  /** Lifetime of an `ack`. */
  readonly ackLifetimeMs: number;
}

/** 500 ms, 4 s, 10 minutes, 10 s (PROTOCOL §7). */
export const DEFAULT_RELIABILITY: Reliability = {
  initialRtoMs: 500,
  maxRtoMs: 4000,
  dedupeWindowMs: 600_000,
  ackLifetimeMs: 10_000,
};

interface Pending {
  readonly envelope: Envelope;
  nextAt: number;
  interval: number;
  readonly expiresAt: number;
}

/** What {@link Reliable.poll} found due. */
export interface Due {
  /** Envelopes to send again, unchanged. */
  readonly retransmit: Envelope[];
  /** Envelopes whose lifetime ended without an ack. */
  readonly expired: Envelope[];
}

/** The sender's and the receiver's side of §7 for one device. */
export class Reliable {
  private pending: Pending[] = [];
  private readonly seen = new Set<string>();
  private seenOrder: { key: string; at: number }[] = [];

  constructor(private readonly cfg: Reliability = DEFAULT_RELIABILITY) {}

  /** Keeps `envelope` until acknowledged or `now + lifetimeMs`. */
  track(envelope: Envelope, now: number, lifetimeMs: number): void {
    this.pending.push({ envelope, nextAt: now + this.cfg.initialRtoMs, interval: this.cfg.initialRtoMs, expiresAt: now + lifetimeMs });
  }

  /**
   * An ack from `from`/`fromDevice` for `ackId`: answers the acknowledged envelope if it
   * satisfies one (§7.3: a device-addressed envelope only by that device; a user-addressed one
   * by any device of that user).
   */
  onAck(from: string, fromDevice: string, ackId: string): Envelope | undefined {
    const i = this.pending.findIndex(
      (p) => p.envelope.id === ackId && p.envelope.to === from && (p.envelope.toDevice === undefined || p.envelope.toDevice === fromDevice),
    );
    if (i < 0) return undefined;
    const [p] = this.pending.splice(i, 1);
    return p!.envelope;
  }

  /** Whether `env` was processed already (§7.4); remembers it otherwise. */
  isDuplicate(env: Envelope, now: number): boolean {
    this.expireSeen(now);
    const key = `${env.from}\u0000${env.fromDevice}\u0000${env.id}`;
    if (this.seen.has(key)) return true;
    this.seen.add(key);
    this.seenOrder.push({ key, at: now });
    return false;
  }

  private expireSeen(now: number): void {
    let drop = 0;
    while (drop < this.seenOrder.length && now - this.seenOrder[drop]!.at >= this.cfg.dedupeWindowMs) {
      this.seen.delete(this.seenOrder[drop]!.key);
      drop++;
    }
    if (drop > 0) this.seenOrder = this.seenOrder.slice(drop);
  }

  /** Takes out what is due at `now`: retransmissions (rescheduled) and expired envelopes. */
  poll(now: number): Due {
    const due: Due = { retransmit: [], expired: [] };
    const keep: Pending[] = [];
    for (const p of this.pending) {
      if (now >= p.expiresAt) {
        due.expired.push(p.envelope);
        continue;
      }
      if (now >= p.nextAt) {
        p.interval = Math.min(p.interval * 2, this.cfg.maxRtoMs);
        p.nextAt = Math.min(now + p.interval, p.expiresAt);
        due.retransmit.push(p.envelope);
      }
      keep.push(p);
    }
    this.pending = keep;
    return due;
  }

  /** Everything pending, to send at once after a reconnect; restarts each backoff (§7.2). */
  flushAll(now: number): Envelope[] {
    for (const p of this.pending) {
      p.interval = this.cfg.initialRtoMs;
      p.nextAt = now + p.interval;
    }
    return this.pending.map((p) => p.envelope);
  }

  /** Keeps only the pending envelopes for which `keep` is true. */
  retain(keep: (env: Envelope) => boolean): void {
    this.pending = this.pending.filter((p) => keep(p.envelope));
  }

  /** When {@link Reliable.poll} next has something to do. */
  nextTimeout(): number | undefined {
    let best: number | undefined;
    for (const p of this.pending) {
      const t = Math.min(p.nextAt, p.expiresAt);
      if (best === undefined || t < best) best = t;
    }
    return best;
  }

  /** How many envelopes wait for an ack. */
  pendingCount(): number {
    return this.pending.length;
  }
}
