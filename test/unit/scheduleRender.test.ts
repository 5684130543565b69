import { describe, expect, it } from 'vitest';
import type { ReviewPolicy } from '../../src/domain/review.js';
import type { Schedule } from '../../src/domain/schedule.js';
import type { Task } from '../../src/domain/task.js';
import {
  approveValue,
  readButtonValue,
  renderFiringResult,
  renderScheduleList,
  renderScheduleReviewDm,
  renderScheduleReviewRequest,
  renderScheduleShow,
  SCHEDULE_ACTION,
} from '../../src/slack/render/schedule.js';
import { validateMessage } from '../support/slackLimits.js';

const schedule: Schedule = {
  id: 7,
  createdAt: new Date('2026-01-01T00:00:00Z'),
  status: 'pending-review',
  author: 'UAUTHOR',
  target: 'web-prod',
  cron: '0 3 * * *',
  tz: 'Europe/Paris',
  type: 'bash',
  script: 'echo hi',
  message: 'nightly <cleanup> & more',
  channelId: 'C0OPS',
  originChannel: 'CTASKS',
  notify: 'always',
  overlap: 'skip',
  catchUp: 'run',
  reviewChannel: 'CREVIEW',
  reviewTs: null,
  approvedAt: null,
  firedThrough: null,
  contentVersion: 'a'.repeat(64),
  reviewRound: 0,
  reviewRequestedAt: null,
  statusReason: null,
};
const policy: ReviewPolicy = { channel: 'CREVIEW', autoRun: false, groups: [{ name: 'sre', users: ['UALICE', 'UBOB'], approvals: 1 }] };
const task = (status: Task['status'], exitCode: number | null): Task => ({
  id: 42,
  createdAt: new Date(),
  statusChangedAt: new Date(),
  status,
  author: 'UAUTHOR',
  target: 'web-prod',
  type: 'bash',
  script: 'x',
  message: null,
  source: 'schedule',
  channelId: null,
  cardTs: null,
  reviewChannel: null,
  reviewTs: null,
  viewVersion: 1,
  reviewScriptPosted: false,
  result: { exitCode, signal: null, durationMs: 1234, failureMessage: null, lastLine: null },
  startedAt: null,
  finishedAt: null,
  runAfter: null,
  contentVersion: 'c'.repeat(64),
  recipe: null,
});
const now = new Date('2026-06-01T00:00:00Z');

describe('schedule messages', () => {
  it('draws a review request with schedule buttons, escaped text and the next fire times, within Slack limits', () => {
    const message = renderScheduleReviewRequest(schedule, policy, [], 'C0OPS', now);
    const json = JSON.stringify(message.blocks);
    expect(json).toContain(SCHEDULE_ACTION.approve);
    expect(json).toContain(SCHEDULE_ACTION.reject);
    expect(json).toContain('nightly &lt;cleanup&gt; &amp; more');
    expect(json).toContain('<!date^1780275600^'); // 2026-06-01 03:00 in Paris is 01:00 UTC
    expect(validateMessage(message, 'chat.postMessage')).toBeNull();
    const big = renderScheduleReviewRequest({ ...schedule, script: 'echo "x"\n'.repeat(20_000) }, policy, [], null, now);
    expect(validateMessage(big, 'chat.postMessage')).toBeNull();
    expect(JSON.stringify(renderScheduleReviewRequest({ ...schedule, status: 'active' }, policy, [], null, now).blocks)).not.toContain(SCHEDULE_ACTION.approve);
  });

  it('says when it cannot show the whole script (the caller puts it in the thread), and not otherwise', () => {
    const short = renderScheduleReviewRequest(schedule, policy, [], null, now);
    expect(short.scriptClipped).toBe(false);
    expect(JSON.stringify(short.blocks)).not.toContain('is in this thread');
    const long = renderScheduleReviewRequest({ ...schedule, script: `${'echo "step"\n'.repeat(400)}echo last-line` }, policy, [], null, now);
    expect(long.scriptClipped).toBe(true);
    expect(JSON.stringify(long.blocks)).toContain('the whole script, version `aaaaaaaaaaaa`, is in this thread (a file of another version there is void)');
    expect(JSON.stringify(long.blocks)).not.toContain('last-line');
    // The notification text names the author as a mention, which Slack shows as their name.
    expect(short.text).toContain('by <@UAUTHOR>');
    // Characters a reviewer cannot see are pointed out.
    const tricky = JSON.stringify(renderScheduleReviewRequest({ ...schedule, script: 'echo ok \u202E# evil' }, policy, [], null, now).blocks);
    expect(tricky).toContain('invisible or direction-changing characters (first: U+202E on line 1)');
  });

  it('posts one compact line on success and exit code, last lines and the log link on failure', () => {
    const ok = renderFiringResult({ ...schedule, status: 'active' }, task('success', 0), now, [], 'https://cs.example/tasks/42?sig=x');
    expect(ok.blocks).toHaveLength(1);
    expect(JSON.stringify(ok.blocks)).toMatch(/success in 1\.2s · <https:\/\/cs\.example\/tasks\/42\?sig=x\|#42>/);
    const failed = renderFiringResult({ ...schedule, status: 'active' }, task('failure', 3), now, ['line one', 'boom'], 'https://cs.example/tasks/42?sig=x');
    const text = JSON.stringify(failed.blocks);
    expect(text).toContain('exit code 3');
    expect(text).toContain('boom');
    expect(text).toContain('Full log of #42');
    expect(validateMessage(failed, 'chat.postMessage')).toBeNull();
  });

  it('lists schedules within limits', () => {
    const many = Array.from({ length: 50 }, (_, i) => ({ ...schedule, id: i + 1, status: 'active' as const }));
    expect(validateMessage(renderScheduleList(many, true, now), 'chat.postEphemeral')).toBeNull();
  });

  it('puts the full content version on Approve, and reads only well-formed values back', () => {
    const version = 'ab'.repeat(32);
    const message = renderScheduleReviewRequest({ ...schedule, contentVersion: version }, policy, [], null, now);
    expect(JSON.stringify(message.blocks)).toContain(`"value":"7:${version}"`);
    expect(JSON.stringify(message.blocks)).toContain('version `abababababab`');
    expect(approveValue({ id: 7, contentVersion: version })).toBe(`7:${version}`);
    expect(readButtonValue(`7:${version}`)).toEqual({ id: 7, version });
    expect(readButtonValue('7')).toEqual({ id: 7, version: null });
    for (const bad of ['7:abc', `7:${version}x`, 'x:1', `7:${version.toUpperCase()}`, '']) expect(readButtonValue(bad)).toBeNull();
  });

  it('says why a schedule is reviewed again, escaped but with its mentions, on the request, the DM and show', () => {
    const again = { ...schedule, statusReason: '*sre* <needs> 2 approvals & has 1 (<@UALICE>)' };
    const request = JSON.stringify(renderScheduleReviewRequest(again, policy, [], null, now).blocks);
    expect(request).toContain('*Reviewed again*: its approval no longer holds: *sre* &lt;needs&gt; 2 approvals &amp; has 1 (<@UALICE>)');
    const dm = renderScheduleReviewDm(again, ['sre'], 'https://fake.slack/archives/CREVIEW/p1');
    expect(JSON.stringify(dm.blocks)).toContain('asks for your review of schedule S7 on `web-prod`');
    expect(JSON.stringify(dm.blocks)).toContain('&lt;needs&gt;');
    expect(JSON.stringify(dm.blocks)).toContain('<https://fake.slack/archives/CREVIEW/p1|Open the review request>');
    expect(validateMessage(dm, 'chat.postMessage')).toBeNull();
    const show = renderScheduleShow({ ...again, statusReason: 'x'.repeat(5000) }, 'C0OPS', [], now);
    expect(validateMessage(show, 'chat.postEphemeral')).toBeNull();
    const long = renderScheduleReviewRequest({ ...again, statusReason: '<@UALICE> '.repeat(2000), script: 'y\n'.repeat(30_000) }, policy, [], null, now);
    expect(validateMessage(long, 'chat.postMessage')).toBeNull();
  });
});
