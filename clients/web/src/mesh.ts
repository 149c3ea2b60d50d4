/**
 * The bookkeeping of a group call's media mesh (PROTOCOL §10.9): which peer connections should
 * exist by the roster, who offers, and which `media` envelopes belong to which connection.
 */

import type { JsonValue } from "./json.js";
import { compareBytes } from "./roster.js";

/** Another member's device in the call. */
export interface MediaPeer {
  readonly user: string;
  readonly device: string;
}

/** A peer with the `seq` of its `accepted` record (its membership). */
export interface MeshPeer extends MediaPeer {
  readonly seq: number;
}

/** Whether `local` offers to `remote`: the lower (user, device), compared by bytes, offers. */
export function offersTo(local: MediaPeer, remote: MediaPeer): boolean {
  const u = compareBytes(local.user, remote.user);
  return u !== 0 ? u < 0 : compareBytes(local.device, remote.device) < 0;
}

const key = (p: MediaPeer): string => `${p.user}\u0000${p.device}`;
/** Held payloads per call, at most. */
const MAX_HELD = 64;

/** What changed after {@link Mesh.sync}. */
export interface MeshChange {
  readonly added: MeshPeer[];
  readonly removed: MeshPeer[];
}

/** The connections of one device in one group call. */
export class Mesh {
  private own: number | undefined;
  private peers = new Map<string, MeshPeer>();
  private held: { peer: MediaPeer; seq: number; toSeq: number; payload: JsonValue }[] = [];

  /** This device's membership, while it is in the call's media. */
  ownSeq(): number | undefined {
    return this.own;
  }

  /** The membership of `peer`'s connection. */
  peerSeq(peer: MediaPeer): number | undefined {
    return this.peers.get(key(peer))?.seq;
  }

  /** The connected peers. */
  list(): MeshPeer[] {
    return [...this.peers.values()];
  }

  /** Makes the connections those of `desired` (with `own` as this device's membership). */
  sync(own: number | undefined, desired: MeshPeer[]): MeshChange {
    const removed: MeshPeer[] = [];
    const added: MeshPeer[] = [];
    const ownChanged = own !== this.own;
    this.own = own;
    const want = new Map(own === undefined ? [] : desired.map((p) => [key(p), p] as const));
    for (const [k, p] of this.peers) {
      const w = want.get(k);
      if (ownChanged || w === undefined || w.seq !== p.seq) {
        removed.push(p);
        this.peers.delete(k);
      }
    }
    for (const [k, p] of want) {
      if (!this.peers.has(k)) {
        this.peers.set(k, p);
        added.push(p);
      }
    }
    return { added, removed };
  }

  /**
   * A `media` envelope from `peer`: `"deliver"` to its connection, `"stale"` to drop, or
   * `"held"` until the roster catches up.
   */
  arrive(peer: MediaPeer, seq: number, toSeq: number, payload: JsonValue): "deliver" | "stale" | "held" {
    const p = this.peers.get(key(peer));
    if (this.own !== undefined && p !== undefined && p.seq === seq && this.own === toSeq) return "deliver";
    if ((p !== undefined && seq < p.seq) || (this.own !== undefined && toSeq < this.own)) return "stale";
    if (this.held.length >= MAX_HELD) this.held.shift();
    this.held.push({ peer, seq, toSeq, payload });
    return "held";
  }

  /** Held payloads that now belong to a connection (in arrival order); stale ones are dropped. */
  release(): { peer: MediaPeer; payload: JsonValue }[] {
    const out: { peer: MediaPeer; payload: JsonValue }[] = [];
    const keep: typeof this.held = [];
    for (const h of this.held) {
      const p = this.peers.get(key(h.peer));
      if (this.own !== undefined && p !== undefined && p.seq === h.seq && this.own === h.toSeq) out.push({ peer: h.peer, payload: h.payload });
      else if ((p !== undefined && h.seq < p.seq) || (this.own !== undefined && h.toSeq < this.own)) continue;
      else keep.push(h);
    }
    this.held = keep;
    return out;
  }

  /** Forgets everything (the call ended). */
  clear(): MeshPeer[] {
    const all = this.list();
    this.peers.clear();
    this.held = [];
    this.own = undefined;
    return all;
  }
}
