/**
 * The q-quantile of samples sorted ascending, by nearest rank: the smallest sample with at least
 * q of all samples at or below it (the p99 of 400 is the 396th). NaN for no samples.
 */
export function nearestRank(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
}
