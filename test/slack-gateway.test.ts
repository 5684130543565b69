/**
 * The gateway's pacing against the fake Slack Web API (which enforces Slack's limits): posts to
 * one channel are spread out past the burst, chat.update stays under the workspace budget, and
 * log output yields to cards when the budget runs low.
 */
import { WebClient } from '@slack/web-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlackGateway, SlackRateLimited } from '../src/slack/gateway.js';
import { TokenBucket } from '../src/slack/tokenBucket.js';
import { startFakeSlack, type FakeSlack } from './support/fakeSlack.js';

describe('SlackGateway pacing', () => {
  let fake: FakeSlack;
  beforeAll(async () => {
    // Slack's own limits: 3-post bursts then 1/s per channel; chat.update 120/min for this test.
    fake = await startFakeSlack({ token: 'xoxb-gw', postMessageBurst: 3, chatUpdatePerMinute: 120 });
  });
  afterAll(async () => {
    await fake.close();
  });

  const gateway = (updatesPerMinute: number) =>
    new SlackGateway(new WebClient('xoxb-gw', { slackApiUrl: fake.url, rejectRateLimitedCalls: true, retryConfig: { retries: 0 } }), {
      // A little under Slack's one a second: pacing exactly at a limit meets it now and then.
      postMessageSpacingMs: 1100,
      postMessageBurst: 3,
      updatesPerMinute,
      updateBurst: 3,
      updateReserveForViews: 1,
    });

  it('spreads posts to one channel at about one a second after a burst of three, so Slack never says 429', async () => {
    const gw = gateway(120);
    // The connection to Slack open first: a first post that waits for it (a loaded machine: 100 ms
    // and more) reaches Slack late, and the fourth, paced from when it was asked for, too soon after.
    await gw.postMessage({ channel: 'CWARM', text: 'connection' });
    const started = Date.now();
    const posted = await Promise.all(Array.from({ length: 6 }, (_, i) => gw.postMessage({ channel: 'CPACE', text: `message ${i}` })));
    expect(posted).toHaveLength(6);
    const calls = fake.callsTo('chat.postMessage').filter((c) => c.args.channel === 'CPACE');
    expect(calls.every((c) => c.status === 200)).toBe(true);
    // Three at once, then one per second.
    expect(Date.now() - started).toBeGreaterThanOrEqual(3200);
    // Another channel is not held back by this one.
    const other = Date.now();
    await gw.postMessage({ channel: 'COTHER', text: 'not waiting' });
    expect(Date.now() - other).toBeLessThan(500);
  });

  it('keeps chat.update within the workspace budget, and makes log output yield to cards', async () => {
    const gw = gateway(120); // 2 a second, burst 3, 1 kept for cards
    const { ts } = await gw.postMessage({ channel: 'CUPD', text: 'card' });
    // Log updates take what is above the reserve, then are told to wait.
    const outcomes: string[] = [];
    for (let i = 0; i < 4; i++) {
      try {
        await gw.update({ channel: 'CUPD', ts, text: `log ${i}` }, 'log');
        outcomes.push('sent');
      } catch (error) {
        expect(error).toBeInstanceOf(SlackRateLimited);
        outcomes.push('deferred');
      }
    }
    expect(outcomes).toEqual(['sent', 'sent', 'deferred', 'deferred']);
    // A card update still goes through, waiting its turn rather than failing.
    const started = Date.now();
    await gw.update({ channel: 'CUPD', ts, text: 'card v2' }, 'view');
    await gw.update({ channel: 'CUPD', ts, text: 'card v3' }, 'view');
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(fake.message('CUPD', ts)?.text).toBe('card v3');
    expect(fake.callsTo('chat.update').every((c) => c.status === 200)).toBe(true);
  });

  it('token buckets queue takers in order and refill over time', () => {
    let now = 0;
    const bucket = new TokenBucket(2, 1 / 1000, () => now);
    expect([bucket.take(), bucket.take(), bucket.take(), bucket.take()]).toEqual([0, 0, 1000, 2000]);
    now = 5000;
    expect(bucket.available()).toBe(2);
    expect(bucket.msUntil(3)).toBe(1000);
    // A token given back goes to the next taker, never above the capacity.
    bucket.take();
    bucket.take();
    bucket.giveBack();
    expect(bucket.take()).toBe(0);
    bucket.giveBack();
    bucket.giveBack();
    bucket.giveBack();
    expect(bucket.available()).toBe(2);
  });

  it('holds a post slot back while Slack asks to wait after a 429, so no claim is held through the wait', async () => {
    // No pacing of its own: the fake's limit (3, then 1/s per channel) answers the fourth with a 429.
    const eager = new SlackGateway(new WebClient('xoxb-gw', { slackApiUrl: fake.url, rejectRateLimitedCalls: true, retryConfig: { retries: 0 } }), {
      postMessageSpacingMs: 1,
      postMessageBurst: 100,
      updatesPerMinute: 120,
      updateBurst: 3,
      updateReserveForViews: 1,
    });
    const results = await Promise.allSettled(Array.from({ length: 4 }, (_, i) => eager.postMessage({ channel: 'CFLOOD', text: `flood ${i}` })));
    expect(results.filter((r) => r.status === 'rejected')).toHaveLength(1);
    // A promised turn is held back as long.
    expect(eager.postTurn('CELSEWHERE-TURN', 'task:9:card')).toBeGreaterThanOrEqual(800);
    const started = Date.now();
    await eager.postSlot('CELSEWHERE');
    expect(Date.now() - started).toBeGreaterThanOrEqual(800);
  });

  it('promises a post its channel turn once, says how long is left when asked again, and uses it up when it comes', async () => {
    const gw = gateway(120);
    for (let i = 0; i < 3; i++) expect(gw.postTurn('CTURN', `burst ${i}`)).toBe(0);
    // When each turn comes, in this clock: independent of how long the test itself takes.
    const turnAt = (key: string) => Date.now() + gw.postTurn('CTURN', key);
    const first = turnAt('task:1:card');
    const second = turnAt('task:2:card');
    expect(first - Date.now()).toBeGreaterThan(800);
    expect(second - first).toBeGreaterThan(1000);
    expect(gw.turnsPromised).toBe(2);
    // Asking again takes no second turn: the same time, not one more place in the line.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(Math.abs(turnAt('task:1:card') - first)).toBeLessThan(50);
    const third = turnAt('task:3:card');
    expect(third - second).toBeGreaterThan(1000);
    // Another channel is not held back.
    expect(gw.postTurn('CTURN-OTHER', 'task:1:card')).toBe(0);
    // When the turn comes it is used up; a post waiting by postSlot queues behind the promised turns.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, first - Date.now()) + 20));
    expect(gw.postTurn('CTURN', 'task:1:card')).toBe(0);
    expect(gw.turnsPromised).toBe(2);
    const queued = Date.now();
    await gw.postSlot('CTURN');
    expect(Date.now()).toBeGreaterThanOrEqual(third + 1000);
    expect(Date.now() - queued).toBeGreaterThan(1000);
  });

  it('gives a forgotten turn (the message posted by another process) to the next post', () => {
    const gw = gateway(120);
    for (let i = 0; i < 3; i++) gw.postTurn('CFORGET', `burst ${i}`);
    const promised = gw.postTurn('CFORGET', 'task:1:card');
    expect(promised).toBeGreaterThan(800);
    gw.forgetTurn('CFORGET', 'task:1:card');
    expect(gw.turnsPromised).toBe(0);
    // The next post gets the turn the forgotten one had, not the one after it.
    expect(gw.postTurn('CFORGET', 'task:2:card')).toBeLessThanOrEqual(promised);
    // Forgetting a turn never promised gives nothing back.
    gw.forgetTurn('CFORGET', 'task:9:card');
    expect(gw.postTurn('CFORGET', 'task:3:card')).toBeGreaterThan(promised + 900);
  });

  it('never hands out a turn twice: one forgotten or returned from the middle of the line is lost, not given to the next', () => {
    const gw = gateway(120);
    for (let i = 0; i < 3; i++) gw.postTurn('CLINE', `burst ${i}`);
    const turnAt = (key: string) => Date.now() + gw.postTurn('CLINE', key);
    const first = turnAt('task:1:card');
    const second = turnAt('task:2:card');
    const third = turnAt('task:3:card');
    // The second's post is made elsewhere, and a post whose turn came finds its claim taken: neither is last in line.
    gw.forgetTurn('CLINE', 'task:2:card');
    gw.returnPostSlot('CLINE');
    const fourth = turnAt('task:4:card');
    expect(fourth - third).toBeGreaterThan(1000);
    expect([first, second, third].every((at) => Math.abs(fourth - at) > 1000)).toBe(true);
  });

  it('promises a view its turn on the workspace’s update budget, shared by every channel, and takes a forgotten one back', async () => {
    const gw = gateway(120); // 2 a second, burst 3
    expect([gw.updateTurn('tasks:1:card'), gw.updateTurn('tasks:2:card'), gw.updateTurn('tasks:3:review')]).toEqual([0, 0, 0]);
    const fourth = gw.updateTurn('tasks:4:card');
    expect(fourth).toBeGreaterThan(400);
    expect(gw.updateTurn('tasks:5:card') - fourth).toBeGreaterThan(400);
    // Asked again: the same turn.
    expect(Math.abs(gw.updateTurn('tasks:4:card') - fourth)).toBeLessThan(50);
    // A log update yields while views wait for their turns.
    const { ts } = await gw.postMessage({ channel: 'CUPDTURN', text: 'card' });
    await expect(gw.update({ channel: 'CUPDTURN', ts, text: 'log' }, 'log')).rejects.toBeInstanceOf(SlackRateLimited);
    gw.forgetUpdateTurn('tasks:5:card');
    gw.forgetUpdateTurn('tasks:4:card');
    expect(gw.updateTurn('tasks:6:card')).toBeLessThanOrEqual(fourth + 50);
  });

  it('hands a post slot that was given back (another process posted the message) to the next post at once', async () => {
    const gw = gateway(120);
    for (let i = 0; i < 3; i++) await gw.postSlot('CBACK'); // the burst, used up
    gw.returnPostSlot('CBACK');
    const started = Date.now();
    await gw.postMessage({ channel: 'CBACK', text: 'next' });
    expect(Date.now() - started).toBeLessThan(500);
  });
});
