/**
 * The `/task run` ack's p99 ratio over several runs read together: `npx tsx
 * bench/compare/poolAcks.ts <files or dirs>` reads the blocks that `BENCH_ACK_BLOCKS_OUT=<dir>`
 * kept (one file per ack run and sender count) and prints, per sender count, each run's ratio and
 * the pooled one with its 95% interval. Pooling keeps each pair of blocks together (they ran
 * back to back, in one spell of the machine) and resamples pairs across all the runs, so the
 * interval also holds the runs' differences. One run's 40 pairs leave the p99 ratio's interval
 * wide (the slowest percent rests on a few samples); several runs narrow it.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pairedBlockInterval, quantileOfBlocks } from './blockInterval.js';

interface KeptRun {
  file: string;
  senders: number;
  countersign: number[][];
  bareBolt: number[][];
  boltInsert: number[][];
}

const files = process.argv
  .slice(2)
  .flatMap((path) => (statSync(path).isDirectory() ? readdirSync(path).map((name) => join(path, name)) : [path]))
  .filter((path) => path.endsWith('.json'));
if (files.length === 0) throw new Error('usage: poolAcks.ts <files or directories written by BENCH_ACK_BLOCKS_OUT>');
const runs: KeptRun[] = files.map((file) => ({ file, ...(JSON.parse(readFileSync(file, 'utf8')) as Omit<KeptRun, 'file'>) }));

/** The p99 of the blocks pooled, each block taken once. */
const p99 = (blocks: readonly number[][]) =>
  quantileOfBlocks(
    blocks.map((block) => [...block].sort((a, b) => b - a)),
    blocks.map((_, index) => index),
    0.99,
  );

for (const senders of [...new Set(runs.map((run) => run.senders))].sort((a, b) => a - b)) {
  const these = runs.filter((run) => run.senders === senders);
  console.log(`\n/task run ack, ${senders === 1 ? 'sequential' : `${senders} concurrent senders`}: p99 ratio to bare Bolt`);
  for (const run of these) {
    const { low, high } = pairedBlockInterval(run.countersign, run.bareBolt, { q: 0.99 });
    console.log(
      `  ${run.file}: ${(p99(run.countersign) / p99(run.bareBolt)).toFixed(2)}x (${low.toFixed(2)}x-${high.toFixed(2)}x), ${run.countersign.length} block pairs`,
    );
  }
  const ours = these.flatMap((run) => run.countersign);
  const bare = these.flatMap((run) => run.bareBolt);
  const stored = these.flatMap((run) => run.boltInsert);
  const { low, high } = pairedBlockInterval(ours, bare, { q: 0.99 });
  const verdict = high <= 2 ? 'met' : low > 2 ? 'missed' : 'unsettled';
  console.log(
    `  pooled over ${these.length} runs (${ours.length} block pairs): ${(p99(ours) / p99(bare)).toFixed(2)}x (95% interval ${low.toFixed(2)}x-${high.toFixed(2)}x): ${verdict} against 2x; Bolt + one INSERT ${(p99(stored) / p99(bare)).toFixed(2)}x of bare Bolt, countersign ${(p99(ours) / p99(stored)).toFixed(2)}x of it`,
  );
}
