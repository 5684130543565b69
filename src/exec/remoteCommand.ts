/**
 * The fixed command line every run executes. The script never appears on a command line: it
 * arrives on stdin, is saved to a private temporary file, and the interpreter runs that file
 * with stdin from /dev/null. The only variable part is the interpreter, taken from a fixed
 * table (domain/scriptTypes), so no user text is ever shell-quoted.
 *
 * Traps remove the file however the run ends; TERM/HUP/INT exit with the usual 128+n codes.
 * Assumes a POSIX login shell (sh, bash, dash, zsh) on the host, as sshd runs `$SHELL -c`.
 */
import { INTERPRETERS, type ScriptType } from '../domain/scriptTypes.js';

export function remoteCommand(type: ScriptType): string {
  const interpreter = INTERPRETERS[type];
  return [
    'umask 077',
    'f=$(mktemp "${TMPDIR:-/tmp}/countersign.XXXXXX") || exit 125',
    `trap 'rm -f "$f"' EXIT`,
    `trap 'rm -f "$f"; exit 129' HUP`,
    `trap 'rm -f "$f"; exit 130' INT`,
    `trap 'rm -f "$f"; exit 143' TERM`,
    'cat > "$f" || exit 125',
    `${interpreter} "$f" < /dev/null`,
  ].join('; ');
}
