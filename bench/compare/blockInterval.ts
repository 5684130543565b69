/**
 * How sure a ratio of two tail latencies is. The ack bench runs its sides in alternating blocks,
 * so block b of each side met the same spell of the machine; the slowest percent of a few hundred
 * samples rests on a handful of them, and one busy spell moves it. A paired block bootstrap
 * resamples whole blocks (the same block numbers for both sides, keeping the pairing and the
 * spells within a block) and reads the spread of the ratio that results.
 */
import { seededRandom } from '../../test/support/seededRandom.js';

/**
 * The central `level` interval of the ratio of the sides' pooled q-quantiles over `rounds` paired
 * block resamples. `ours[b]` and `theirs[b]` are the samples of block b of each side.
 */
export function pairedBlockInterval(
  ours: readonly (readonly number[])[],
  theirs: readonly (readonly number[])[],
  options: { q: number; level?: number; rounds?: number; random?: () => number },
): { low: number; high: number } {
  if (ours.length !== theirs.length) throw new Error(`paired blocks differ in number: ${ours.length} against ${theirs.length}`);
  const blocks = ours.length;
  if (blocks === 0) return { low: Number.NaN, high: Number.NaN };
  const random = options.random ?? seededRandom(1);
  const rounds = options.rounds ?? 1000;
  const level = options.level ?? 0.95;
  const ourTails = ours.map(descending);
  const theirTails = theirs.map(descending);
  const ratios: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const picks = Array.from({ length: blocks }, () => Math.floor(random() * blocks));
    ratios.push(quantileOfBlocks(ourTails, picks, options.q) / quantileOfBlocks(theirTails, picks, options.q));
  }
  // The k-th smallest and the k-th largest ratio (k = 25 of 1,000 for 95%), counted rather than
  // read through nearestRank(), whose ceil would take 0.025000000000000022 of 1,000 as rank 26.
  const k = Math.max(1, Math.round(((1 - level) / 2) * rounds));
  ratios.sort((x, y) => x - y);
  return { low: ratios[k - 1] as number, high: ratios[rounds - k] as number };
}

function descending(samples: readonly number[]): number[] {
  return [...samples].sort((a, b) => b - a);
}

/**
 * nearestRank() of the blocks `picks` names (with repeats) pooled, reading only what can reach it:
 * the element sits at rank `fromTop` counted from the largest, and no block adds more than its own
 * `fromTop` largest above it. For the 99th percentile of 2,000 samples that is 21 values a block,
 * not a sort of all 2,000 in each of a thousand rounds.
 */
export function quantileOfBlocks(blocksDescending: readonly (readonly number[])[], picks: readonly number[], q: number): number {
  const total = picks.reduce((sum, pick) => sum + (blocksDescending[pick]?.length ?? 0), 0);
  if (total === 0) return Number.NaN;
  const rank = Math.min(total, Math.max(1, Math.ceil(q * total)));
  const fromTop = total - rank + 1;
  const top: number[] = [];
  for (const pick of picks) {
    const block = blocksDescending[pick] ?? [];
    for (let i = 0; i < Math.min(fromTop, block.length); i++) top.push(block[i] as number);
  }
  top.sort((a, b) => b - a);
  return top[fromTop - 1] as number;
}
