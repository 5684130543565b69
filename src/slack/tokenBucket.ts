/**
 * A token bucket that can go negative: taking a token always succeeds and says how long to
 * wait, so concurrent takers queue up in order instead of colliding. `available()` lets a
 * low-priority caller check without taking.
 */
export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    private readonly capacity: number,
    private readonly refillPerMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = capacity;
    this.at = now();
  }

  /** Tokens left after refilling (negative: takers already waiting). */
  available(): number {
    const now = this.now();
    this.tokens = Math.min(this.capacity, this.tokens + (now - this.at) * this.refillPerMs);
    this.at = now;
    return this.tokens;
  }

  /** Takes a token; returns how many ms the caller must wait before using it. */
  take(): number {
    const left = this.available() - 1;
    this.tokens = left;
    return left >= 0 ? 0 : Math.ceil(-left / this.refillPerMs);
  }

  /**
   * Returns the token of a turn not used (the call it was for did not happen), due at `turnAt`
   * (now, unless it was promised for later). Only the last turn handed out can be handed out
   * again: one given back from the middle of the line would give the next taker the same turn
   * as the last one in line, two calls at once where the pacing promised one. Such a turn is
   * lost (a gap in the pace, not a call too many).
   */
  giveBack(turnAt: number = this.now()): void {
    const tokens = this.available();
    const lastTurnAt = this.at + Math.max(0, -tokens) / this.refillPerMs;
    if (tokens >= 0 || Math.abs(turnAt - lastTurnAt) <= 2) this.tokens = Math.min(this.capacity, tokens + 1);
  }

  /** How long until at least `tokens` are available. */
  msUntil(tokens: number): number {
    const missing = tokens - this.available();
    return missing <= 0 ? 0 : Math.ceil(missing / this.refillPerMs);
  }
}
