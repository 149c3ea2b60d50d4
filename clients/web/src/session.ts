/**
 * The data of the call a device is in: who was invited (caller side) or who invited it
 * (callee side), per-device replies, media bookkeeping and, for group calls, the roster.
 * Plain records; the rules live in `call.ts` and `group.ts`.
 */

import type { CallType, Elsewhere, MemberState } from "./envelope.js";
import type { JsonObject, JsonValue } from "./json.js";
import type { Roster } from "./roster.js";
import type { Mesh } from "./mesh.js";
import type { Role } from "./state.js";

/** The shortest and longest wait, after a busy reply, for another device to ring (PROTOCOL §8.3). */
export const BUSY_GRACE_MIN_MS = 250;
/** See {@link BUSY_GRACE_MIN_MS}. */
export const BUSY_GRACE_MAX_MS = 2000;

/** What one callee device answered. */
export type DeviceStatus = "ringing" | "busy" | "rejected" | "accepted" | "cancelled";

/** The caller's view of one invited user. */
export interface Invitation {
  readonly user: string;
  /** Devices in the order first heard from. */
  readonly devices: Map<string, DeviceStatus>;
  answered?: string;
  readonly sentAt: number;
  acked: boolean;
  ringingSeen: boolean;
  busyUntil?: number;
  busyReason?: string;
  mediaPeer?: string;
  mediaOutbox: JsonValue[];
  /** Group: the `seq` of the `inviting` record this invitation wrote. */
  base?: number;
  /** Group: when this invitation times out. */
  deadline?: number;
  /** Group: the invitation is over (its outcome written or superseded). */
  done?: boolean;
  /** Group: how it ended. */
  outcome?: MemberState;
}

/** A new invitation of `user`, sent at `now`. */
export function newInvitation(user: string, now: number): Invitation {
  return { user, devices: new Map(), sentAt: now, acked: false, ringingSeen: false, mediaOutbox: [] };
}

/** Devices of an invitation that still ring. */
export function ringingDevices(inv: Invitation, except?: string): string[] {
  return [...inv.devices].filter(([d, s]) => s === "ringing" && d !== except).map(([d]) => d);
}

/** The devices a stop must reach: the answering one, or every ringing one. */
export function alerting(inv: Invitation): string[] {
  return inv.answered !== undefined ? [inv.answered] : ringingDevices(inv);
}

/** The callee's view of who invited it. */
export interface Inviter {
  readonly user: string;
  readonly device: string;
  /** When the invite's lifetime ends. */
  readonly expiry: number;
  /** Media payloads that came before the media was joined. */
  mediaInbox: JsonValue[];
  /** Group: the `seq` of this device's member record in the invite. */
  seq?: number;
}

/** The group part of a call. */
export interface GroupState {
  readonly roster: Roster;
  /** This device created the call. */
  readonly creator: boolean;
  /** Some other member was in the call at some point. */
  answered: boolean;
  /** A late join waits for a roster to come back. */
  joining: boolean;
  /** Other members whose invite for this call rang here too (they get `ringing`, no answer). */
  readonly otherInviters: { user: string; device: string; seq?: number }[];
  readonly mesh: Mesh;
}

/** The call a device is in. */
export interface Call {
  readonly id: string;
  readonly role: Role;
  readonly callType: CallType;
  readonly roomId: string;
  extension: JsonObject;
  /** Caller side: the invited users. */
  readonly invitations: Invitation[];
  /** Callee side: the inviter. */
  inviter?: Inviter;
  accepted: boolean;
  confirmed: boolean;
  firstFrame: boolean;
  firstFrameWait: boolean;
  mediaJoined: boolean;
  deadline?: number;
  connectedAt?: number;
  readonly start: number;
  group?: GroupState;
}

/** How an ended call answers a late `ringing`/`accept` (PROTOCOL §8.7). */
export type LateReply = { readonly type: "cancel"; readonly timeout: boolean; readonly elsewhere?: Elsewhere } | { readonly type: "hangup" };

/** What a device remembers of a call that ended. */
export interface Ended {
  readonly id: string;
  readonly role: Role;
  readonly remoteUser: string;
  readonly answered?: string;
  readonly reply: LateReply;
  readonly at: number;
  /** Group calls: the last roster, for late messages and late joins. */
  readonly group?: { roster: Roster; callType: CallType; roomId: string; cancelSeq?: number; inviter?: { user: string; device: string } };
}

/** The remote user of a call. */
export function remoteUser(call: Call): string {
  if (call.inviter !== undefined) return call.inviter.user;
  return call.invitations[0]?.user ?? "";
}

/** The remote device of a 1:1 call, once known. */
export function peerDevice(call: Call): string | undefined {
  if (call.inviter !== undefined) return call.inviter.device;
  return call.invitations[0]?.answered;
}
