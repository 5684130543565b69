/** Durations as people write them in config ("15m", "90s", "1h30m", "500ms") and as we show them. */
import { z } from 'zod';

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;

/** Parses "1h30m" into milliseconds; returns null when the text is not a duration. */
export function parseDuration(text: string): number | null {
  const trimmed = text.trim();
  if (!/^(\d+(?:\.\d+)?(ms|s|m|h|d))+$/.test(trimmed)) return null;
  let total = 0;
  for (const match of trimmed.matchAll(PART)) {
    total += Number(match[1]) * (UNIT_MS[match[2] ?? ''] ?? 0);
  }
  return Math.round(total);
}

/** "850ms", "3.2s", "4m 05s", "2h 03m": short and stable for cards. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  // Below 59.95 s, since toFixed(1) would round 59.96 up to "60.0s".
  if (ms < 59_950) return `${(ms / 1000).toFixed(1)}s`;
  const totalSeconds = Math.round(ms / 1000);
  const hours = Math.floor(totalSeconds / 3600);
  const minutes = Math.floor((totalSeconds % 3600) / 60);
  const seconds = totalSeconds % 60;
  if (hours > 0) return `${hours}h ${String(minutes).padStart(2, '0')}m`;
  return `${minutes}m ${String(seconds).padStart(2, '0')}s`;
}

/** Node timers cannot wait longer than 2^31-1 ms (about 24.8 days): they fire at once instead. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A duration as written in config or a definition, longer than zero and short enough for a timer. */
export const durationSchema = z
  .string()
  .refine((text) => parseDuration(text) !== null, 'expected a duration like 30s, 15m or 1h')
  .refine((text) => (parseDuration(text) ?? 1) > 0, 'must be longer than zero')
  .refine((text) => (parseDuration(text) ?? 0) <= MAX_TIMER_MS, 'must be at most 24 days');
