/**
 * Randomness, injected: envelope and call ids and the reconnect jitter come from a
 * {@link Random}, so tests can use a seeded one and get the same ids every run.
 */

/** A source of random bytes and numbers. */
export interface Random {
  /** `n` random bytes. */
  bytes(n: number): Uint8Array;
  /** A number in [0, 1). */
  float(): number;
}

/** Cryptographic randomness from the global `crypto.getRandomValues` (browsers, Node 20). */
export class CryptoRandom implements Random {
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    globalThis.crypto.getRandomValues(out);
    return out;
  }

  float(): number {
    const b = this.bytes(4);
    return (((b[0]! << 24) >>> 0) + (b[1]! << 16) + (b[2]! << 8) + b[3]!) / 2 ** 32;
  }
}

/** A deterministic generator (xorshift32) for tests and simulations; not for production ids. */
export class SeededRandom implements Random {
  private state: number;

  constructor(seed: number) {
    this.state = (seed >>> 0) || 0x9e3779b9;
  }

  private step(): number {
    let x = this.state;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    this.state = x;
    return x;
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.step() & 0xff;
    return out;
  }

  float(): number {
    return this.step() / 2 ** 32;
  }
}

/** A random v4 UUID in the canonical lowercase hyphenated form. */
export function uuidV4(random: Random): string {
  const b = random.bytes(16);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
