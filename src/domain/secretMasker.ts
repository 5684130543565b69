/**
 * Masks secret values in a stream of output. Output arrives in arbitrary chunks, so a secret
 * can straddle two of them; the masker holds back just enough of the end of each chunk (a
 * possible beginning of a secret) to catch that, and releases everything else at once.
 *
 * Matching is leftmost, then longest: at each position the longest secret that starts there
 * wins, and masked text is never re-examined.
 */

export const MASK = '*****';

export class SecretMasker {
  /** Longest first, so that at one position the longest secret wins. */
  private readonly secrets: readonly string[];
  private readonly longest: number;
  /** Input not yet emitted: a proper prefix of some secret, so never longer than `longest - 1`. */
  private held = '';

  constructor(secrets: readonly string[]) {
    this.secrets = [...new Set(secrets.filter((secret) => secret !== ''))].sort((a, b) => b.length - a.length);
    this.longest = this.secrets[0]?.length ?? 0;
  }

  /** Masked text that is safe to emit now. Holds back only the longest suffix of the input that is a proper prefix of some secret (so a secret split across chunks is still caught), never more. */
  push(chunk: string): string {
    if (this.secrets.length === 0) return chunk;
    return this.mask(this.held + chunk, false);
  }

  /** Emits whatever is held back, masked: it is no whole secret of its own, but may contain a shorter one. */
  end(): string {
    if (this.secrets.length === 0) return '';
    return this.mask(this.held, true);
  }

  private mask(text: string, final: boolean): string {
    // Where the held-back tail could start: positions whose rest of the text is a proper
    // prefix of some secret. Only the last `longest - 1` positions can qualify.
    const holdCandidates = final ? [] : this.partialStarts(text);
    let candidate = 0;
    const out: string[] = [];
    // Next occurrence of each secret at or after `pos`; -2 means not searched yet.
    const next = this.secrets.map(() => -2);
    let pos = 0;
    for (;;) {
      while (candidate < holdCandidates.length && (holdCandidates[candidate] ?? 0) < pos) candidate++;
      const holdFrom = holdCandidates[candidate] ?? text.length;
      const match = this.leftmostMatch(text, pos, next);
      // A match starting at or after `holdFrom` might still lose to a longer secret that
      // continues in the next chunk, so it waits; one starting before it is certain.
      if (match === null || match.start >= holdFrom) {
        out.push(text.slice(pos, holdFrom));
        this.held = text.slice(holdFrom);
        return out.join('');
      }
      out.push(text.slice(pos, match.start), MASK);
      pos = match.start + match.length;
    }
  }

  private leftmostMatch(text: string, pos: number, next: number[]): { start: number; length: number } | null {
    let best: { start: number; length: number } | null = null;
    for (let i = 0; i < this.secrets.length; i++) {
      const secret = this.secrets[i] ?? '';
      let at = next[i] ?? -2;
      if (at !== -1 && at < pos) {
        at = text.indexOf(secret, pos);
        next[i] = at;
      }
      // Strictly less: on a tie the earlier (longer) secret keeps the match.
      if (at !== -1 && (best === null || at < best.start)) best = { start: at, length: secret.length };
    }
    return best;
  }

  private partialStarts(text: string): number[] {
    const starts: number[] = [];
    for (let start = Math.max(0, text.length - this.longest + 1); start < text.length; start++) {
      const rest = text.slice(start);
      if (this.secrets.some((secret) => secret.length > rest.length && secret.startsWith(rest))) starts.push(start);
    }
    return starts;
  }
}
