/**
 * The fixed command lines a run executes. The script never appears on a command line: it
 * arrives on stdin, is saved to a private file, and the interpreter runs that file with stdin
 * from /dev/null. The only variable parts are the interpreter, from a fixed table
 * (domain/scriptTypes), and a random token we generate, so no user text is ever shell-quoted.
 *
 * The wrapper records its pid, which is the session's process group (sshd starts each session
 * with setsid), so a stop can signal the whole tree from a second channel with `kill -- -pgid`.
 * That works for every login user, where OpenSSH's own signal request is refused for root
 * logins ("session signalling requires privilege separation") and missing before 7.9.
 *
 * Traps remove the files however the run ends; TERM/HUP/INT exit with the usual 128+n codes.
 * Assumes a POSIX login shell (sh, bash, dash, zsh) on the host, as sshd runs `$SHELL -c`.
 */
import { randomBytes } from 'node:crypto';
import { INTERPRETERS, type ScriptType } from '../domain/scriptTypes.js';

export type StopSignal = 'TERM' | 'KILL';

/** A fresh run token: names the run's files on the host. */
export function newRunToken(): string {
  return randomBytes(12).toString('hex');
}

function checkToken(token: string): string {
  if (!/^[a-f0-9]{16,64}$/.test(token)) throw new Error('run tokens are hex strings we generate');
  return token;
}

const filePath = (token: string) => `"\${TMPDIR:-/tmp}/countersign-${checkToken(token)}"`;

/**
 * `scriptBytes` is checked on the host before anything runs: if the link drops while the script
 * is being sent, stdin ends early and a truncated script (`rm -rf /var/app/` instead of
 * `/var/app/cache`) must not run.
 */
export function remoteCommand(type: ScriptType, token: string, scriptBytes: number): string {
  if (!Number.isSafeInteger(scriptBytes) || scriptBytes < 0) throw new Error('scriptBytes must be a byte count');
  return [
    'umask 077',
    `f=${filePath(token)}`,
    // noclobber: create both files exclusively, never through someone else's symlink.
    'set -C',
    // `true`, not `:`: a redirection error on a special builtin makes dash exit with 2 before `||` runs.
    'true > "$f" || exit 125',
    'echo $$ > "$f.pid" || exit 125',
    'set +C',
    `trap 'rm -f "$f" "$f.pid"' EXIT`,
    `trap 'rm -f "$f" "$f.pid"; exit 129' HUP`,
    `trap 'rm -f "$f" "$f.pid"; exit 130' INT`,
    `trap 'rm -f "$f" "$f.pid"; exit 143' TERM`,
    'cat > "$f" || exit 125',
    `[ $(wc -c < "$f") -eq ${scriptBytes} ] || { echo "countersign: the script arrived incomplete, so it was not run" >&2; exit 125; }`,
    `${INTERPRETERS[type]} "$f" < /dev/null`,
  ].join('; ');
}

/** Signals the run's whole process group; exits non-zero when the run is not (or no longer) there. */
export function stopCommand(token: string, signal: StopSignal): string {
  // `kill -SIG -pgid`, not `kill -SIG -- -pgid`: dash's builtin kill does not take `--`.
  return `p=$(cat ${filePath(token)}.pid 2>/dev/null) && [ -n "$p" ] && kill -${signal} -"$p"`;
}
