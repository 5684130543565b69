/**
 * Every way the app talks to Slack goes through its own HTTP client (src/slack/slackFetch.ts):
 * the background client's posts, Bolt's client in the listeners, and respond() to a
 * response_url. Node's fetch, the libraries' default, asks for compressed answers on every
 * request (Accept-Encoding); countersign's client never does, so that header tells the two apart
 * on the wire.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTION } from '../../src/slack/render/blocks.js';
import { ALICE, Harness, MALLORY } from '../support/harness.js';

describe("the app's Slack HTTP client", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start();
  });
  afterAll(async () => {
    await h.stop();
  });

  it('carries the background posts, the listeners calls and response_url answers, none asking for compression', async () => {
    const id = await h.createTask('run web-prod -m "which client" uptime');
    // The card and the review request: posted by the background client.
    const request = await h.reviewRequest(id);
    await h.card(id);
    // A refusal answered through the click's response_url (Bolt's respond()).
    const seen = h.fake.responses.length;
    await h.click(request, ACTION.approve, MALLORY);
    await h.fake.waitFor(() => h.fake.responses.length > seen || undefined, 5000, 'the refusal');
    // Reject opens its form with Bolt's own client (views.open), from the listener.
    await h.click(request, ACTION.reject, ALICE);
    await h.fake.waitFor(() => h.fake.callsTo('views.open').length > 0 || undefined, 5000, 'the reject form');

    const posts = h.fake.callsTo('chat.postMessage');
    const opened = h.fake.callsTo('views.open');
    const answer = h.fake.responses.at(-1)!;
    expect(posts.length).toBeGreaterThanOrEqual(2);
    for (const call of [...posts, ...opened]) {
      expect(call.headers['user-agent']).toMatch(/@slack:web-api/);
      expect(call.headers['accept-encoding']).toBeUndefined();
    }
    expect(answer.headers['content-type']).toBe('application/json');
    expect(answer.headers['accept-encoding']).toBeUndefined();
  });
});
