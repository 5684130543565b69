import { describe, expect, it } from 'vitest';
import { pairedBlockInterval, quantileOfBlocks } from '../../bench/compare/blockInterval.js';
import { nearestRank } from '../../bench/quantile.js';
import { seededRandom } from '../support/seededRandom.js';

/** `blocks` blocks of `size` samples drawn from `draw`. */
function blocksOf(blocks: number, size: number, draw: () => number): number[][] {
  return Array.from({ length: blocks }, () => Array.from({ length: size }, draw));
}

describe('the ack bench’s interval for a ratio of tails', () => {
  it('reads quantiles by nearest rank, as the bench’s percentiles do', () => {
    const sorted = Array.from({ length: 200 }, (_, i) => i + 1);
    expect(nearestRank(sorted, 0.99)).toBe(198);
    expect(nearestRank(sorted, 0.5)).toBe(100);
    expect(nearestRank([7], 0.99)).toBe(7);
    expect(nearestRank([], 0.5)).toBeNaN();
  });

  it('reads the quantile of resampled blocks as the quantile of their samples pooled', () => {
    const random = seededRandom(3);
    const blocks = Array.from({ length: 10 }, (_, b) => Array.from({ length: 150 + b }, () => random() * 100));
    const descending = blocks.map((block) => [...block].sort((x, y) => y - x));
    for (let round = 0; round < 50; round++) {
      const picks = Array.from({ length: 10 }, () => Math.floor(random() * 10));
      const pooled = picks.flatMap((pick) => blocks[pick] ?? []).sort((x, y) => x - y);
      for (const q of [0.5, 0.9, 0.99, 1]) expect(quantileOfBlocks(descending, picks, q)).toBe(nearestRank(pooled, q));
    }
  });

  it('holds 1 for two sides drawn alike, and excludes it when one side’s tail is three times longer', () => {
    const random = seededRandom(42);
    // Exponential latencies around 1 ms.
    const latency = (scale: number) => () => -Math.log(1 - random()) * scale;
    const alike = pairedBlockInterval(blocksOf(10, 200, latency(1)), blocksOf(10, 200, latency(1)), { q: 0.99 });
    expect(alike.low).toBeLessThan(1);
    expect(alike.high).toBeGreaterThan(1);
    const slower = pairedBlockInterval(blocksOf(10, 200, latency(3)), blocksOf(10, 200, latency(1)), { q: 0.99 });
    expect(slower.low).toBeGreaterThan(2);
    expect(slower.high).toBeLessThan(4.5);
  });

  it('takes as many ratios off each end: the sides swapped give the reciprocal interval', () => {
    const random = seededRandom(11);
    const draw = () => -Math.log(1 - random());
    const a = blocksOf(10, 200, draw);
    const b = blocksOf(10, 200, draw);
    const forward = pairedBlockInterval(a, b, { q: 0.99, random: seededRandom(5) });
    const backward = pairedBlockInterval(b, a, { q: 0.99, random: seededRandom(5) });
    expect(backward.low).toBeCloseTo(1 / forward.high, 12);
    expect(backward.high).toBeCloseTo(1 / forward.low, 12);
  });

  it('cuts exactly the (1 - level) / 2 share of the resampled ratios off each end', () => {
    const random = seededRandom(13);
    const a = blocksOf(6, 50, random);
    const b = blocksOf(6, 50, random);
    // The same resamples by hand: 40 rounds, each six block numbers drawn from the same generator.
    const picking = seededRandom(21);
    const descending = (blocks: number[][]) => blocks.map((block) => [...block].sort((x, y) => y - x));
    const ratios = Array.from({ length: 40 }, () => {
      const picks = Array.from({ length: 6 }, () => Math.floor(picking() * 6));
      return quantileOfBlocks(descending(a), picks, 0.99) / quantileOfBlocks(descending(b), picks, 0.99);
    }).sort((x, y) => x - y);
    // 2.5% of 40 is one ratio off each end: the interval runs from the smallest to the largest.
    expect(pairedBlockInterval(a, b, { q: 0.99, rounds: 40, random: seededRandom(21) })).toEqual({ low: ratios[0], high: ratios[39] });
    // 10% of 40 is four off each end.
    expect(pairedBlockInterval(a, b, { q: 0.99, rounds: 40, level: 0.8, random: seededRandom(21) })).toEqual({ low: ratios[3], high: ratios[36] });
  });

  it('refuses sides with different numbers of blocks', () => {
    expect(() => pairedBlockInterval([[1], [2]], [[1]], { q: 0.99 })).toThrow(/2 against 1/);
  });

  it('keeps the pairing: a spell that slows both sides in one block does not widen the ratio', () => {
    const random = seededRandom(7);
    // Block 3 is a busy spell for both sides: ten times slower, the same for each.
    const spell = (b: number) => (b === 3 ? 10 : 1);
    const ours = Array.from({ length: 10 }, (_, b) => Array.from({ length: 200 }, () => 2 * spell(b) * (1 + random())));
    const theirs = Array.from({ length: 10 }, (_, b) => Array.from({ length: 200 }, () => spell(b) * (1 + random())));
    const paired = pairedBlockInterval(ours, theirs, { q: 0.99 });
    expect(paired.low).toBeGreaterThan(1.8);
    expect(paired.high).toBeLessThan(2.2);
    // Unpaired (each side's blocks drawn on their own), the spell lands on one side only at times.
    const shuffled = [...theirs.slice(5), ...theirs.slice(0, 5)];
    const unpaired = pairedBlockInterval(ours, shuffled, { q: 0.99 });
    expect(unpaired.high - unpaired.low).toBeGreaterThan(5 * (paired.high - paired.low));
  });
});
