/**
 * The fixed command lines a run executes. The script never appears on a command line: the
 * wrapper reads the secrets and then the script from stdin, saves the script to a private file,
 * checks it arrived whole (its byte count and an end mark), and runs it with the interpreter of its type, stdin from /dev/null.
 * The variable parts are the interpreter (a fixed table), a random token and a byte count we
 * generate, and the target's runAs words (validated config), so no user text is ever
 * shell-quoted.
 *
 * Secrets travel on stdin as octal escapes decoded by the shell's printf builtin and exported
 * to the script's environment: never on a command line, never in `ps`.
 *
 * Stopping: the script runs with COUNTERSIGN_RUN=<token> in its environment, which every
 * process it starts inherits (even after setsid or nohup), and the wrapper records its process
 * group. A stop, run from a second channel, signals that group and every process carrying the
 * token; a survivors check counts what is left and removes the run's files. This works for
 * every login user, where OpenSSH's own signal request is refused for root logins.
 *
 * Assumes a POSIX login shell on the host (sh, bash, dash, zsh, BusyBox ash), `head -c` (GNU, BusyBox, BSD)
 * and, for the token scan, Linux's /proc and GNU grep; without them the process-group signal
 * still applies.
 */
import { randomBytes } from 'node:crypto';
import { INTERPRETERS, type ScriptType } from '../domain/scriptTypes.js';

export type StopSignal = 'TERM' | 'KILL';

export interface RemoteRun {
  type: ScriptType;
  token: string;
  /** The script's UTF-8 length, checked on the host before anything runs. */
  scriptBytes: number;
  /** A command prefix from the target's config (e.g. `sudo -n -u app`), or null. */
  runAs: readonly string[] | null;
  /**
   * A run step's script: create a private, empty output file and name it in $COUNTERSIGN_OUTPUT
   * (name=value lines, as CI systems read them); it outlives the wrapper until
   * outputFileCommand reads and removes it.
   */
  outputFile?: boolean;
}

/** A fresh run token: names the run's files on the host and marks its processes. */
export function newRunToken(): string {
  return randomBytes(12).toString('hex');
}

/** The line after the script on stdin: the wrapper runs nothing until it has read it. */
const END_MARK = 'countersign-end';

const RUN_AS_WORD = /^[A-Za-z0-9_.@%+=:/,-]+$/;

/** Checks runAs words from the config: plain words only, since they are joined into a command line. */
export function validRunAsWords(words: readonly string[]): boolean {
  return words.length > 0 && words.length <= 10 && words.every((word) => RUN_AS_WORD.test(word));
}

function checkToken(token: string): string {
  if (!/^[a-f0-9]{16,64}$/.test(token)) throw new Error('run tokens are hex strings we generate');
  return token;
}

const filePath = (token: string) => `"\${TMPDIR:-/tmp}/countersign-${checkToken(token)}"`;

/**
 * Wraps a command for runAs: `sudo -n -u app sh -c '<command>'`. The commands here are built
 * without single quotes, so wrapping them needs no escaping.
 */
function asUser(command: string, runAs: readonly string[] | null): string {
  if (runAs === null) return command;
  if (!validRunAsWords(runAs)) throw new Error('runAs must be plain words');
  if (command.includes("'")) throw new Error('internal: a wrapped command must not contain single quotes');
  return `${runAs.join(' ')} sh -c '${command}'`;
}

/** `true` run the way a script runs (under the target's runAs): `countersign check` proves a login can run scripts. */
export function probeCommand(runAs: readonly string[] | null): string {
  return asUser('true', runAs);
}

export function remoteCommand(run: RemoteRun): string {
  if (!Number.isSafeInteger(run.scriptBytes) || run.scriptBytes < 0) throw new Error('scriptBytes must be a byte count');
  const wrapper = [
    'umask 077',
    `__cs_f=${filePath(run.token)}`,
    // noclobber: create both files exclusively, never through someone else's symlink.
    // `true`, not `:`: a redirection error on a special builtin makes dash exit 2 before `||` runs.
    'set -C',
    'true > "$__cs_f" || exit 125',
    'echo $$ > "$__cs_f.pid" || exit 125',
    ...(run.outputFile ? ['true > "$__cs_f.out" || exit 125'] : []),
    'set +C',
    'trap "rm -f \\"\\$__cs_f\\" \\"\\$__cs_f.pid\\"" EXIT',
    'trap "rm -f \\"\\$__cs_f\\" \\"\\$__cs_f.pid\\"; exit 129" HUP',
    'trap "rm -f \\"\\$__cs_f\\" \\"\\$__cs_f.pid\\"; exit 130" INT',
    'trap "rm -f \\"\\$__cs_f\\" \\"\\$__cs_f.pid\\"; exit 143" TERM',
    // Secrets: a count, then a name line and an octal-escaped value line for each. They are
    // exported among the wrapper's own variables, hence the __cs_ prefix no secret may use.
    'IFS= read -r __cs_n || exit 125',
    '__cs_i=0',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, not a template
    'while [ "$__cs_i" -lt "$__cs_n" ]; do IFS= read -r __cs_k || exit 125; IFS= read -r __cs_v || exit 125; __cs_v=$(printf "%bx" "$__cs_v"); export "$__cs_k=${__cs_v%x}"; __cs_i=$((__cs_i+1)); done',
    // Arguments: a count, then a name line and an octal-escaped value line for each. Each is
    // exported as ARG_<NAME> and appended to the positional parameters, in order: the script
    // gets them as "$1", "$2"... (sys.argv, process.argv) without any of them being parsed by a shell.
    'IFS= read -r __cs_n || exit 125',
    '__cs_i=0',
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, not a template
    'while [ "$__cs_i" -lt "$__cs_n" ]; do IFS= read -r __cs_k || exit 125; IFS= read -r __cs_v || exit 125; __cs_v=$(printf "%bx" "$__cs_v"); __cs_v=${__cs_v%x}; export "ARG_$__cs_k=$__cs_v"; set -- "$@" "$__cs_v"; __cs_i=$((__cs_i+1)); done',
    'unset __cs_k __cs_v',
    // The script's bytes, then the end mark. A link that drops mid-send ends stdin early, and a
    // truncated script must not run. GNU head reads no further than asked: the whole mark after
    // it proves the script whole, with no subshell and no `wc` (the common case, ~0.7 ms of forks
    // less per run). A head that reads ahead (BusyBox, BSD) swallows the mark or its first part,
    // and the shell finds the rest of it, then the end of stdin: then the file's size decides, as
    // it always did. Anything else after the script (more than was announced) is refused.
    `head -c ${run.scriptBytes} > "$__cs_f" || exit 125`,
    `{ IFS= read -r __cs_end; case ${END_MARK} in "$__cs_end") true ;; *"$__cs_end") ! IFS= read -r __cs_more && [ -z "$__cs_more" ] && [ $(wc -c < "$__cs_f") -eq ${run.scriptBytes} ] ;; *) false ;; esac; } || { echo "countersign: the script arrived incomplete, so it was not run" >&2; exit 125; }`,
    'unset __cs_end __cs_more',
    `COUNTERSIGN_RUN=${checkToken(run.token)}${run.outputFile ? ' COUNTERSIGN_OUTPUT="$__cs_f.out"' : ''} ${INTERPRETERS[run.type]} "$__cs_f" "$@" < /dev/null`,
  ].join('; ');
  return asUser(wrapper, run.runAs);
}

const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Variables the wrapper, the shell or countersign itself depend on. */
const RESERVED_SECRET_NAMES = new Set(['PATH', 'HOME', 'USER', 'SHELL', 'PWD', 'IFS', 'TMPDIR', 'COUNTERSIGN_RUN', 'COUNTERSIGN_OUTPUT']);
/** Variables that change how a shell or the dynamic loader starts the script (and the wrapper's own commands). */
const STARTUP_NAMES = new Set(['BASH_ENV', 'ENV', 'SHELLOPTS', 'BASHOPTS', 'PS4']);

/** Why `name` cannot be a secret's name, or null when it can. */
export function secretNameProblem(name: string): string | null {
  if (!SECRET_NAME.test(name)) return 'secret names are environment variable names';
  if (name.startsWith('__cs_')) return "names starting with __cs_ are the wrapper's own variables";
  if (RESERVED_SECRET_NAMES.has(name)) return 'this name is reserved';
  if (STARTUP_NAMES.has(name) || name.startsWith('LD_'))
    return `${name} changes how the shell or the dynamic loader starts the script, so it cannot be a secret`;
  return null;
}

/** An argument as the script receives it: "$N" in declared order, and ARG_<NAME> in its environment. */
export interface ScriptArgument {
  /** Already uppercased: the variable is ARG_<name>. */
  name: string;
  value: string;
}

const ARGUMENT_NAME = /^[A-Z_][A-Z0-9_]*$/;

/** Why `name` cannot name an argument's ARG_ variable, or null when it can. */
export function argumentNameProblem(name: string): string | null {
  if (!ARGUMENT_NAME.test(name) || name.length > 64) return 'argument names are letters, digits and _ (not starting with a digit), at most 64 characters';
  return null;
}

/** What the wrapper reads on stdin: the secrets, the arguments, the script, then the end mark. */
export function encodeStdin(secrets: ReadonlyMap<string, string>, script: string, args: readonly ScriptArgument[] = []): Buffer {
  const lines = [String(secrets.size)];
  for (const [name, value] of secrets) {
    // The config refuses these already; a name that got past it must not reach the wrapper.
    const problem = secretNameProblem(name);
    if (problem !== null) throw new Error(`secret name ${name}: ${problem}`);
    if (value.includes('\u0000')) throw new Error(`secret ${name} contains a NUL byte`);
    lines.push(name, octalEscape(value));
  }
  lines.push(String(args.length));
  for (const { name, value } of args) {
    const problem = argumentNameProblem(name);
    if (problem !== null) throw new Error(`argument name ${name}: ${problem}`);
    if (value.includes('\u0000')) throw new Error(`argument ${name} contains a NUL byte`);
    lines.push(name, octalEscape(value));
  }
  return Buffer.concat([Buffer.from(`${lines.join('\n')}\n`, 'utf8'), Buffer.from(script, 'utf8'), Buffer.from(`${END_MARK}\n`, 'utf8')]);
}

/** Every byte as `\0ooo`, which printf's %b decodes in dash and bash alike. */
function octalEscape(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) out += `\\0${byte.toString(8).padStart(3, '0')}`;
  return out;
}

/**
 * Prints the first `maxBytes` of the run's output file ($COUNTERSIGN_OUTPUT) and removes it. A
 * file that is not a regular file of ours (a symlink planted in its place) is not read.
 */
export function outputFileCommand(token: string, maxBytes: number, runAs: readonly string[] | null): string {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) throw new Error('maxBytes must be a byte count');
  const t = checkToken(token);
  return asUser(
    [
      `__cs_o=${filePath(t)}.out`,
      `if [ -f "$__cs_o" ] && [ ! -L "$__cs_o" ] && [ -O "$__cs_o" ]; then head -c ${maxBytes} "$__cs_o"; fi`,
      'rm -f "$__cs_o"',
    ].join('; '),
    runAs,
  );
}

/** Signals every process of the run: its process group, and every process carrying its token. */
export function stopCommand(token: string, signal: StopSignal, runAs: readonly string[] | null): string {
  const t = checkToken(token);
  return asUser(
    [
      `__cs_p=$(cat ${filePath(t)}.pid 2>/dev/null)`,
      `if [ -n "$__cs_p" ]; then kill -${signal} -"$__cs_p" 2>/dev/null; fi`,
      `for __cs_e in $(grep -lsza -x "COUNTERSIGN_RUN=${t}" /proc/[0-9]*/environ 2>/dev/null); do __cs_q=\${__cs_e#/proc/}; kill -${signal} "\${__cs_q%/environ}" 2>/dev/null; done`,
      'true',
    ].join('; '),
    runAs,
  );
}

/**
 * Prints how many processes of the run are still alive (its group, plus processes carrying its
 * token); when none are, removes the run's files, which a KILL left behind. Killed processes
 * take a moment to be reaped (a zombie still answers `kill -0`), so it looks again for up to
 * about two seconds before reporting survivors.
 */
export function survivorsCommand(token: string, runAs: readonly string[] | null): string {
  const t = checkToken(token);
  const count = [
    '__cs_n=0',
    'if [ -n "$__cs_p" ] && kill -0 -"$__cs_p" 2>/dev/null; then __cs_n=$((__cs_n+1)); fi',
    `for __cs_e in $(grep -lsza -x "COUNTERSIGN_RUN=${t}" /proc/[0-9]*/environ 2>/dev/null); do __cs_n=$((__cs_n+1)); done`,
  ].join('; ');
  return asUser(
    [
      `__cs_f=${filePath(t)}`,
      '__cs_p=$(cat "$__cs_f.pid" 2>/dev/null)',
      count,
      `__cs_i=0; while [ "$__cs_n" -gt 0 ] && [ "$__cs_i" -lt 20 ]; do sleep 0.1; __cs_i=$((__cs_i+1)); ${count}; done`,
      'if [ "$__cs_n" -eq 0 ]; then rm -f "$__cs_f" "$__cs_f.pid" "$__cs_f.out"; fi',
      'echo "$__cs_n"',
    ].join('; '),
    runAs,
  );
}
