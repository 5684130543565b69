import { describe, expect, it } from 'vitest';
import { parseTaskCommand } from '../../src/domain/command.js';
import type { ReviewPolicy } from '../../src/domain/review.js';
import {
  approvalStanding,
  checkCron,
  dueFireTimes,
  nextFireTimes,
  parseScheduleCommand,
  scheduleContentVersion,
  type ScheduleAdd,
} from '../../src/domain/schedule.js';

function add(text: string): ScheduleAdd {
  const result = parseScheduleCommand(text);
  if (!result.ok) throw new Error(`expected a schedule, got: ${result.error}`);
  if (result.command.action !== 'add') throw new Error(`expected add, got ${result.command.action}`);
  return result.command;
}

function error(text: string): string {
  const result = parseScheduleCommand(text);
  if (result.ok) throw new Error(`expected an error for ${JSON.stringify(text)}`);
  return result.error;
}

describe('/task schedule parser', () => {
  it('parses add with every option and a one-line script', () => {
    expect(
      add(
        'add web-prod "*/15 * * * *" --tz Europe/Paris --channel <#C0OPS12|ops> -m "clean tmp" --notify failure --overlap queue --catch-up skip rm -rf /tmp/x',
      ),
    ).toEqual({
      action: 'add',
      target: 'web-prod',
      cron: '*/15 * * * *',
      tz: 'Europe/Paris',
      channel: 'C0OPS12',
      message: 'clean tmp',
      type: null,
      notify: 'failure',
      overlap: 'queue',
      catchUp: 'skip',
      script: 'rm -rf /tmp/x',
    });
  });

  it('defaults to UTC, always notify, skip overlaps and run a missed firing', () => {
    expect(add('add sandbox "0 3 * * *" uptime')).toMatchObject({
      tz: 'UTC',
      channel: null,
      notify: 'always',
      overlap: 'skip',
      catchUp: 'run',
      script: 'uptime',
    });
  });

  it('takes a channel id, seconds in the cron, a fenced script with a language tag, and decodes entities', () => {
    const parsed = add('add sandbox "*/5 * * * * *" --channel C0123ABC ```python\nprint(1 &lt; 2)\n```');
    expect(parsed).toMatchObject({ cron: '*/5 * * * * *', channel: 'C0123ABC', type: 'python3', script: 'print(1 < 2)' });
  });

  it('takes a plain #name too (what Slack sends without should_escape)', () => {
    expect(add('add sandbox "* * * * *" --channel #ops-alerts uptime').channel).toBe('#ops-alerts');
  });

  it('keeps channel mentions inside the script as their names', () => {
    expect(add('add sandbox "* * * * *" echo <#C0OPS12|ops>').script).toBe('echo ops');
  });

  it('refuses invalid crons and time zones with the reason and an example', () => {
    expect(error('add sandbox "61 * * * *" uptime')).toMatch(/not a valid cron: .*minute.*e\.g\. `"\*\/15 \* \* \* \*"`/);
    expect(error('add sandbox "* * *" uptime')).toMatch(/has 3 fields; a cron needs 5 .* or 6/);
    expect(error('add sandbox "* * * * *" --tz Mars/Olympus uptime')).toMatch(/`Mars\/Olympus` is not a time zone.*Europe\/Paris/);
    expect(error('add sandbox * * * * * uptime')).toMatch(/Put the cron in quotes/);
    expect(error('add sandbox "* * * * *" --channel ops uptime')).toMatch(/`--channel` takes a channel/);
    expect(error('add sandbox "* * * * *" --overlap sometimes uptime')).toMatch(/`--overlap` takes `skip` or `queue` or `allow`/);
    expect(error('add sandbox "* * * * *"')).toMatch(/script is empty/);
  });

  it('parses list, show, pause, resume and remove', () => {
    expect(parseScheduleCommand('list')).toEqual({ ok: true, command: { action: 'list' } });
    expect(parseScheduleCommand(' pause 12')).toEqual({ ok: true, command: { action: 'pause', id: 12 } });
    expect(parseScheduleCommand('resume S3')).toEqual({ ok: true, command: { action: 'resume', id: 3 } });
    expect(parseScheduleCommand('remove #4')).toEqual({ ok: true, command: { action: 'remove', id: 4 } });
    expect(error('remove')).toMatch(/Which schedule/);
  });

  it('parses edit with only the fields given, a new script optional', () => {
    expect(
      parseScheduleCommand('edit S3 --cron "0  4 * * *" --tz Europe/Paris --channel <#C0OPS12|ops> --notify failure --overlap queue --catch-up skip'),
    ).toEqual({
      ok: true,
      command: {
        action: 'edit',
        id: 3,
        cron: '0 4 * * *',
        tz: 'Europe/Paris',
        channel: 'C0OPS12',
        notify: 'failure',
        overlap: 'queue',
        catchUp: 'skip',
        target: null,
        message: null,
        type: null,
        script: null,
      },
    });
    expect(parseScheduleCommand('edit 3 -m "new why" --target web-prod ```python\nprint(1)\n```')).toEqual({
      ok: true,
      command: {
        action: 'edit',
        id: 3,
        message: 'new why',
        target: 'web-prod',
        type: 'python3',
        script: 'print(1)',
        cron: null,
        tz: null,
        channel: null,
        notify: null,
        overlap: null,
        catchUp: null,
      },
    });
    expect(error('edit 3')).toMatch(/Nothing to change/);
    expect(error('edit')).toMatch(/Which schedule/);
    expect(error('edit 3 --cron "61 * * * *"')).toMatch(/not a valid cron: the minute field has `61` \(0-59\)/);
    expect(error('edit 3 --cron 0 4 * * *')).toMatch(/`--cron` takes the cron in quotes/);
    expect(error('edit 3 --tz Mars/Olympus')).toMatch(/not a time zone/);
    expect(error('edit 3 --target "bad name"')).toMatch(/`--target` takes a target name/);
    expect(error('edit 3 --cron "* * * * *" --cron "0 * * * *"')).toMatch(/only once/);
  });

  it('is reached from /task schedule with the raw Slack text', () => {
    const parsed = parseTaskCommand('schedule add sandbox "0 * * * *" --channel <#C0OPS12|ops> uptime');
    expect(parsed).toMatchObject({ ok: true, command: { kind: 'schedule', schedule: { action: 'add', channel: 'C0OPS12', script: 'uptime' } } });
  });
});

describe('cron fire times', () => {
  it('follows the time zone, daylight saving included', () => {
    // 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC in summer.
    expect(nextFireTimes('0 9 * * *', 'Europe/Paris', new Date('2026-03-27T12:00:00Z'), 3).map((d) => d.toISOString())).toEqual([
      '2026-03-28T08:00:00.000Z',
      '2026-03-29T07:00:00.000Z',
      '2026-03-30T07:00:00.000Z',
    ]);
  });

  it('gives times strictly after the given one, seconds optional', () => {
    expect(nextFireTimes('*/2 * * * * *', 'UTC', new Date('2026-01-01T00:00:00.000Z'), 2).map((d) => d.toISOString())).toEqual([
      '2026-01-01T00:00:02.000Z',
      '2026-01-01T00:00:04.000Z',
    ]);
    expect(checkCron('*/2 * * * * *', 'UTC').ok).toBe(true);
    expect(checkCron('0 0 30 2 *', 'UTC').ok).toBe(false);
  });

  it('finds only the latest due time, and counts the earlier ones', () => {
    const due = dueFireTimes('*/10 * * * * *', 'UTC', new Date('2026-01-01T00:00:00Z'), new Date('2026-01-01T00:00:35Z'));
    expect(due).toEqual({ latest: new Date('2026-01-01T00:00:30Z'), earlier: 2, moreEarlier: false });
    expect(dueFireTimes('*/10 * * * * *', 'UTC', new Date('2026-01-01T00:00:30Z'), new Date('2026-01-01T00:00:35Z')).latest).toBeNull();
  });

  it('stays quick after a long downtime with a second-level cron', () => {
    const started = Date.now();
    const due = dueFireTimes('* * * * * *', 'UTC', new Date('2026-01-01T00:00:00Z'), new Date('2026-02-01T00:00:00.500Z'));
    expect(due.latest).toEqual(new Date('2026-02-01T00:00:00Z'));
    expect(due.moreEarlier).toBe(true);
    const monthly = dueFireTimes('0 0 1 * *', 'UTC', new Date('2025-01-15T00:00:00Z'), new Date('2026-02-10T00:00:00Z'));
    expect(monthly.latest).toEqual(new Date('2026-02-01T00:00:00Z'));
    expect(Date.now() - started).toBeLessThan(1000);
  });
});

describe('a schedule’s approval under the target’s current policy', () => {
  const at = new Date('2026-01-01T00:00:00Z');
  const approve = (userId: string) => ({ userId, verdict: 'approve' as const, reason: null, at });
  const policy = (approvals: number, users: string[], extra: Partial<ReviewPolicy['groups'][number]> = {}): ReviewPolicy => ({
    channel: 'CREVIEW',
    autoRun: false,
    groups: [{ name: 'sre', users, approvals, ...extra }],
  });

  it('holds on a target without review, and while every group has its approvals from current members', () => {
    expect(approvalStanding(null, 'UAUTHOR', [])).toEqual({ holds: true });
    expect(approvalStanding(policy(1, ['UALICE', 'UBOB']), 'UAUTHOR', [approve('UALICE')])).toEqual({ holds: true });
  });

  it('no longer holds when review was added later, approvals were raised, or an approver left', () => {
    expect(approvalStanding(policy(1, ['UALICE']), 'UAUTHOR', [])).toMatchObject({
      holds: false,
      verifiable: true,
      reason: 'it was never approved by *sre*, whose review its target now requires',
    });
    expect(approvalStanding(policy(2, ['UALICE', 'UBOB']), 'UAUTHOR', [approve('UALICE')])).toMatchObject({
      holds: false,
      reason: '*sre* needs 2 approvals from its current members and has 1 (<@UALICE>)',
      groups: [{ name: 'sre', required: 2, approvedBy: ['UALICE'] }],
    });
    expect(approvalStanding(policy(1, ['UBOB']), 'UAUTHOR', [approve('UALICE')])).toMatchObject({
      holds: false,
      reason: '*sre* needs 1 approval from its current members and has 0; <@UALICE> is no longer in its review groups',
      formerReviewers: ['UALICE'],
    });
    // The author's own approval never counts, even once they joined the group.
    expect(approvalStanding(policy(1, ['UAUTHOR', 'UBOB']), 'UAUTHOR', [approve('UAUTHOR')])).toMatchObject({ holds: false });
  });

  it('cannot be verified while Slack cannot name the members of a short group’s user group', () => {
    const standing = approvalStanding(policy(1, [], { usergroup: 'S0OPS', listed: [] }), 'UAUTHOR', [approve('UALICE')], ['S0OPS']);
    expect(standing).toMatchObject({ holds: false, verifiable: false, reason: expect.stringMatching(/Slack could not name a user group's members just now$/) });
  });
});

describe('content versions', () => {
  const content = { target: 'web-prod', type: 'bash' as const, script: 'uptime', message: 'why' };
  it('change with everything that runs and with the message reviewers read, and not otherwise', () => {
    const base = scheduleContentVersion(content);
    expect(base).toMatch(/^[0-9a-f]{64}$/);
    expect(scheduleContentVersion({ ...content })).toBe(base);
    for (const changed of [{ target: 'web-prod2' }, { type: 'sh' as const }, { script: 'uptime ' }, { message: 'why?' }, { message: null }]) {
      expect(scheduleContentVersion({ ...content, ...changed })).not.toBe(base);
    }
  });
});
