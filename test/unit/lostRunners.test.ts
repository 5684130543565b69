// Which runners are gone (review of issue 10, H3): a free lock is given a reconnect grace, and a
// changed server (restart or failover, whatever its uptime says) gives runners not seen back on
// it livenessMs. The sweeper feeds one observation per round; these feed them by hand.
import { describe, expect, it } from 'vitest';
import { LostRunnerJudge, RECONNECT_GRACE_MS, type ServerIdentity } from '../../src/runner/lostRunners.js';

const LIVENESS_MS = 60_000;
const B = 42;
const primary: ServerIdentity = { startedAt: '2026-01-01 00:00:00+00', systemId: '7000000000000000001', timeline: 1, upMs: 86_400_000 };
/** A promoted standby: same cluster, a timeline further, and started long ago (its uptime says nothing). */
const promoted: ServerIdentity = { startedAt: '2025-12-01 00:00:00+00', systemId: '7000000000000000001', timeline: 2, upMs: 31 * 86_400_000 };
const restarted: ServerIdentity = { ...primary, startedAt: '2026-01-02 00:00:00+00', upMs: 0 };

/** Sweeps every 250 ms from `from` to `to` (ms), B's lock held or not; answers when B was judged lost. */
function sweep(judge: LostRunnerJudge, from: number, to: number, server: (t: number) => ServerIdentity, held: (t: number) => boolean): number | null {
  for (let t = from; t <= to; t += 250) {
    const lost = judge.judge(t, server(t), new Set(held(t) ? [B] : []), new Set([B]));
    if (lost.includes(B)) return t;
  }
  return null;
}

describe('LostRunnerJudge', () => {
  it('judges a runner lost once its lock has stayed free for the reconnect grace (kill -9), not before', () => {
    const judge = new LostRunnerJudge({ livenessMs: LIVENESS_MS });
    expect(
      sweep(
        judge,
        0,
        2000,
        () => primary,
        () => true,
      ),
    ).toBeNull();
    const lostAt = sweep(
      judge,
      2250,
      20_000,
      () => primary,
      () => false,
    );
    expect(lostAt).toBe(2250 + RECONNECT_GRACE_MS);
    expect(RECONNECT_GRACE_MS + 2 * 250).toBeLessThan(5000); // kill -9 found within 5 s at the default sweep
  });

  it('keeps a runner whose lock is free for 3 s (a reset) and held again; the grace starts over next time', () => {
    const judge = new LostRunnerJudge({ livenessMs: LIVENESS_MS });
    expect(
      sweep(
        judge,
        0,
        1000,
        () => primary,
        () => true,
      ),
    ).toBeNull();
    expect(
      sweep(
        judge,
        1250,
        20_000,
        () => primary,
        (t) => t < 1250 || t >= 4500,
      ),
    ).toBeNull();
    // Free again later: a fresh grace, not what was left of the first one.
    expect(
      sweep(
        judge,
        20_250,
        40_000,
        () => primary,
        () => false,
      ),
    ).toBe(20_250 + RECONNECT_GRACE_MS);
  });

  it('after a server restart, gives a runner not seen back livenessMs from the start, and one seen back only the grace', () => {
    const judge = new LostRunnerJudge({ livenessMs: LIVENESS_MS });
    sweep(
      judge,
      0,
      1000,
      () => primary,
      () => true,
    );
    const up = (t: number): ServerIdentity => ({ ...restarted, upMs: t - 2000 });
    expect(sweep(judge, 2000, 2000 + LIVENESS_MS - 250, up, () => false)).toBeNull();
    expect(sweep(judge, 2000 + LIVENESS_MS, 2000 + LIVENESS_MS + 1000, up, () => false)).toBe(2000 + LIVENESS_MS);

    const other = new LostRunnerJudge({ livenessMs: LIVENESS_MS });
    sweep(
      other,
      0,
      1000,
      () => primary,
      () => true,
    );
    // Back on the restarted server at 3 s, then killed at 10 s: found after the grace.
    expect(sweep(other, 2000, 30_000, up, (t) => t >= 3000 && t < 10_000)).toBe(10_000 + RECONNECT_GRACE_MS);
  });

  it('takes a failover to a long-running standby for a new server: livenessMs from when it was seen, and says so', () => {
    const changes: string[] = [];
    const judge = new LostRunnerJudge({ livenessMs: LIVENESS_MS, onServerChanged: (from, to) => changes.push(`${from} -> ${to}`) });
    sweep(
      judge,
      0,
      1000,
      () => primary,
      () => true,
    );
    // Every lock is gone on the standby (advisory locks are not replicated) and B is slow to come back.
    expect(
      sweep(
        judge,
        1250,
        1250 + LIVENESS_MS - 250,
        () => promoted,
        () => false,
      ),
    ).toBeNull();
    expect(changes).toEqual([`7000000000000000001/1/${primary.startedAt} -> 7000000000000000001/2/${promoted.startedAt}`]);
    expect(
      sweep(
        judge,
        1250 + LIVENESS_MS,
        1250 + LIVENESS_MS + 1000,
        () => promoted,
        () => false,
      ),
    ).toBe(1250 + LIVENESS_MS);
  });

  it('tells servers apart by their start time when the role may not read pg_control', () => {
    const judge = new LostRunnerJudge({ livenessMs: LIVENESS_MS });
    const unreadable = (s: ServerIdentity): ServerIdentity => ({ ...s, systemId: null, timeline: null });
    sweep(
      judge,
      0,
      1000,
      () => unreadable(primary),
      () => true,
    );
    expect(
      sweep(
        judge,
        1250,
        1250 + LIVENESS_MS - 250,
        () => unreadable(promoted),
        () => false,
      ),
    ).toBeNull();
  });
});
