/**
 * Review of issue 10, H1: a recipe import froze the whole process while its patterns compiled
 * (`(a|b){1000}` written to 1,000 characters compiles to ~250,000 instructions, ~1 s each, and the
 * program-size cap was checked after compiling, twice). Patterns are now sized from their text
 * before anything is compiled, and one recipe's patterns are capped together: the review's
 * imports are refused at once, the event loop keeps ticking and /healthz keeps answering.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RUNBOOK_FORMAT } from '../../src/domain/runbook/definition.js';
import { createApiToken } from '../../src/store/apiTokens.js';
import { AUTHOR, Harness } from '../support/harness.js';

describe('a recipe import with patterns that compile to huge programs', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start();
  });
  afterAll(async () => {
    await h?.stop();
  });

  /** Imports `patterns` arguments whose pattern is `(a|x){1000}` written `repeat` times; measures the event loop and /healthz meanwhile. */
  const importFreezer = async (patterns: number, repeat: number) => {
    const letters = 'bcdefghijklmnopqrstuvwxyz';
    const args = Array.from({ length: patterns }, (_, i) => ({ name: `a${i}`, kind: 'input', pattern: `(a|${letters[i]}){1000}`.repeat(repeat) }));
    const json = JSON.stringify({ name: `freeze-${patterns}-${repeat}`, target: 'sandbox', script: 'true', arguments: args });
    // The longest gap between two ticks of a 10 ms timer: how long the event loop was held.
    let worstGap = 0;
    let last = Date.now();
    const ticker = setInterval(() => {
      worstGap = Math.max(worstGap, Date.now() - last);
      last = Date.now();
    }, 10);
    await new Promise((r) => setTimeout(r, 100));
    let healthChecks = 0;
    let slowestHealth = 0;
    let importing = true;
    const health = (async () => {
      while (importing) {
        const started = Date.now();
        const response = await fetch(`${h.app.url}/healthz`);
        await response.arrayBuffer();
        expect(response.status).toBe(200);
        slowestHealth = Math.max(slowestHealth, Date.now() - started);
        healthChecks++;
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const started = Date.now();
    const answer = await h.command(`recipe import \`\`\`${json}\`\`\``, AUTHOR);
    const took = Date.now() - started;
    importing = false;
    await health;
    clearInterval(ticker);
    const text = String(answer.json?.text ?? answer.text);
    console.log(
      `${json.length} characters of JSON: answered in ${took} ms; event loop held at most ${worstGap} ms; ${healthChecks} /healthz answers, slowest ${slowestHealth} ms; answer: ${text.slice(0, 200)}`,
    );
    expect(healthChecks).toBeGreaterThan(0);
    expect(slowestHealth).toBeLessThan(1000);
    return { took, worstGap, text, status: answer.status };
  };

  it('refuses 4 patterns of ~900 characters (3.8 KB) by their total program, compiling none (main held the event loop ~5 s)', async () => {
    const { worstGap, text, status } = await importFreezer(4, 83);
    expect(status).toBe(200);
    expect(text).toMatch(/arguments: the patterns together compile to more than 10000 steps \(at most 10000 in one recipe or runbook\)/);
    expect(await h.count('runbooks', { reference: 'freeze-4-83' })).toBe(0);
    // Compiling even one of these patterns holds the loop ~1 s; refusing them costs microseconds.
    // The bound leaves room for a loaded machine's pauses.
    expect(worstGap).toBeLessThan(1000);
  }, 60_000);

  it('refuses the largest import the schema allows (20 patterns of ~900 characters) by their total length (main: 34 s)', async () => {
    const { worstGap, took, text } = await importFreezer(20, 83);
    expect(text).toMatch(/arguments: the patterns add up to 18260 characters, at most 4000 in one recipe or runbook/);
    expect(await h.count('runbooks', { reference: 'freeze-20-83' })).toBe(0);
    expect(took).toBeLessThan(3000); // Slack gives up on an ack after 3 s
    expect(worstGap).toBeLessThan(1000);
  }, 60_000);

  it('refuses one pattern whose program would be too big before compiling it, naming the argument', async () => {
    const { worstGap, text } = await importFreezer(3, 1);
    expect(text).toMatch(
      /arguments\[0\]\.pattern: the pattern is too complex to match quickly \(it compiles to more than 2000 steps, at most 1000\): use smaller repeat counts/,
    );
    expect(text).toMatch(/arguments\[2\]\.pattern: the pattern is too complex/);
    expect(worstGap).toBeLessThan(1000);
  }, 60_000);

  it('refuses a runbook import (API) whose 800 input fields carry distinct patterns, by their total, before compiling any', async () => {
    const { token } = await createApiToken(h.database.db, AUTHOR, 'runbooks');
    // 40 input steps of 20 fields, each pattern different (no cache helps): each alone is allowed.
    const steps = Array.from({ length: 40 }, (_, s) => ({
      id: `ask${s}`,
      input: { fields: Array.from({ length: 20 }, (_, f) => ({ name: `f${f}`, kind: 'input', pattern: `[a-z]{1,${200 + s * 20 + f}}` })) },
    }));
    const body = JSON.stringify({ format: RUNBOOK_FORMAT, reference: 'many-patterns', steps });
    let worstGap = 0;
    let last = Date.now();
    const ticker = setInterval(() => {
      worstGap = Math.max(worstGap, Date.now() - last);
      last = Date.now();
    }, 10);
    const started = Date.now();
    const response = await fetch(`${h.app.url}/api/v1/runbooks`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body,
    });
    const answer = (await response.json()) as { error?: { code: string; message: string } };
    clearInterval(ticker);
    console.log(
      `runbook of ${body.length} characters, 800 patterns: answered ${response.status} in ${Date.now() - started} ms; event loop held at most ${worstGap} ms`,
    );
    expect(response.status).toBe(422);
    expect(answer.error?.message).toMatch(/the patterns add up to \d+ characters, at most 4000 in one recipe or runbook/);
    expect(await h.count('runbooks', { reference: 'many-patterns' })).toBe(0);
    expect(worstGap).toBeLessThan(1000);
  }, 60_000);

  it('still imports a recipe with everyday patterns', async () => {
    const json = JSON.stringify({
      name: 'everyday',
      target: 'sandbox',
      script: 'echo "$1"',
      arguments: [{ name: 'host', kind: 'input', pattern: '[a-z][a-z0-9-]{0,62}(\\.[a-z0-9-]{1,63}){0,4}' }],
    });
    const answer = await h.command(`recipe import \`\`\`${json}\`\`\``, AUTHOR);
    expect(String(answer.json?.text ?? answer.text)).not.toMatch(/too complex|add up to/);
    expect(await h.count('runbooks', { reference: 'everyday' })).toBe(1);
  }, 30_000);
});
