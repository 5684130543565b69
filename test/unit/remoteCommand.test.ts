// The fixed wrapper a run executes over SSH: built from the script type and a token we generate,
// never from the script; valid POSIX shell; and (run locally under sh and bash) it really takes
// the script on stdin, runs it under the right interpreter, cleans up, and can be stopped.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { INTERPRETERS, SCRIPT_TYPES } from '../../src/domain/scriptTypes.js';
import {
  encodeStdin,
  newRunToken,
  outputFileCommand,
  remoteCommand as buildCommand,
  secretNameProblem,
  stopCommand,
  survivorsCommand,
} from '../../src/exec/remoteCommand.js';
import type { ScriptType } from '../../src/domain/scriptTypes.js';
import { RESERVED_SECRET_NAMES } from '../support/reservedNames.js';

/** The wrapper without runAs, as most tests need it. */
const remoteCommand = (type: ScriptType, token: string, scriptBytes: number) => buildCommand({ type, token, scriptBytes, runAs: null });

const TOKEN = '0123456789abcdef01234567';
/**
 * The login shells the wrapper claims to support that are installed here, each once (`sh` is
 * usually dash or bash under another name), and BusyBox's ash. sshd runs both the wrapper and the
 * stop command with the login user's shell, so each is tried under every one.
 */
const SHELLS = (() => {
  const seen = new Set<string>();
  const shells: string[] = [];
  for (const shell of ['bash', 'dash', 'sh', 'zsh']) {
    const found = spawnSync('sh', ['-c', `command -v ${shell}`], { encoding: 'utf8' }).stdout.trim();
    if (found === '') continue;
    const real = realpathSync(found);
    if (seen.has(real)) continue;
    seen.add(real);
    shells.push(shell);
  }
  // BusyBox's ash, Alpine's login shell (busybox runs the applet its name says; .ci/run installs
  // it), as `ash` on this process's PATH, which the shells started here inherit.
  const busybox = spawnSync('sh', ['-c', 'command -v busybox'], { encoding: 'utf8' }).stdout.trim();
  if (busybox !== '' && spawnSync('sh', ['-c', 'command -v ash'], { encoding: 'utf8' }).stdout.trim() === '') {
    const dir = join(tmpdir(), 'countersign-test-busybox');
    if (!existsSync(join(dir, 'ash'))) {
      mkdirSync(dir, { recursive: true });
      symlinkSync(busybox, join(dir, 'ash'));
    }
    process.env.PATH = `${process.env.PATH ?? ''}:${dir}`;
  }
  if (spawnSync('sh', ['-c', 'command -v ash'], { encoding: 'utf8' }).stdout.trim() !== '') shells.push('ash');
  return shells;
})();

/** `sh -n -c`: parses the command without running it. */
function syntaxCheck(shell: string, command: string) {
  return spawnSync(shell, ['-n', '-c', command], { encoding: 'utf8' });
}

describe('remoteCommand', () => {
  it('is built only from the type and the token: the same template for every type', () => {
    const templates = SCRIPT_TYPES.map((type) => {
      const command = remoteCommand(type, TOKEN, 1234);
      // Deterministic: nothing else goes in.
      expect(remoteCommand(type, TOKEN, 1234)).toBe(command);
      expect(command.endsWith(`; COUNTERSIGN_RUN=${TOKEN} ${INTERPRETERS[type]} "$__cs_f" "$@" < /dev/null`)).toBe(true);
      return command.replaceAll(TOKEN, '<token>').replaceAll('1234', '<bytes>').slice(0, -`${INTERPRETERS[type]} "$__cs_f" "$@" < /dev/null`.length);
    });
    expect(new Set(templates).size).toBe(1);
    expect(templates[0]).toContain('countersign-<token>');
    // The script arrives on stdin and the interpreter gets /dev/null, not the script.
    expect(templates[0]).toContain('head -c <bytes> > "$__cs_f"');
    // ...and is checked to have arrived whole (the end mark after it) before anything runs.
    expect(templates[0]).toContain('case countersign-end in "$__cs_end") true ;;');
  });

  it('takes no script: the parameters are a type from the fixed table and a token', () => {
    // A script-shaped string can reach neither parameter.
    for (const token of ['$(reboot)', 'abc; rm -rf /', '0123456789ABCDEF0123', 'abc', `${TOKEN} `, `${TOKEN}\n`, '']) {
      expect(() => remoteCommand('bash', token, 0), JSON.stringify(token)).toThrow();
      expect(() => stopCommand(token, 'TERM', null), JSON.stringify(token)).toThrow();
      expect(() => survivorsCommand(token, null), JSON.stringify(token)).toThrow();
    }
    for (const bytes of [-1, 1.5, Number.NaN]) expect(() => remoteCommand('bash', TOKEN, bytes)).toThrow();
    expect(INTERPRETERS).toEqual({ bash: 'bash', sh: 'sh', python3: 'python3', node: 'node' });
  });

  it('generates fresh hex tokens it accepts', () => {
    const a = newRunToken();
    const b = newRunToken();
    expect(a).toMatch(/^[a-f0-9]{24}$/);
    expect(a).not.toBe(b);
    expect(() => remoteCommand('sh', a, 0)).not.toThrow();
  });

  for (const shell of ['sh', ...SHELLS.filter((name) => name !== 'sh')]) {
    it(`is valid ${shell} syntax for every type, as is the stop command`, () => {
      for (const type of SCRIPT_TYPES) {
        const result = syntaxCheck(shell, remoteCommand(type, newRunToken(), 10));
        expect(result.stderr).toBe('');
        expect(result.status, type).toBe(0);
      }
      for (const signal of ['TERM', 'KILL'] as const) expect(syntaxCheck(shell, stopCommand(TOKEN, signal, null)).status).toBe(0);
      expect(syntaxCheck(shell, survivorsCommand(TOKEN, null)).status).toBe(0);
      expect(syntaxCheck(shell, buildCommand({ type: 'bash', token: TOKEN, scriptBytes: 10, runAs: ['sudo', '-n', '-u', 'app'] })).status).toBe(0);
      expect(syntaxCheck(shell, stopCommand(TOKEN, 'KILL', ['sudo', '-n', '-u', 'app'])).status).toBe(0);
    });
  }

  it('names every variable of its own __cs_…, so no secret exported among them can collide', () => {
    const commands = [remoteCommand('bash', TOKEN, 10), stopCommand(TOKEN, 'TERM', null), survivorsCommand(TOKEN, null)];
    for (const command of commands) {
      const assigned = [
        ...[...command.matchAll(/(?:^|[;\s({])([A-Za-z_][A-Za-z0-9_]*)=/g)].map((m) => m[1]!),
        ...[...command.matchAll(/\bread -r ([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]!),
        ...[...command.matchAll(/\bfor ([A-Za-z_][A-Za-z0-9_]*) in\b/g)].map((m) => m[1]!),
      ];
      expect(assigned.length).toBeGreaterThan(0);
      // IFS= and COUNTERSIGN_RUN= only prefix one command; they are not the wrapper's variables.
      const own = assigned.filter((name) => name !== 'IFS' && name !== 'COUNTERSIGN_RUN');
      expect(
        own.filter((name) => !name.startsWith('__cs_')),
        command,
      ).toEqual([]);
    }
  });

  it('refuses to hand over a secret whose name the config refuses (the wrapper’s, the shell’s, the loader’s)', () => {
    // Reserved names, and names that are no environment variable's.
    for (const name of [...RESERVED_SECRET_NAMES, '1X', 'A-B']) {
      expect(secretNameProblem(name), name).not.toBeNull();
      expect(() => encodeStdin(new Map([[name, 'value']]), 'true'), name).toThrow(`secret name ${name}`);
    }
    for (const name of ['DB_PASSWORD', 'f', 'n', 'i', 'k', 'v', '_cs_f', 'LD', 'ENVIRONMENT']) expect(secretNameProblem(name), name).toBeNull();
  });

  it('the syntax check does catch broken shell', () => {
    expect(syntaxCheck('sh', `${remoteCommand('sh', TOKEN, 10)}; if`).status).not.toBe(0);
  });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function waitUntil(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function waitForPid(file: string): Promise<number> {
  await waitUntil(() => existsSync(file) && readFileSync(file, 'utf8').trim() !== '');
  return Number(readFileSync(file, 'utf8').trim());
}

describe('remoteCommand, run locally', () => {
  let tmp: string;
  const children: ChildProcess[] = [];

  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'countersign-remote-'));
  });
  afterEach(() => {
    // Only the process groups this file started.
    for (const child of children.splice(0)) {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  });
  afterAll(() => {
    rmSync(tmp, { recursive: true, force: true });
  });

  const env = () => ({ ...process.env, TMPDIR: tmp });
  const leftovers = () => readdirSync(tmp).filter((name) => name.startsWith('countersign-'));

  /** Runs a wrapper locally with `script` (and `secrets`) on stdin, as the runner sends them. */
  function run(shell: string, command: string, script: string, secrets: ReadonlyMap<string, string> = new Map()) {
    return spawnSync(shell, ['-c', command], { input: encodeStdin(secrets, script), env: env(), encoding: 'utf8', timeout: 10_000 });
  }
  /** The wrapper for `script`, told its true length. */
  const wrapper = (type: 'sh' | 'bash' | 'node' | 'python3', script: string, token = newRunToken()) => remoteCommand(type, token, Buffer.byteLength(script));

  for (const shell of SHELLS) {
    it(`${shell}: runs the script from stdin verbatim, with stdin from /dev/null, and cleans up`, () => {
      // Quotes, $(), backticks and a heredoc: only the interpreter reads them, the wrapper never does.
      const script = [
        `echo "it's \\"quoted\\" $(echo sub) \`echo tick\`"`,
        'cat <<"EOF"',
        '$HOME stays literal',
        'EOF',
        'if read line; then echo "read: $line"; else echo "stdin is empty"; fi',
        'exit 7',
      ].join('\n');
      const result = run(shell, wrapper('sh', script), script);
      expect(result.stdout).toBe(`it's "quoted" sub tick\n$HOME stays literal\nstdin is empty\n`);
      expect(result.status).toBe(7);
      expect(leftovers()).toEqual([]);
    });
  }

  it('a run step names a private output file in $COUNTERSIGN_OUTPUT that outlives the wrapper until read back once', () => {
    const token = newRunToken();
    const script =
      'echo "version=1.2" >> "$COUNTERSIGN_OUTPUT"; echo "notes<<EOF" >> "$COUNTERSIGN_OUTPUT"; echo two >> "$COUNTERSIGN_OUTPUT"; echo EOF >> "$COUNTERSIGN_OUTPUT"';
    const command = buildCommand({ type: 'sh', token, scriptBytes: Buffer.byteLength(script), runAs: null, outputFile: true });
    expect(run('sh', command, script).status).toBe(0);
    const file = join(tmp, `countersign-${token}.out`);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const read = spawnSync('sh', ['-c', outputFileCommand(token, 65 * 1024, null)], { env: env(), encoding: 'utf8' });
    expect(read.stdout).toBe('version=1.2\nnotes<<EOF\ntwo\nEOF\n');
    expect(leftovers()).toEqual([]);
    // Read twice: the second finds nothing (the first removed it).
    expect(spawnSync('sh', ['-c', outputFileCommand(token, 65 * 1024, null)], { env: env(), encoding: 'utf8' }).stdout).toBe('');
    // Without outputFile the variable is not set.
    const plain = 'echo "[${COUNTERSIGN_OUTPUT-unset}]"';
    expect(run('sh', wrapper('sh', plain), plain).stdout).toBe('[unset]\n');
  });

  it('reads back only a regular file of its own at the output path, never through a symlink', () => {
    const token = newRunToken();
    writeFileSync(join(tmp, 'secret-elsewhere'), 'password=hunter2\n');
    symlinkSync(join(tmp, 'secret-elsewhere'), join(tmp, `countersign-${token}.out`));
    expect(spawnSync('sh', ['-c', outputFileCommand(token, 1024, null)], { env: env(), encoding: 'utf8' }).stdout).toBe('');
    rmSync(join(tmp, 'secret-elsewhere'));
    expect(leftovers()).toEqual([]);
  });

  it('uses the interpreter of the type', () => {
    const bashScript = 'echo "${BASH_VERSION:+bash}"';
    const nodeScript = 'console.log(typeof process.version)';
    expect(run('sh', wrapper('bash', bashScript), bashScript).stdout).toBe('bash\n');
    expect(run('sh', wrapper('node', nodeScript), nodeScript).stdout).toBe('string\n');
    const python = spawnSync('python3', ['-c', 'pass']);
    const pyScript = 'import sys\nprint(sys.version_info[0])';
    if (python.status === 0) expect(run('sh', wrapper('python3', pyScript), pyScript).stdout).toBe('3\n');
    expect(leftovers()).toEqual([]);
  });

  for (const shell of SHELLS) {
    it(`${shell}: refuses to write through a symlink or file already at its paths, exiting 125`, () => {
      const token = newRunToken();
      const victim = join(tmp, `victim-${shell}`);
      symlinkSync(victim, join(tmp, `countersign-${token}`));
      const result = run(shell, wrapper('sh', 'echo pwned', token), 'echo pwned');
      // Nothing written through the link, nothing run...
      expect(existsSync(victim)).toBe(false);
      expect(result.stdout).toBe('');
      // ...and the exit code says the wrapper could not set up (125), not that a script failed.
      expect(result.status).toBe(125);
      rmSync(join(tmp, `countersign-${token}`));
    });

    it(`${shell}: refuses a run whose pid file already exists, exiting 125`, () => {
      const token = newRunToken();
      writeFileSync(join(tmp, `countersign-${token}.pid`), '1\n');
      const result = run(shell, wrapper('sh', 'echo pwned', token), 'echo pwned');
      expect(result.stdout).toBe('');
      expect(result.status).toBe(125);
      rmSync(join(tmp, `countersign-${token}.pid`));
      rmSync(join(tmp, `countersign-${token}`), { force: true });
    });

    it(`${shell}: stopCommand signals the whole process group; the wrapper exits 143 and cleans up`, async () => {
      const token = newRunToken();
      // detached: a new session and process group, as sshd gives each session.
      const script = 'echo started\nsleep 30\necho not reached\n';
      const child = spawn(shell, ['-c', wrapper('sh', script, token)], { env: env(), detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
      children.push(child);
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      const started = new Promise<void>((resolve) => child.stdout!.on('data', (data: Buffer) => data.toString().includes('started') && resolve()));
      child.stdin!.end(encodeStdin(new Map(), script));
      await started;
      expect(spawnSync(shell, ['-c', survivorsCommand(token, null)], { env: env(), encoding: 'utf8' }).stdout.trim()).not.toBe('0');

      const stop = spawnSync(shell, ['-c', stopCommand(token, 'TERM', null)], { env: env(), encoding: 'utf8' });
      expect(stop.stderr).toBe('');
      expect(stop.status).toBe(0);
      expect(await exited).toBe(143);
      expect(leftovers()).toEqual([]);
      // Nothing of the run is left.
      expect(spawnSync(shell, ['-c', survivorsCommand(token, null)], { env: env(), encoding: 'utf8' }).stdout.trim()).toBe('0');
    });

    it(`${shell}: a stop reaches processes that left the group (setsid), by the run's token, and KILL leaves no files`, async () => {
      const token = newRunToken();
      const pidFile = join(tmp, `escaped-${shell}-${token}`);
      const script = `setsid sh -c 'trap "" TERM; echo $$ > ${pidFile}; exec sleep 30' &\nsleep 30\n`;
      const child = spawn(shell, ['-c', wrapper('sh', script, token)], { env: env(), detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
      children.push(child);
      const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
      child.stdin!.end(encodeStdin(new Map(), script));
      const escaped = await waitForPid(pidFile);
      expect(alive(escaped)).toBe(true);

      spawnSync(shell, ['-c', stopCommand(token, 'TERM', null)], { env: env() });
      await exited;
      // It ignored TERM and is in its own session: still there, still carrying the token.
      expect(alive(escaped)).toBe(true);
      expect(spawnSync(shell, ['-c', survivorsCommand(token, null)], { env: env(), encoding: 'utf8' }).stdout.trim()).toBe('1');
      spawnSync(shell, ['-c', stopCommand(token, 'KILL', null)], { env: env() });
      await waitUntil(() => !alive(escaped));
      expect(spawnSync(shell, ['-c', survivorsCommand(token, null)], { env: env(), encoding: 'utf8' }).stdout.trim()).toBe('0');
      expect(leftovers()).toEqual([]);
    });
  }

  for (const shell of SHELLS) {
    it(`${shell}: runs nothing when the script arrives incomplete (the link dropped mid-send), exiting 125`, () => {
      const whole = 'echo start\nrm -rf "$TMPDIR/keep/cache"\n';
      const sent = encodeStdin(new Map(), whole);
      const scriptStarts = sent.length - Buffer.byteLength(whole) - 'countersign-end\n'.length;
      // Cut inside the script: at its first byte, in its middle, one byte short.
      for (const keep of [scriptStarts, scriptStarts + 'echo start\nrm -rf "$TMPDIR/keep/'.length, scriptStarts + Buffer.byteLength(whole) - 1]) {
        const result = spawnSync(shell, ['-c', wrapper('sh', whole)], { input: sent.subarray(0, keep), env: env(), encoding: 'utf8', timeout: 10_000 });
        expect(result.stdout, `cut at ${keep} of ${sent.length}`).toBe('');
        expect(result.stderr).toContain('the script arrived incomplete, so it was not run');
        expect(result.status).toBe(125);
        expect(leftovers()).toEqual([]);
      }
      // A script longer than announced: the bytes after the count are not the end mark, even
      // when they look like its end, or like nothing (an empty line).
      for (const extra of ['echo more\n', 'end\n', '\n', 'mark']) {
        const longer = run(shell, wrapper('sh', 'echo start\n'), `echo start\n${extra}`);
        expect(longer.stdout, JSON.stringify(extra)).toBe('');
        expect(longer.status).toBe(125);
      }
    });

    it(`${shell}: runs a script that arrived whole though the link dropped in the end mark, judged by its size`, () => {
      const whole = 'echo whole\n';
      const sent = encodeStdin(new Map(), whole);
      const attempt = (keep: number) =>
        spawnSync(shell, ['-c', wrapper('sh', whole)], { input: sent.subarray(0, keep), env: env(), encoding: 'utf8', timeout: 10_000 });
      // Right after the script, and the mark without its newline: the script is whole.
      for (const keep of [sent.length - 'countersign-end\n'.length, sent.length - 1]) {
        expect(attempt(keep), `cut at ${keep} of ${sent.length}`).toMatchObject({ stdout: 'whole\n', status: 0 });
      }
      // The mark's first part only (not what a head reading ahead leaves): refused, to be safe.
      expect(attempt(sent.length - 4)).toMatchObject({ stdout: '', status: 125 });
      expect(leftovers()).toEqual([]);
    });

    it(`${shell}: with a head that reads ahead (BusyBox), runs whole scripts and still refuses cut ones`, async () => {
      // A directory whose `head` is BusyBox's, first on PATH: it reads stdin through a buffer,
      // past the script's bytes, swallowing the end mark or its first part.
      const bin = mkdtempSync(join(tmp, 'busybox-head-'));
      const busybox = spawnSync('sh', ['-c', 'command -v busybox'], { encoding: 'utf8' }).stdout.trim();
      expect(busybox, 'busybox is installed by .ci/run').not.toBe('');
      symlinkSync(busybox, join(bin, 'head'));
      const withBusyboxHead = { ...env(), PATH: `${bin}:${process.env.PATH ?? ''}` };
      expect(spawnSync(shell, ['-c', 'head --help 2>&1 | head -1'], { env: withBusyboxHead, encoding: 'utf8' }).stdout).toMatch(/BusyBox/);
      /** Feeds stdin in two writes, pausing between them: the reads on the host see it split there. */
      const feed = async (script: string, input: Buffer, splitAt: number) => {
        const child = spawn(shell, ['-c', wrapper('sh', script)], { env: withBusyboxHead, stdio: ['pipe', 'pipe', 'pipe'] });
        children.push(child);
        let stdout = '';
        child.stdout!.on('data', (data: Buffer) => {
          stdout += data.toString();
        });
        const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
        child.stdin!.write(input.subarray(0, splitAt));
        await new Promise((resolve) => setTimeout(resolve, 50));
        child.stdin!.end(input.subarray(splitAt));
        return { status: await exited, stdout };
      };
      const big = `echo big\n${'# filler line to make the script span several reads\n'.repeat(400)}`;
      for (const script of ['echo small\n', big]) {
        const sent = encodeStdin(new Map(), script);
        const markAt = sent.length - 'countersign-end\n'.length;
        // Split before the mark, inside it, and nowhere (all at once).
        for (const splitAt of [markAt, markAt + 5, sent.length]) {
          const result = await feed(script, sent, splitAt);
          expect(result, `split at ${splitAt} of ${sent.length}`).toEqual({ status: 0, stdout: script.startsWith('echo big') ? 'big\n' : 'small\n' });
        }
        // Cut inside the script: refused.
        const cut = await feed(script, sent.subarray(0, markAt - 3), markAt - 10);
        expect(cut).toEqual({ status: 125, stdout: '' });
      }
      expect(leftovers()).toEqual([]);
    });
  }

  it('finds nothing to stop for a run that never existed', () => {
    const token = newRunToken();
    expect(spawnSync('sh', ['-c', stopCommand(token, 'KILL', null)], { env: env() }).status).toBe(0);
    expect(spawnSync('sh', ['-c', survivorsCommand(token, null)], { env: env(), encoding: 'utf8' }).stdout.trim()).toBe('0');
  });

  for (const shell of SHELLS) {
    it(`${shell}: hands secrets to the script as environment variables, whatever they contain`, () => {
      const secrets = new Map([
        ['DB_PASSWORD', `p4ss w'o"rd $HOME \`id\` \\n`],
        ['MULTI_LINE', '-----BEGIN KEY-----\nabc\n-----END KEY-----\n'],
        ['UNICODE', 'héllo ☃'],
      ]);
      const script = 'printf "%s|" "$DB_PASSWORD" "$MULTI_LINE" "$UNICODE"';
      const result = run(shell, wrapper('sh', script), script, secrets);
      expect(result.status).toBe(0);
      expect(result.stdout).toBe([...secrets.values()].map((v) => `${v}|`).join(''));
    });
  }

  for (const shell of SHELLS) {
    it(`${shell}: secrets named like short shell variables (f, n, i, k, v) reach the script without disturbing the wrapper`, () => {
      const hijack = join(tmp, `hijack-${shell}`);
      // `i` and `n` would end the wrapper's loop early, `f` would move the script file, `k`/`v` would garble the next secret.
      const secrets = new Map([
        ['i', '100'],
        ['n', '1'],
        ['f', hijack],
        ['k', 'kk-value'],
        ['v', 'vv-value'],
      ]);
      const script = 'printf "%s|" "$i" "$n" "$f" "$k" "$v"';
      const result = run(shell, wrapper('sh', script), script, secrets);
      expect(result.stderr).toBe('');
      expect(result.status).toBe(0);
      expect(result.stdout).toBe([...secrets.values()].map((v) => `${v}|`).join(''));
      expect(existsSync(hijack)).toBe(false);
      expect(leftovers()).toEqual([]);
    });
  }

  it('keeps secrets off every command line: the wrapper and the script see them only in the environment', () => {
    const secret = `s3cr3t-${newRunToken()}`;
    const script = `ps -eo args | grep -c ${secret.slice(0, 6)}-[0-9a-f] || true; tr "\\0" "\\n" < /proc/$$/environ | grep -c "^TOKEN_X=${secret}$"`;
    const command = wrapper('sh', script);
    expect(command).not.toContain(secret);
    const result = run('sh', command, script, new Map([['TOKEN_X', secret]]));
    // No process's arguments carry it; the script's own environment does.
    expect(result.stdout).toBe('0\n1\n');
  });

  it('runs the wrapper under runAs, with secrets and stdin intact', () => {
    const script = 'echo "as $(id -un): $API_KEY"';
    const command = buildCommand({ type: 'sh', token: newRunToken(), scriptBytes: Buffer.byteLength(script), runAs: ['env', 'RUN_AS_PROBE=1'] });
    expect(command.startsWith("env RUN_AS_PROBE=1 sh -c '")).toBe(true);
    const result = run('sh', command, script, new Map([['API_KEY', 'k3y']]));
    expect(result.stdout).toBe(`as ${spawnSync('id', ['-un'], { encoding: 'utf8' }).stdout.trim()}: k3y\n`);
    expect(leftovers()).toEqual([]);
  });
});

describe('task arguments on stdin', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'countersign-args-'));
  });
  afterAll(() => {
    rmSync(tmp, { recursive: true, force: true });
  });
  // Values a shell would act on if it ever parsed them: none of them may.
  const TRICKY = [`'; rm -rf / #`, '$(id)', '`id`', 'a b\tc', 'line1\nline2', '', '-n', '"quoted" \\ back', 'ünïcödé ✓', '*'];
  const args = TRICKY.map((value, index) => ({ name: `A${index}`, value }));
  const scripts: Record<ScriptType, string> = {
    bash: 'for a in "$@"; do printf "[%s]" "$a"; done; echo; printf "%s|" "$ARG_A0" "$ARG_A1" "$ARG_A5"; echo "$#"',
    sh: 'for a in "$@"; do printf "[%s]" "$a"; done; echo; printf "%s|" "$ARG_A0" "$ARG_A1" "$ARG_A5"; echo "$#"',
    python3:
      'import os, sys\nprint("".join("[%s]" % a for a in sys.argv[1:]))\nprint("%s|%s|%s|%d" % (os.environ["ARG_A0"], os.environ["ARG_A1"], os.environ["ARG_A5"], len(sys.argv) - 1))',
    node: 'console.log(process.argv.slice(2).map((a) => `[${a}]`).join(""));\nconsole.log(`${process.env.ARG_A0}|${process.env.ARG_A1}|${process.env.ARG_A5}|${process.argv.length - 2}`)',
  };
  const expected = `${TRICKY.map((v) => `[${v}]`).join('')}\n${TRICKY[0]}|${TRICKY[1]}||${TRICKY.length}\n`;

  for (const shell of SHELLS) {
    for (const type of SCRIPT_TYPES) {
      it(`${shell} / ${type}: the script gets them as argv and ARG_<NAME>, literally, in order`, () => {
        if (type === 'python3' && spawnSync('python3', ['-c', 'pass']).status !== 0) return;
        const script = scripts[type];
        const command = buildCommand({ type, token: newRunToken(), scriptBytes: Buffer.byteLength(script), runAs: null });
        const result = spawnSync(shell, ['-c', command], {
          input: encodeStdin(new Map([['TOKEN_X', 'secret-value']]), script, args),
          env: { ...process.env, TMPDIR: tmp },
          encoding: 'utf8',
          timeout: 10_000,
        });
        expect(result.stderr).toBe('');
        expect(result.stdout).toBe(expected);
        expect(result.status).toBe(0);
      });
    }
  }

  it('without arguments the script has none', () => {
    const script = 'echo "$#:${ARG_X-unset}"';
    const command = buildCommand({ type: 'sh', token: newRunToken(), scriptBytes: Buffer.byteLength(script), runAs: null });
    const result = spawnSync('sh', ['-c', command], { input: encodeStdin(new Map(), script), env: { ...process.env, TMPDIR: tmp }, encoding: 'utf8' });
    expect(result.stdout).toBe('0:unset\n');
  });

  it('refuses argument names that are not variable names, and NUL bytes', () => {
    for (const name of ['a', '1X', 'X-Y', 'X Y', 'X;id', ''])
      expect(() => encodeStdin(new Map(), 'true', [{ name, value: 'v' }]), name).toThrow('argument name');
    expect(() => encodeStdin(new Map(), 'true', [{ name: 'X', value: 'a\u0000b' }])).toThrow('NUL');
  });
});
