/**
 * User-written regexes cannot stall the process (issue 10 point 1): a signed `/task recipe import`
 * whose input pattern is `(a+)+b` with a default of 30 `a`s, and a start whose value makes a
 * backtracking engine explode, are answered at once while /healthz keeps answering: patterns run
 * in the linear-time engine and what they look at is bounded. A custom redaction rule `(a+)+b`
 * scans a real run's 10,000-character line of `a`s the same way.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RUNBOOK_MODAL_CALLBACK } from '../../src/slack/render/blocks.js';
import { AUTHOR, Harness, ackText } from '../support/harness.js';

/** Health checks one after another until stopped; each one's latency in ms. */
function pollHealth(url: string): { stop(): Promise<number[]> } {
  const latencies: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const started = performance.now();
      const response = await fetch(`${url}/healthz`);
      await response.text();
      latencies.push(performance.now() - started);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return latencies;
    },
  };
}

/** A backtracking engine needs seconds here; the linear one milliseconds. A loaded CI box gets slack. */
const HEALTH_MAX_MS = 1000;

describe('user-written patterns', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await Harness.start({
      extraTargets: (ssh) =>
        [
          '  redacting:',
          '    hosts:',
          `      - { host: ${ssh.host}, port: ${ssh.port}, user: ${ssh.user} }`,
          '    ssh:',
          `      privateKeyFile: ${ssh.privateKeyPath}`,
          `      knownHosts: "${ssh.knownHosts}"`,
          '    redact: [email, "(a+)+b", "token-[a-z0-9]+"]',
        ].join('\n'),
    });
  }, 60_000);
  afterAll(async () => {
    await h?.stop();
  });

  it("a recipe import with (a+)+b and a default of 30 a's is refused at once; /healthz answers meanwhile", async () => {
    const json = JSON.stringify({
      name: 'evil',
      target: 'sandbox',
      script: 'echo "$1"',
      arguments: [{ name: 'x', kind: 'input', pattern: '(a+)+b', default: 'a'.repeat(30) }],
    });
    const health = pollHealth(h.app.url);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const response = await h.command(`recipe import \`\`\`${json}\`\`\``);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const latencies = await health.stop();
    expect(response.status).toBe(200);
    expect(response.ms).toBeLessThan(3000);
    expect(ackText(response)).toContain('arguments[0].default: the default does not match the pattern');
    expect(await h.count('runbooks')).toBe(0);
    console.info(
      `recipe import answered in ${response.ms.toFixed(0)} ms; /healthz during it: ${latencies.length} answers, slowest ${Math.max(...latencies).toFixed(0)} ms`,
    );
    expect(latencies.length).toBeGreaterThan(3);
    expect(Math.max(...latencies)).toBeLessThan(HEALTH_MAX_MS);
  }, 20_000);

  it('patterns RE2 cannot run are refused at import, naming the field', async () => {
    const json = JSON.stringify({ name: 'backref', target: 'sandbox', script: 'echo "$1"', arguments: [{ name: 'x', kind: 'input', pattern: '(\\w+) \\1' }] });
    expect(ackText(await h.command(`recipe import \`\`\`${json}\`\`\``))).toContain(
      'arguments[0].pattern: not a valid pattern for the linear-time engine (RE2 syntax',
    );
    expect(await h.count('runbooks')).toBe(0);
  });

  it("starting (a+)+b with 2,900 a's is refused on its field at once; /healthz answers meanwhile", async () => {
    const json = JSON.stringify({
      name: 'nested',
      target: 'sandbox',
      script: 'echo "$1"',
      arguments: [{ name: 'x', kind: 'input', pattern: '(a+)+b', required: true }],
    });
    expect(ackText(await h.command(`recipe import \`\`\`${json}\`\`\``))).toContain('Imported the recipe `nested`');
    const before = h.fake.views.list.length;
    await h.command('start nested');
    const form = await h.fake.waitFor(
      () => {
        const view = h.fake.views.list.slice(before).find((v) => v.callback_id === RUNBOOK_MODAL_CALLBACK);
        return view && view.updates > 0 ? structuredClone(view) : undefined;
      },
      5000,
      'the form',
    );
    const tasks = await h.count('tasks');
    const health = pollHealth(h.app.url);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const refused = await h.driver.submitView({ view: form, user: AUTHOR, values: { 'arg:x': { value: 'a'.repeat(2900) } } });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const latencies = await health.stop();
    expect(refused.json).toMatchObject({ response_action: 'errors', errors: { 'arg:x': 'x: expected a value matching /(a+)+b/' } });
    expect(refused.ms).toBeLessThan(3000);
    expect(await h.count('tasks')).toBe(tasks);
    console.info(`start refused in ${refused.ms.toFixed(0)} ms; /healthz during it: slowest ${Math.max(...latencies).toFixed(0)} ms`);
    expect(Math.max(...latencies)).toBeLessThan(HEALTH_MAX_MS);
    // The same pattern still takes what it describes.
    const good = await h.driver.submitView({ view: form, user: AUTHOR, values: { 'arg:x': { value: 'aaab' } } });
    expect(JSON.stringify(good.json)).toMatch(/#\d+/);
  }, 20_000);

  it("a custom redact rule (a+)+b scans a 10,000-character line of a's from a real run without stalling", async () => {
    const health = pollHealth(h.app.url);
    const id = await h.createTask('run redacting -m "long line" printf \'a%.0s\' $(seq 1 10000); echo; echo "token-xyz123 aaab bob@example.com"');
    const task = await h.waitForStatus(id, ['success', 'failure'], 20_000);
    const latencies = await health.stop();
    expect(task.status).toBe('success');
    const rows = await h.database
      .db('output_chunks as o')
      .join('executions as e', 'e.id', 'o.execution_id')
      .where('e.task_id', id)
      .orderBy('o.id')
      .pluck('o.data');
    const output = rows.join('');
    expect(output).toContain(`${'a'.repeat(10_000)}\n`);
    expect(output).toContain('[redacted:custom] [redacted:custom] [redacted:email]');
    expect(output).not.toContain('token-xyz123');
    console.info(`run with a 10,000-character line through (a+)+b: /healthz slowest ${Math.max(...latencies).toFixed(0)} ms over ${latencies.length} answers`);
    expect(Math.max(...latencies)).toBeLessThan(HEALTH_MAX_MS);
  }, 30_000);
});
