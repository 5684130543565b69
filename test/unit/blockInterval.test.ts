import { describe, expect, it } from 'vitest';
import { pairedBlockInterval, quantile, quantileOfBlocks, seededRandom } from '../../bench/compare/blockInterval.js';

/** `blocks` blocks of `size` samples drawn from `draw`. */
function blocksOf(blocks: number, size: number, draw: () => number): number[][] {
  return Array.from({ length: blocks }, () => Array.from({ length: size }, draw));
}

describe('the ack bench’s interval for a ratio of tails', () => {
  it('reads quantiles by nearest rank, as the bench’s percentiles do', () => {
    const samples = Array.from({ length: 200 }, (_, i) => 200 - i);
    expect(quantile(samples, 0.99)).toBe(198);
    expect(quantile(samples, 0.5)).toBe(100);
    expect(quantile([7], 0.99)).toBe(7);
    expect(quantile([], 0.5)).toBeNaN();
  });

  it('reads the quantile of resampled blocks as the quantile of their samples pooled', () => {
    const random = seededRandom(3);
    const blocks = Array.from({ length: 10 }, (_, b) => Array.from({ length: 150 + b }, () => random() * 100));
    const descending = blocks.map((block) => [...block].sort((x, y) => y - x));
    for (let round = 0; round < 50; round++) {
      const picks = Array.from({ length: 10 }, () => Math.floor(random() * 10));
      const pooled = picks.flatMap((pick) => blocks[pick] ?? []);
      for (const q of [0.5, 0.9, 0.99, 1]) expect(quantileOfBlocks(descending, picks, q)).toBe(quantile(pooled, q));
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
