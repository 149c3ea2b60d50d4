/**
 * What the call machine tells the application: call states and their reasons, events, errors,
 * and the other notifications. The names follow the reference implementation's
 * (`CallState`, `StateReason`, `CallEvent`), in camelCase.
 */

import type { CallType, MemberState } from "./envelope.js";

/** Where the device is. `calling` covers both placing and ringing for a call. */
export type CallState = "idle" | "prepared" | "calling" | "connecting" | "connected";

/** Why the state changed. */
export type StateReason =
  | "none"
  | "localVideoCall"
  | "localAudioCall"
  | "remoteVideoCall"
  | "remoteAudioCall"
  | "localAccepted"
  | "remoteAccepted"
  | "recvRemoteFirstFrame"
  | "localRejected"
  | "remoteRejected"
  | "remoteCallBusy"
  | "localCancelled"
  | "remoteCancelled"
  | "callingTimeout"
  | "remoteCallingTimeout"
  | "localHangup"
  | "remoteHangup"
  | "joinMediaFailed"
  | "messageFailed"
  | "answeredElsewhere"
  | "rejectedElsewhere"
  | "glare"
  | "mediaFailed"
  | "callEnded"
  | "everyoneLeft";

/** Something that happened in a call (not every event changes the state). */
export type CallEventName =
  | "onCalling"
  | "remoteUserRecvCall"
  | "localAccepted"
  | "remoteAccepted"
  | "localRejected"
  | "remoteRejected"
  | "remoteCallBusy"
  | "localCancelled"
  | "remoteCancelled"
  | "localHangup"
  | "remoteHangup"
  | "callingTimeout"
  | "remoteCallingTimeout"
  | "joinMediaStart"
  | "recvRemoteFirstFrame"
  | "stateMismatch"
  | "messageFailed"
  | "answeredElsewhere"
  | "rejectedElsewhere"
  | "glare"
  | "inviteExpired"
  | "busyAutoRejected"
  | "joinMediaFailed"
  | "mediaFailed";

/** Which side of the call this device is on. */
export type Role = "caller" | "callee";

/** The call a notification is about. */
export interface CallInfo {
  /** The call id (canonical UUID). */
  readonly callId: string;
  /** Whether this device placed the call (or, in a group call, was invited into it). */
  readonly role: Role;
  /** The user who placed the call (for a group invitee: its inviter). */
  readonly caller: string;
  /** The other party of a 1:1 call; the inviter (or the first invitee) of a group call. */
  readonly remoteUser: string;
  /** The other party's device once known. */
  readonly remoteDevice?: string;
  /** Audio or video. */
  readonly callType: CallType;
  /** The caller's room. */
  readonly roomId: string;
  /** The invite's extension. */
  readonly extension: Readonly<Record<string, unknown>>;
  /** Whether this is a group call. */
  readonly group: boolean;
}

/** A state change. */
export interface StateChange {
  readonly state: CallState;
  readonly previous: CallState;
  readonly reason: StateReason;
  /** The reason text given by the party that caused the change, if any. */
  readonly eventReason?: string;
  readonly call?: CallInfo;
  /** For a call that ended after connecting: how long it was connected, in ms. */
  readonly durationMs?: number;
}

/** A call event. */
export interface CallEventInfo {
  readonly event: CallEventName;
  readonly callId?: string;
  readonly reason?: string;
}

/** Error codes of {@link CallErrorInfo.code}, as the reference implementation's. */
export const ERROR_CODES = {
  /** An envelope was not acknowledged within its lifetime. */
  MESSAGE_UNDELIVERED: 1001,
  /** A received frame was not a valid envelope (PROTOCOL §6). */
  INVALID_ENVELOPE: 1003,
  /** Joining the media failed. */
  JOIN_FAILED: 2001,
  /** The media failed during the call. */
  MEDIA_FAILED: 2002,
} as const;

/** An error of a call, or of the signaling link. */
export interface CallErrorInfo {
  readonly callId?: string;
  readonly event: "sendMessageFail" | "mediaError" | "normalError";
  readonly code: number;
  readonly message: string;
}

/** A change of a group call's roster: `user` went from `previous` (absent: new) to `state`. */
export interface MemberChange {
  readonly callId: string;
  readonly user: string;
  readonly previous?: MemberState;
  readonly state: MemberState;
  readonly seq: number;
  readonly device?: string;
  readonly reason?: string;
}

/** An in-call message or DTMF digits. */
export interface InCallData {
  readonly callId: string;
  readonly from: string;
  readonly fromDevice: string;
  readonly data: string;
}

/** Everything the machine reports. */
export type Notification =
  | { readonly type: "state"; readonly change: StateChange }
  | { readonly type: "event"; readonly info: CallEventInfo }
  | { readonly type: "error"; readonly error: CallErrorInfo }
  | { readonly type: "message"; readonly message: InCallData }
  | { readonly type: "dtmf"; readonly dtmf: InCallData }
  | { readonly type: "member"; readonly change: MemberChange };

/** Whether a call is under way in `state`. */
export function isActive(state: CallState): boolean {
  return state === "calling" || state === "connecting" || state === "connected";
}
