import { describe, expect, it } from 'vitest';
import { HELP_TEXT, MAX_SCRIPT_BYTES, parseTaskCommand, RUN_USAGE, type ParseResult } from '../../src/domain/command.js';

function run(text: string) {
  const result = parseTaskCommand(text);
  if (!result.ok) throw new Error(`expected a command, got error: ${result.error}`);
  if (result.command.kind !== 'run') throw new Error(`expected run, got ${result.command.kind}`);
  return result.command;
}

function error(text: string): string {
  const result: ParseResult = parseTaskCommand(text);
  if (result.ok) throw new Error(`expected an error for ${JSON.stringify(text)}`);
  return result.error;
}

describe('/task command parser', () => {
  it('parses a one-line run with a quoted message', () => {
    expect(run('run web-prod -m "disk full?" df -h /var')).toEqual({
      kind: 'run',
      target: 'web-prod',
      message: 'disk full?',
      type: null,
      script: 'df -h /var',
      delayMs: null,
    });
  });

  it('accepts single, curly and unquoted messages, --message and escaped quotes', () => {
    expect(run("run a -m 'why not' uptime").message).toBe('why not');
    expect(run('run a -m “smart quotes” uptime').message).toBe('smart quotes');
    expect(run('run a -m short uptime')).toMatchObject({ message: 'short', script: 'uptime' });
    expect(run('run a --message "say \\"hi\\"" uptime').message).toBe('say "hi"');
  });

  it('runs without a message', () => {
    expect(run('run web-prod uptime')).toMatchObject({ message: null, script: 'uptime' });
  });

  it('decodes the HTML entities and link markup Slack sends', () => {
    // Raw < > are Slack's markup (a link it recognised); escaped ones are what the user typed.
    const cmd = run('run web-prod -m "check" curl -s <http://example.com|example.com> &amp;&amp; echo done &gt; /tmp/x &lt;in');
    expect(cmd.script).toBe('curl -s example.com && echo done > /tmp/x <in');
    expect(run('run web-prod curl <https://example.com/a?b=1>').script).toBe('curl https://example.com/a?b=1');
  });

  it('parses a fenced multi-line script and its language tag', () => {
    const cmd = run('run db -m "vacuum" ```\nset -e\npsql -c "vacuum"\n```');
    expect(cmd.script).toBe('set -e\npsql -c "vacuum"');
    expect(cmd.type).toBeNull();
    const py = run('run db ```python\nimport os\nprint(os.getpid())\n```');
    expect(py).toMatchObject({ type: 'python3', script: 'import os\nprint(os.getpid())' });
    expect(run('run db ```echo one line```').script).toBe('echo one line');
  });

  it('keeps a first fenced line that is not a language tag', () => {
    expect(run('run db ```ls -la\necho hi\n```').script).toBe('ls -la\necho hi');
  });

  it('takes -t and -- ', () => {
    expect(run('run db -t python3 print(1)')).toMatchObject({ type: 'python3', script: 'print(1)' });
    expect(run('run db -- -m is part of the script')).toMatchObject({ message: null, script: '-m is part of the script' });
  });

  it('lets a one-line python script use quotes the shell check would not like', () => {
    expect(run('run db -t python3 print("it\'s")').script).toBe('print("it\'s")');
  });

  it('writes help and usage as Slack text: no raw < > (Slack markup), no fence inside inline code', () => {
    for (const text of [HELP_TEXT, RUN_USAGE]) {
      expect(text).not.toMatch(/[<>]/);
      expect(text).not.toContain('```');
    }
    expect(HELP_TEXT).toContain('/task run &lt;target&gt;');
    // User text echoed in an error is escaped too.
    expect(error('run &lt;!channel&gt; uptime')).toContain('`&lt;!channel&gt;` is not a target name');
  });

  it('answers help', () => {
    expect(parseTaskCommand('help')).toEqual({ ok: true, command: { kind: 'help' } });
    // `/task` alone opens the form.
    expect(parseTaskCommand('   ')).toEqual({ ok: true, command: { kind: 'new' } });
  });

  it('parses new, list, show, logs, kill and targets', () => {
    expect(parseTaskCommand('new')).toEqual({ ok: true, command: { kind: 'new' } });
    expect(parseTaskCommand('list')).toEqual({ ok: true, command: { kind: 'list', scope: 'mine' } });
    for (const scope of ['mine', 'pending', 'running', 'all'])
      expect(parseTaskCommand(`list ${scope}`)).toEqual({ ok: true, command: { kind: 'list', scope } });
    expect(parseTaskCommand('LIST Pending')).toEqual({ ok: true, command: { kind: 'list', scope: 'pending' } });
    expect(parseTaskCommand('show 42')).toEqual({ ok: true, command: { kind: 'show', taskId: 42 } });
    expect(parseTaskCommand('logs #7')).toEqual({ ok: true, command: { kind: 'logs', taskId: 7 } });
    expect(parseTaskCommand('kill 3')).toEqual({ ok: true, command: { kind: 'kill', taskId: 3 } });
    expect(parseTaskCommand('targets')).toEqual({ ok: true, command: { kind: 'targets' } });
  });

  it('refuses bad arguments to the other subcommands, saying how to write them', () => {
    expect(error('list everything')).toMatch(/`mine` \(default\), `pending`, `running` or `all`, not `everything`/);
    expect(error('show')).toMatch(/Which task\? Write `\/task show &lt;id&gt;`/);
    expect(error('kill abc')).toMatch(/Which task\? Write `\/task kill &lt;id&gt;`/);
    expect(error('show 4 5')).toMatch(/Unexpected `5`/);
    expect(error('new web-prod')).toMatch(/takes nothing after it/);
    expect(error('targets all')).toMatch(/takes nothing after it/);
  });

  it('reads a grace delay with --in', () => {
    const parsed = parseTaskCommand('run web-prod --in 10m -m "later" uptime');
    expect(parsed).toEqual({ ok: true, command: { kind: 'run', target: 'web-prod', message: 'later', type: null, script: 'uptime', delayMs: 600_000 } });
    expect(error('run web-prod --in soon uptime')).toMatch(/`--in` takes a delay such as `10m`, `2h` or `1d`, not `soon`/);
    expect(error('run web-prod --in 8d uptime')).toMatch(/at most 7 days/);
    expect(error('run web-prod --in')).toMatch(/`--in` takes a delay/);
  });

  it('explains each bad input and how to write it', () => {
    expect(error('deploy web-prod')).toMatch(/Unknown subcommand `deploy`.*\/task run &lt;target&gt;/);
    expect(error('run')).toMatch(/Which target\?/);
    expect(error('run web-prod')).toMatch(/script is empty/);
    expect(error('run web-prod -m "why"')).toMatch(/script is empty/);
    expect(error('run web-prod -m "why uptime')).toMatch(/no closing " quote/);
    expect(error('run web-prod -m')).toMatch(/-m` needs a message/);
    expect(error('run web-prod echo "unclosed')).toMatch(/unclosed " quote/);
    expect(error("run web-prod echo it's")).toMatch(/unclosed ' quote/);
    expect(error('run web-prod ```\necho hi\n')).toMatch(/fence is not closed/);
    expect(error('run web-prod ```echo hi``` trailing')).toMatch(/text after the closing/);
    expect(error('run web-prod echo ```x```')).toMatch(/one ```fenced``` block/);
    expect(error('run web-prod -t perl print')).toMatch(/Unknown script type `perl`/);
    expect(error('run web/prod uptime')).toMatch(/not a target name/);
    expect(error('run web -m "a" -m "b" uptime')).toMatch(/only once/);
  });

  it('ignores quotes inside comments and escapes when checking balance', () => {
    expect(run("run a echo ok # don't mind me").script).toBe("echo ok # don't mind me");
    expect(run("run a echo it\\'s").script).toBe("echo it\\'s");
    expect(run(`run a echo "it's" 'say "x"'`).script).toBe(`echo "it's" 'say "x"'`);
  });

  it('refuses a script over 64 KiB and accepts one at the limit', () => {
    const atLimit = 'x'.repeat(MAX_SCRIPT_BYTES);
    expect(run(`run a \`\`\`\n${atLimit}\n\`\`\``).script.length).toBe(MAX_SCRIPT_BYTES);
    expect(error(`run a \`\`\`\n${atLimit}y\n\`\`\``)).toMatch(/limit is 64 KiB/);
    // Bytes, not characters: 3-byte characters reach the limit sooner.
    expect(error(`run a \`\`\`\n${'€'.repeat(22_000)}\n\`\`\``)).toMatch(/limit is 64 KiB/);
  });
});
