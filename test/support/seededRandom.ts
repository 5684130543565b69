/**
 * A small seeded generator (mulberry32), uniform in [0, 1): tests whose inputs are random
 * reproduce their failures, and the benchmarks' resampling prints the same figures from the same
 * samples.
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
