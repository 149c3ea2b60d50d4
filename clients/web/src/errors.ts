/**
 * The errors the library throws or rejects with. Each message says what to do about it.
 */

import type { CallState } from "./state.js";

/** Base class of every error of this library. */
export class CallApiError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A command that the current call state does not allow. */
export class InvalidStateError extends CallApiError {
  constructor(readonly action: string, readonly state: CallState, remedy?: string) {
    super(`cannot ${action} while ${state}${remedy !== undefined ? `: ${remedy}` : ""}`);
  }
}

/** `call()` before `prepare()`: the device is not ready to take or place calls. */
export class NotPreparedError extends CallApiError {
  constructor() {
    super("the device is not prepared: call prepare({ roomId }) first");
  }
}

/** A new call while another one is under way. */
export class BusyError extends CallApiError {
  constructor(readonly state: CallState) {
    super(`a call is already under way (${state}): hang it up before placing another`);
  }
}

/** An argument that cannot be used (an invalid id, DTMF digit, or invitee). */
export class InvalidArgumentError extends CallApiError {}

/** The link was refused for good (a token for another identity, revoked credentials). */
export class UnauthorizedError extends CallApiError {
  constructor(readonly detail: string) {
    super(`the signaling server refused these credentials (${detail}); get the user a valid token and start again`);
  }
}

/** The token expired (close 4001): a new one is fetched and the link reconnects by itself. */
export class TokenExpiredError extends CallApiError {
  constructor() {
    super("the token expired without renewal; a new token is fetched and the link reconnects (make the token provider return fresh tokens)");
  }
}

/** A transient refusal or drop (close 1009, 4008, 4009, 4010, 4029, ...): reconnect with backoff. */
export class TransientLinkError extends CallApiError {
  constructor(readonly code: number, readonly detail: string) {
    super(`the signaling link closed (${code}${detail ? `: ${detail}` : ""}); reconnecting on the backoff schedule`);
  }
}

/** The token provider failed or gave no token. */
export class TokenFetchError extends CallApiError {
  constructor(readonly detail: string) {
    super(`the token provider failed (${detail}); check the backend that issues tokens — retrying on the token schedule`);
  }
}

/** The server answered a frame with an `error` control frame. */
export class ServerRefusedError extends CallApiError {
  constructor(readonly code: string, readonly detail: string, readonly envelopeId?: string) {
    super(`the signaling server refused a frame (${code}): ${detail}`);
  }
}
