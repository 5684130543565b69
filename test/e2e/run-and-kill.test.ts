/**
 * Running for real on the sshd: targets without review run at once, autoRun runs on approval,
 * non-zero exits fail, and Kill ends the remote process and all its children (checked on the host).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTION } from '../../src/slack/render/blocks.js';
import { ALICE, AUTHOR, blocksText, buttonIds, Harness, MALLORY, TASKS_CHANNEL } from '../support/harness.js';
import { isProcessAlive } from '../support/sshd.js';

async function storedOutput(h: Harness, taskId: number): Promise<string> {
  const rows = await h.database
    .db('output_chunks as o')
    .join('executions as e', 'e.id', 'o.execution_id')
    .where('e.task_id', taskId)
    .orderBy('o.id')
    .select('o.data');
  return rows.map((row: { data: string }) => row.data).join('');
}

async function waitForOutput(h: Harness, taskId: number, pattern: RegExp): Promise<RegExpExecArray> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const match = pattern.exec(await storedOutput(h, taskId));
    if (match) return match;
    if (Date.now() > deadline) throw new Error(`output of #${taskId} never matched ${pattern}: ${await storedOutput(h, taskId)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('running and killing tasks over SSH', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start({
      extraTargets: (ssh) =>
        [
          '  quick:',
          '    timeout: 2s',
          '    hosts:',
          `      - { host: ${ssh.host}, port: ${ssh.port}, user: ${ssh.user} }`,
          '    ssh:',
          `      privateKeyFile: ${ssh.privateKeyPath}`,
          `      knownHosts: "${ssh.knownHosts}"`,
        ].join('\n'),
    });
  });
  afterAll(async () => {
    await h.stop();
  });

  it('runs a task on a target without review at once', async () => {
    const ack = await h.command('run sandbox -m "quick look" echo "no review needed" && uname -s');
    expect(ack.json.text).toMatch(/no review, so it runs now/);
    const id = Number(/#(\d+)/.exec(ack.json.text)?.[1]);
    const task = await h.waitForStatus(id, ['success', 'failure']);
    expect(task.status).toBe('success');
    expect(await storedOutput(h, id)).toBe('no review needed\nLinux\n');
    expect(task.result.lastLine).toBe('Linux');
    const events = await h.database.db('events').where({ task_id: id }).orderBy('id').pluck('type');
    expect(events).toEqual(['task.created', 'task.ready', 'task.running', 'task.success']);
    expect(h.fake.messages().filter((m) => m.channel === 'CREVIEW' && blocksText(m).includes(`*#${id}*`))).toEqual([]);
  });

  it('runs the interpreter of the task type, with a script full of shell metacharacters intact', async () => {
    const script = "import sys\nprint('quotes \" \\' $HOME `id` $(id) ; | & < >')\nprint('py', sys.version_info[0])";
    const id = await h.createTask(`run sandbox \`\`\`python\n${script}\n\`\`\``);
    const task = await h.waitForStatus(id, ['success', 'failure']);
    expect(task.type).toBe('python3');
    expect(task.status).toBe('success');
    expect(await storedOutput(h, id)).toBe('quotes " \' $HOME `id` $(id) ; | & < >\npy 3\n');
  });

  it('fails with the exit code, keeping stderr', async () => {
    const id = await h.createTask('run sandbox -m "should fail" echo "bad thing" >&2; exit 3');
    const task = await h.waitForStatus(id, ['success', 'failure']);
    expect(task.status).toBe('failure');
    expect(task.result.exitCode).toBe(3);
    expect(task.result.failureMessage).toBe('the script exited with code 3');
    const stderr = await h.database
      .db('output_chunks')
      .join('executions', 'executions.id', 'output_chunks.execution_id')
      .where({ task_id: id, stream: 'stderr' })
      .pluck('data');
    expect(stderr.join('')).toBe('bad thing\n');
    const card = await h.card(id, 'failure');
    expect(blocksText(card)).toMatch(/exit code \*3\*/);
  });

  it('runs at once when the last approval lands on an autoRun target', async () => {
    const id = await h.createTask('run auto-prod -m "auto" echo auto-ran');
    const request = await h.reviewRequest(id);
    await h.click(request, ACTION.approve, ALICE);
    const task = await h.waitForStatus(id, ['success', 'failure']);
    expect(task.status).toBe('success');
    const events = await h.database.db('events').where({ task_id: id }).orderBy('id').select('type', 'actor', 'data');
    expect(events.map((e: { type: string }) => e.type)).toEqual([
      'task.created',
      'task.pending-review',
      'review.approved',
      'task.approved',
      'task.ready',
      'task.running',
      'task.success',
    ]);
    expect(events.find((e: { type: string }) => e.type === 'task.ready').data).toMatchObject({ autoRun: true });
  });

  it('kills the remote process and all its children, and only for the author or a reviewer', async () => {
    const id = await h.createTask('run sandbox -m "long" ```\nsleep 300 &\necho "child $!"\necho "main $$"\nwait\n```');
    const match = await waitForOutput(h, id, /child (\d+)\nmain (\d+)\n/);
    const [child, main] = [Number(match[1]), Number(match[2])];
    expect(isProcessAlive(child) && isProcessAlive(main)).toBe(true);

    const card = await h.card(id, 'running');
    expect(buttonIds(card)).toEqual([ACTION.kill]);
    const seen = h.fake.responses.length;
    await h.click(card, ACTION.kill, MALLORY);
    await h.fake.waitFor(() => h.fake.responses.length > seen || undefined, 5000, 'kill refusal');
    expect(h.responsesSince(seen)[0]).toMatch(/There is no task #\d+\./); // MALLORY may not see it: nothing named
    // ALICE may see it (she is in the card's channel) but is neither its author nor a reviewer
    // (sandbox has no review): she is told who may kill it.
    const seenAlice = h.fake.responses.length;
    await h.click(card, ACTION.kill, ALICE);
    await h.fake.waitFor(() => h.fake.responses.length > seenAlice || undefined, 5000, "ALICE's kill refusal");
    expect(h.responsesSince(seenAlice)[0]).toMatch(/Only its author can kill #\d+\./);
    expect((await h.task(id))?.status).toBe('running');
    expect(isProcessAlive(child)).toBe(true);

    // A double click acts once.
    await Promise.all([h.click(card, ACTION.kill, AUTHOR), h.click(card, ACTION.kill, AUTHOR)]);
    const task = await h.waitForStatus(id, ['killed', 'failure', 'success']);
    expect(task.status).toBe('killed');
    expect(isProcessAlive(main)).toBe(false);
    expect(isProcessAlive(child)).toBe(false);
    const stopEvents = await h.database.db('events').where({ task_id: id, type: 'execution.stop-requested' }).count<{ count: string }[]>('* as count');
    expect(Number(stopEvents[0]?.count)).toBe(1);
    const finalCard = await h.card(id, 'killed');
    expect(blocksText(finalCard)).toContain(`killed by <@${AUTHOR}>`);
    expect(buttonIds(finalCard)).toEqual([ACTION.again]);
    void TASKS_CHANNEL;
  });

  it('kills a script that ignores TERM with KILL after the grace period', async () => {
    const pidFile = join(h.scratchDir(), 'pids');
    const id = await h.createTask(`run sandbox \`\`\`\ntrap '' TERM\n(trap '' TERM; sleep 300) &\necho "$! $$" > ${pidFile}\necho started\nwait\n\`\`\``);
    await waitForOutput(h, id, /started/);
    const pids = readFileSync(pidFile, 'utf8').trim().split(' ').map(Number);
    expect(pids.every(isProcessAlive)).toBe(true);
    const started = Date.now();
    expect((await h.app.service.kill(id, AUTHOR)).ok).toBe(true);
    const task = await h.waitForStatus(id, ['killed', 'failure']);
    expect(task.status).toBe('killed');
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400); // TERM was ignored; KILL came after the 1.5 s grace
    expect(pids.some(isProcessAlive)).toBe(false);
  });

  it('stops a run that outlives the target timeout, and fails it saying so', async () => {
    const id = await h.createTask('run quick -m "too slow" echo begun; sleep 60 & echo "$!" ; wait');
    const match = await waitForOutput(h, id, /begun\n(\d+)\n/);
    const sleeper = Number(match[1]);
    const task = await h.waitForStatus(id, ['failure', 'success', 'killed'], 15_000);
    expect(task.status).toBe('failure');
    expect(task.result.failureMessage).toBe('timed out after 2.0s and was stopped');
    expect(isProcessAlive(sleeper)).toBe(false);
    const card = await h.card(id, 'timed out after 2.0s');
    expect(blocksText(card)).toContain(':red_circle: failure');
  });
});
