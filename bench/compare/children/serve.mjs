// @ts-check
/**
 * A benchmark child's side of the conversation with its parent (bench/compare/child.ts): say
 * `ready`, then answer requests { id, cmd, arg } with { id, ok, value | error }. Plain JavaScript,
 * so the countersign child runs on plain node from the build (dist/), as `npm start` runs it:
 * its memory is the app's, not a TypeScript loader's.
 *
 * Every child also measures itself: event-loop delay (perf_hooks, 1 ms resolution) and RSS, now
 * and its peak since the last reset (VmHWM, reset through /proc/self/clear_refs).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const histogram = monitorEventLoopDelay({ resolution: 1 });
histogram.enable();

function peakRssBytes() {
  const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return match ? Number(match[1]) * 1024 : process.memoryUsage().rss;
}

/** @type {Record<string, (arg: unknown) => unknown>} */
const probeHandlers = {
  'probe-reset': () => {
    histogram.reset();
    try {
      // "5" resets the peak resident set size (Linux >= 4.0).
      writeFileSync('/proc/self/clear_refs', '5');
    } catch {
      // not Linux: the peak is since the start
    }
    return null;
  },
  'probe-stats': () => ({
    loopP50Ms: histogram.percentile(50) / 1e6,
    loopP99Ms: histogram.percentile(99) / 1e6,
    loopMaxMs: histogram.max / 1e6,
    rssMiB: process.memoryUsage().rss / 1048576,
    peakRssMiB: peakRssBytes() / 1048576,
  }),
};

/**
 * @param {unknown} ready
 * @param {Record<string, (arg: unknown) => unknown>} handlers
 * @param {() => Promise<void>} stop
 */
export function serve(ready, handlers, stop) {
  const all = { ...probeHandlers, ...handlers };
  process.on('message', (/** @type {{ id: number; cmd: string; arg: unknown }} */ message) => {
    if (message.cmd === 'stop') {
      void stop().finally(() => process.exit(0));
      return;
    }
    const handler = all[message.cmd];
    Promise.resolve()
      .then(() => {
        if (!handler) throw new Error(`no such command ${message.cmd}`);
        return handler(message.arg);
      })
      .then(
        (value) => process.send?.({ id: message.id, ok: true, value }),
        (error) => process.send?.({ id: message.id, ok: false, error: error instanceof Error ? error.message : String(error) }),
      );
  });
  process.send?.({ type: 'ready', ready });
}
