/**
 * What leaves a host: secrets reach the script as environment variables and are masked
 * everywhere (even split across chunks), redaction rules scrub output before it is stored or
 * shown, runAs runs the script as another user (and Kill still reaches it), and a flood of
 * output is capped in storage while its last lines are kept.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTHOR, blocksText, Harness, LOGIN_USER, TASKS_CHANNEL } from '../support/harness.js';
import { ensureUser, isProcessAlive } from '../support/sshd.js';

const ENV_SECRET = `env-secret-${Math.random().toString(36).slice(2)}-Zq9`;
const FILE_SECRET = `file-secret-${Math.random().toString(36).slice(2)}-Xk7`;
const APP_USER = 'countersign-app';

async function storedOutput(h: Harness, taskId: number): Promise<string> {
  const rows = await h.database
    .db('output_chunks as o')
    .join('executions as e', 'e.id', 'o.execution_id')
    .where('e.task_id', taskId)
    .orderBy('o.id')
    .pluck('o.data');
  return rows.join('');
}

/** Every row of every table, as text: a secret must appear in none of it. */
async function wholeDatabase(h: Harness): Promise<string> {
  const tables = await h.database.db('pg_tables').where({ schemaname: 'public' }).pluck('tablename');
  let text = '';
  for (const table of tables) text += JSON.stringify(await h.database.db(table).select('*'));
  return text;
}

describe('secrets, redaction, runAs and big output', () => {
  let h: Harness;
  let psSamples: string[] = [];
  let sampler: NodeJS.Timeout;
  beforeAll(async () => {
    process.env.COUNTERSIGN_TEST_SECRET = ENV_SECRET;
    ensureUser(APP_USER);
    ensureUser(LOGIN_USER);
    // As in production: the login user may run commands as the app user, and nothing else.
    writeFileSync(`/etc/sudoers.d/${LOGIN_USER}`, `${LOGIN_USER} ALL=(${APP_USER}) NOPASSWD: ALL\n`, { mode: 0o440 });
    h = await Harness.start({
      runnerYaml: '  maxOutput: 256KB',
      extraTargets: (ssh) => {
        const secretFile = `${ssh.dir}/api-key`;
        writeFileSync(secretFile, `${FILE_SECRET}\n`, { mode: 0o600 });
        const base = [
          '    hosts:',
          `      - { host: ${ssh.host}, port: ${ssh.port}, user: ${ssh.user} }`,
          '    ssh:',
          `      privateKeyFile: ${ssh.privateKeyPath}`,
          `      knownHosts: "${ssh.knownHosts}"`,
        ];
        return [
          '  vault:',
          ...base,
          '    secrets:',
          '      DB_PASSWORD: { env: COUNTERSIGN_TEST_SECRET }',
          `      API_KEY: { file: ${secretFile} }`,
          '    redact: [email, ipv4, credit-card, aws-key, jwt, "token-[A-Za-z0-9]+"]',
          '  as-app:',
          ...base,
          `    runAs: "sudo -n -u ${APP_USER}"`,
          '    secrets:',
          '      DB_PASSWORD: { env: COUNTERSIGN_TEST_SECRET }',
        ].join('\n');
      },
    });
    // Watch every process's command line on this machine (the host) while the tests run.
    sampler = setInterval(() => {
      try {
        psSamples.push(execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }));
      } catch {
        // ps raced a process exit; the next sample covers it
      }
    }, 50);
  });
  afterAll(async () => {
    clearInterval(sampler);
    await h.stop();
  });

  it('gives the script its secrets and masks them everywhere, even split across chunks', async () => {
    psSamples = [];
    // Each secret printed whole, and printed in two writes with a pause between (two SSH chunks).
    const script = [
      'echo "db=$DB_PASSWORD api=$API_KEY"',
      'printf "%s" "$(echo "$DB_PASSWORD" | cut -c1-8)"; sleep 0.4; printf "%s\\n" "$(echo "$DB_PASSWORD" | cut -c9-)"',
      'printf "%s" "$(echo "$API_KEY" | cut -c1-5)" >&2; sleep 0.4; printf "%s\\n" "$(echo "$API_KEY" | cut -c6-)" >&2',
      'echo "lengths ${#DB_PASSWORD} ${#API_KEY}"',
      'seq -f "filler line %g" 1 400',
      // sshd forwards the stdout and stderr pipes in the order it reads them: on a loaded host
      // the stderr line above could arrive after the last stdout line and be the last line seen.
      'sleep 0.5',
      'echo "last: $DB_PASSWORD"',
    ].join('\n');
    const id = await h.createTask(`run vault -m "uses secrets" \`\`\`\n${script}\n\`\`\``);
    const task = await h.waitForStatus(id, ['success', 'failure'], 20_000);
    expect(task.status).toBe('success');

    const output = await storedOutput(h, id);
    // The script really had them (right lengths), and the output shows only the mask.
    expect(output).toContain(`lengths ${ENV_SECRET.length} ${FILE_SECRET.length}`);
    expect(output).toContain('db=***** api=*****');
    expect(output.match(/\*\*\*\*\*/g)?.length).toBeGreaterThanOrEqual(5);
    expect(task.result.lastLine).toBe('last: *****');

    const card = await h.card(id, 'success');
    const file = await h.fake.waitFor(() => h.fake.files.find((f) => f.thread_ts === card.ts), 15_000, 'uploaded log');
    const everywhere = [
      output,
      await wholeDatabase(h),
      JSON.stringify(h.fake.calls),
      JSON.stringify(h.fake.messages()),
      file.content.toString('utf8'),
      psSamples.join('\n'),
    ];
    for (const secret of [ENV_SECRET, FILE_SECRET]) for (const place of everywhere) expect(place.includes(secret)).toBe(false);
    expect(file.content.toString('utf8')).toContain('db=***** api=*****');
    expect(psSamples.length).toBeGreaterThan(5);
    expect(h.fake.thread(TASKS_CHANNEL, card.ts).some((m) => (m.text ?? '').includes('db=***** api=*****'))).toBe(true);
  });

  it('applies the target’s redaction rules before output is stored or shown', async () => {
    const lines = [
      'echo "mail ops@example.com now"',
      'echo "from 10.20.30.40 to 8.8.8.8, version 1.2.3.4.5"',
      'echo "card 4111 1111 1111 1111, not a card 1234 5678 9012 3456"',
      'echo "key AKIAABCDEFGHIJKLMNOP here"',
      'echo "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"',
      'echo "token-abc123XYZ and tokens"',
    ];
    const id = await h.createTask(`run vault -m "pii" \`\`\`\n${lines.join('\n')}\n\`\`\``);
    expect((await h.waitForStatus(id, ['success', 'failure'])).status).toBe('success');
    const output = await storedOutput(h, id);
    expect(output).toBe(
      [
        'mail [redacted:email] now',
        'from [redacted:ipv4] to [redacted:ipv4], version 1.2.3.4.5',
        'card [redacted:credit-card], not a card 1234 5678 9012 3456',
        'key [redacted:aws-key] here',
        'jwt [redacted:jwt]',
        '[redacted:custom] and tokens',
        '',
      ].join('\n'),
    );
    const card = await h.card(id, 'success');
    const shown = await h.fake.waitFor(() => h.fake.thread(TASKS_CHANNEL, card.ts).find((m) => (m.text ?? '').includes('mail')), 10_000, 'thread output');
    expect(shown.text).not.toContain('ops@example.com');
    expect(shown.text).toContain('[redacted:email]');
  });

  it('runs as another user with runAs, secrets included, and Kill still stops it', async () => {
    const id = await h.createTask('run as-app -m "as app" echo "user=$(id -un) secret=${#DB_PASSWORD}"; sleep 300 & echo "pid $!"; wait');
    const deadline = Date.now() + 10_000;
    let output = '';
    while (!/pid (\d+)/.test(output)) {
      if (Date.now() > deadline) throw new Error(`no output: ${output}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
      output = await storedOutput(h, id);
    }
    expect(output).toContain(`user=${APP_USER} secret=${ENV_SECRET.length}`);
    const pid = Number(/pid (\d+)/.exec(output)![1]);
    expect(execFileSync('ps', ['-o', 'user=', '-p', String(pid)], { encoding: 'utf8' }).trim()).toBe(APP_USER);
    expect((await h.app.service.kill(id, AUTHOR)).ok).toBe(true);
    expect((await h.waitForStatus(id, ['killed', 'failure'], 15_000)).status).toBe('killed');
    expect(isProcessAlive(pid)).toBe(false);
  });

  it('caps stored output, keeping the head and the last lines, and says how much was dropped', async () => {
    const id = await h.createTask('run vault -m "flood" seq -f "flood line %g" 1 200000; echo "the very end"');
    const task = await h.waitForStatus(id, ['success', 'failure'], 60_000);
    expect(task.status).toBe('success');
    const output = await storedOutput(h, id);
    expect(Buffer.byteLength(output)).toBeLessThanOrEqual(256 * 1024 + 400);
    expect(output.startsWith('flood line 1\nflood line 2\n')).toBe(true);
    expect(output).toMatch(/\[… countersign dropped \d+ bytes of output here/);
    expect(output.endsWith('flood line 199999\nflood line 200000\nthe very end\n')).toBe(true);
    expect(task.result.lastLine).toBe('the very end');
    const card = await h.card(id, 'success');
    expect(blocksText(card)).toContain('Last line: `the very end`');
  });
});
