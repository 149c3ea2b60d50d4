/**
 * A group call's roster (PROTOCOL §10.1): one record per member, merged record by record by a
 * total order, so every device that has seen the same records holds the same roster.
 */

import type { MemberRecord, MemberState } from "./envelope.js";

/** Compares strings by their UTF-8 bytes (the same as by code points). */
export function compareBytes(a: string, b: string): number {
  if (a === b) return 0;
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done === true) return y.done === true ? 0 : -1;
    if (y.done === true) return 1;
    const cx = x.value.codePointAt(0)!;
    const cy = y.value.codePointAt(0)!;
    if (cx !== cy) return cx < cy ? -1 : 1;
  }
}

const PRECEDENCE: Record<MemberState, number> = {
  inviting: 0,
  ringing: 1,
  timeout: 2,
  cancelled: 3,
  busy: 4,
  rejected: 5,
  accepted: 6,
  left: 7,
};

/** Whether a state is pending (`inviting`, `ringing`). */
export const isPending = (s: MemberState): boolean => s === "inviting" || s === "ringing";
/** Whether a state is terminal (neither pending nor `accepted`). */
export const isTerminal = (s: MemberState): boolean => !isPending(s) && s !== "accepted";

function cmpOptString(a: string | undefined, b: string | undefined): number {
  if (a === undefined) return b === undefined ? 0 : -1;
  if (b === undefined) return 1;
  return compareBytes(a, b);
}

function cmpOptNum(a: number | undefined, b: number | undefined): number {
  if (a === undefined) return b === undefined ? 0 : -1;
  if (b === undefined) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The merge order of PROTOCOL §10.1: seq, state precedence, device, reason, until_ms. */
export function compareRecords(a: MemberRecord, b: MemberRecord): number {
  if (a.seq !== b.seq) return a.seq < b.seq ? -1 : 1;
  const p = PRECEDENCE[a.state] - PRECEDENCE[b.state];
  if (p !== 0) return p < 0 ? -1 : 1;
  return cmpOptString(a.device, b.device) || cmpOptString(a.reason, b.reason) || cmpOptNum(a.untilMs, b.untilMs);
}

/** One record that changed, with the state it had before. */
export interface RecordChange {
  readonly record: MemberRecord;
  readonly previous?: MemberState;
}

/** A roster: records sorted by user, and the call-wide `ended` flag. */
export class Roster {
  private members: MemberRecord[] = [];
  private endedFlag = false;

  /** A roster holding `records` (merged, so a repeated user keeps its greatest record). */
  static of(records: readonly MemberRecord[], ended = false): Roster {
    const r = new Roster();
    r.merge(records, ended);
    return r;
  }

  /** The record of `user`. */
  get(user: string): MemberRecord | undefined {
    return this.members.find((m) => m.user === user);
  }

  /** All records, sorted by user. */
  records(): readonly MemberRecord[] {
    return this.members;
  }

  /** The records `accepted` with a device: the members in the call. */
  inCall(): MemberRecord[] {
    return this.members.filter((m) => m.state === "accepted" && m.device !== undefined);
  }

  /** Whether the call was ended for everyone. */
  ended(): boolean {
    return this.endedFlag;
  }

  /** The greatest `seq` of any record. */
  maxSeq(): number {
    return this.members.reduce((m, r) => Math.max(m, r.seq), 0);
  }

  /** A copy. */
  clone(): Roster {
    const r = new Roster();
    r.members = [...this.members];
    r.endedFlag = this.endedFlag;
    return r;
  }

  private put(record: MemberRecord): void {
    const i = this.members.findIndex((m) => m.user === record.user);
    if (i >= 0) this.members[i] = record;
    else {
      this.members.push(record);
      this.members.sort((a, b) => compareBytes(a.user, b.user));
    }
  }

  /**
   * A local write of `user`'s record at `max(current.seq + 1, minSeq)` (or `max(minSeq, 1)`
   * for a new user). Writing what is already there changes nothing and answers `undefined`.
   */
  write(user: string, state: MemberState, fields: { device?: string; reason?: string; untilMs?: number } = {}, minSeq = 0): RecordChange | undefined {
    const current = this.get(user);
    const make = (seq: number): MemberRecord => ({
      user,
      state,
      seq,
      ...(fields.device !== undefined ? { device: fields.device } : {}),
      ...(fields.reason !== undefined ? { reason: fields.reason } : {}),
      ...(fields.untilMs !== undefined ? { untilMs: fields.untilMs } : {}),
    });
    if (current === undefined) {
      const record = make(Math.max(minSeq, 1));
      this.put(record);
      return { record };
    }
    if (current.seq >= minSeq && current.state === state && current.device === fields.device && current.reason === fields.reason && current.untilMs === fields.untilMs) {
      return undefined;
    }
    const record = make(Math.max(current.seq + 1, minSeq));
    if (compareRecords(record, current) <= 0) return undefined;
    this.put(record);
    return { record, previous: current.state };
  }

  /** Writes a record at exactly its own `seq` if it supersedes the current one. */
  writeExact(record: MemberRecord): RecordChange | undefined {
    const current = this.get(record.user);
    if (current !== undefined && compareRecords(record, current) <= 0) return undefined;
    this.put(record);
    return current === undefined ? { record } : { record, previous: current.state };
  }

  /** Ends the call for everyone; true if it was not ended already. */
  setEnded(): boolean {
    const changed = !this.endedFlag;
    this.endedFlag = true;
    return changed;
  }

  /** Merges received records (the greater of each pair wins) and `ended`; answers the changes. */
  merge(records: readonly MemberRecord[], ended: boolean): { changes: RecordChange[]; endedNow: boolean } {
    const before = new Map<string, MemberState | undefined>();
    for (const r of records) {
      const current = this.get(r.user);
      if (current !== undefined && compareRecords(r, current) <= 0) continue;
      if (!before.has(r.user)) before.set(r.user, current?.state);
      this.put(r);
    }
    const changes: RecordChange[] = [...before.keys()]
      .sort(compareBytes)
      .map((user) => {
        const previous = before.get(user);
        const record = this.get(user)!;
        return previous === undefined ? { record } : { record, previous };
      });
    const endedNow = ended && this.setEnded();
    return { changes, endedNow };
  }

  /** Whether this roster knows something `records`/`ended` lack (PROTOCOL §10.4). */
  lacks(records: readonly MemberRecord[], ended: boolean): boolean {
    if (this.endedFlag && !ended) return true;
    return this.members.some((mine) => {
      let theirs: MemberRecord | undefined;
      for (const r of records) if (r.user === mine.user && (theirs === undefined || compareRecords(r, theirs) > 0)) theirs = r;
      return theirs === undefined || compareRecords(mine, theirs) > 0;
    });
  }
}
