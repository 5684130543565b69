/**
 * `/task start <reference>` and `/task runbook list [--tag t] | show <ref> | export <ref> |
 * import [--replace] | remove <ref>`: the words of the command, parsed purely. Anything else is
 * not ours (null), so the other /task parsers see it. `/task recipe …` stays with the recipe
 * parser (src/domain/recipe.ts): an alias that keeps the recipe format.
 */
import { decodeSlackText } from './slackText.js';

export type RunbookCommand =
  | { kind: 'start'; reference: string }
  | { kind: 'list'; tag: string | null }
  | { kind: 'show' | 'export' | 'remove'; reference: string }
  | { kind: 'import'; json: string; replace: boolean }
  | { kind: 'error'; message: string };

export const RUNBOOK_USAGE =
  '`/task runbook list [--tag &lt;tag&gt;]` · `/task runbook show|export|remove &lt;reference&gt;` · `/task runbook import [--replace]` followed by a ```json block```';

/** A reference as typed: letters, digits, `-`, `_`, `.` (the definition's own rule decides the rest). */
const REFERENCE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text).replace(/[`<>&]/g, '');

export function parseRunbookCommand(rawText: string): RunbookCommand | null {
  const text = rawText.trim();
  if (/^start\b/i.test(text)) {
    const rest = text.replace(/^start\b\s*/i, '');
    if (rest === '') return { kind: 'error', message: 'Name the runbook to start: `/task start &lt;reference&gt;` (`/task runbook list` shows them).' };
    return referenceOf(rest, 'start', (reference) => ({ kind: 'start', reference }));
  }
  if (!/^runbooks?\b/i.test(text)) return null;
  const rest = text.replace(/^runbooks?\b\s*/i, '');
  const verb = (/^\S*/.exec(rest)?.[0] ?? '').toLowerCase();
  const after = rest.slice(verb.length).trim();
  switch (verb) {
    case '':
    case 'list': {
      if (after === '') return { kind: 'list', tag: null };
      const tag = /^--tag(?:\s+|=)(\S+)$/i.exec(after)?.[1];
      if (!tag) return { kind: 'error', message: `Write \`/task runbook list\` or \`/task runbook list --tag &lt;tag&gt;\`, not \`${clip(after, 40)}\`.` };
      return { kind: 'list', tag: decodeSlackText(tag) };
    }
    case 'show':
    case 'export':
    case 'remove':
      if (after === '')
        return { kind: 'error', message: `Which runbook? Write \`/task runbook ${verb} &lt;reference&gt;\` (\`/task runbook list\` shows them).` };
      return referenceOf(after, `runbook ${verb}`, (reference) => ({ kind: verb, reference }));
    case 'import': {
      let body = after;
      let replace = false;
      const flag = /^--replace\b/i.exec(body);
      if (flag) {
        replace = true;
        body = body.slice(flag[0].length);
      }
      const fence = /^\s*```[a-zA-Z]*\s*\n?([\s\S]*?)```\s*$/.exec(body);
      const json = (fence ? (fence[1] ?? '') : body).trim();
      if (json.trim() === '')
        return {
          kind: 'error',
          message: 'Paste the runbook after `/task runbook import`, as a ```json block``` (`/task runbook export &lt;reference&gt;` shows the format).',
        };
      // Slack escapes &, < and >, wraps links it recognised in <...>, and may turn quotes “smart”.
      return { kind: 'import', json: decodeSlackText(json).replace(/[\u201c\u201d]/g, '"'), replace };
    }
    default:
      return { kind: 'error', message: `Unknown runbook command \`${clip(verb, 20)}\`. ${RUNBOOK_USAGE}` };
  }
}

function referenceOf(rest: string, usage: string, make: (reference: string) => RunbookCommand): RunbookCommand {
  const words = rest.split(/\s+/);
  const reference = words[0] ?? '';
  if (words.length > 1) return { kind: 'error', message: `\`/task ${usage}\` takes one runbook reference, e.g. \`/task ${usage} restart-web\`.` };
  if (!REFERENCE.test(reference))
    return {
      kind: 'error',
      message: `\`${clip(reference, 40)}\` is not a runbook reference (letters, digits, \`-\`, \`_\`, \`.\`). \`/task runbook list\` shows them.`,
    };
  return make(reference);
}
