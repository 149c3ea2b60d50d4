/**
 * @callapi/web: the browser client of callapi call signaling. See README.md.
 */

export { CallClient, type CallClientEvents, type CallClientOptions, type CallOptions } from "./client.js";
export { CallMachine, type MachineConfig, type Output, type PrepareOptions, MAX_CALL_TIMEOUT_MS } from "./machine.js";
export {
  type Body,
  type CallType,
  type Elsewhere,
  type Envelope,
  type Kind,
  type MemberRecord,
  type MemberState,
  type DecodeErrorCode,
  EnvelopeDecodeError,
  EnvelopeEncodeError,
  KINDS,
  MAX_ENVELOPE_BYTES,
  MAX_ID_BYTES,
  PROTOCOL_VERSION,
  compareCallIds,
  decodeEnvelope,
  encodeEnvelope,
  idProblem,
  parseUuid,
  toWireObject,
} from "./envelope.js";
export type { JsonObject, JsonValue } from "./json.js";
export { DEFAULT_RELIABILITY, Reliable, type Reliability } from "./reliable.js";
export { Roster, compareRecords } from "./roster.js";
export { Mesh, offersTo, type MediaPeer } from "./mesh.js";
export { type Clock, FakeClock, SystemClock, type TimerHandle } from "./clock.js";
export { CryptoRandom, type Random, SeededRandom, uuidV4 } from "./random.js";
export { DEFAULT_SCHEDULE, type RetrySchedule, reconnectAttemptAt, tokenOffsets } from "./schedule.js";
export {
  type LinkState,
  type TokenProvider,
  type Transport,
  type TransportHandlers,
  type WebSocketFactory,
  type WebSocketLike,
  WebSocketTransport,
  type WebSocketTransportOptions,
  closeError,
} from "./transport.js";
export { type JoinRequest, type MediaCommand, type MediaEngine, type MediaEvent, NoMedia } from "./media-types.js";
export { BrowserMedia, type BrowserMediaOptions, candidatePayload, descriptionPayload, parsePayload } from "./media.js";
export * from "./state.js";
export * from "./errors.js";
