/**
 * CPU seconds from /proc, for the benchmarks' splits: every process (user + system, and what
 * its reaped children used when asked), and the whole machine's busy time.
 */
import { readdirSync, readFileSync } from 'node:fs';

const HZ = 100;

export interface ProcessCpu {
  pid: number;
  comm: string;
  /** User + system seconds of the process itself. */
  seconds: number;
  /** Also counting its children that have exited and been waited for. */
  withChildren: number;
}

/** Every process's CPU so far. */
export function processCpu(): ProcessCpu[] {
  const out: ProcessCpu[] = [];
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const own = (Number(rest[11]) + Number(rest[12])) / HZ;
      out.push({
        pid: Number(pid),
        comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')),
        seconds: own,
        withChildren: own + (Number(rest[13]) + Number(rest[14])) / HZ,
      });
    } catch {
      // Gone between the listing and the read.
    }
  }
  return out;
}

/** The machine's busy CPU seconds so far (all cores; idle and iowait left out). */
export function machineBusySeconds(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return (fields.reduce((a, b) => a + b, 0) - fields[3]! - fields[4]!) / HZ;
}
