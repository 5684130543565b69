/**
 * A runbook's steps as short mrkdwn, shared by the start form and `/task runbook show`: each
 * step's position (groups run one after another, steps of a group at once: `2a`, `2b`), id and
 * kind, its target, and the first lines of its script or its request (method, URL, header
 * names, body), who approves, which fields an input asks. Everything the runbook's author wrote
 * is escaped; a header's value is never shown (it may name a secret).
 */
import type { Runbook, RunbookStep } from '../../domain/runbook/index.js';
import { codeBlock, safeText } from './format.js';

/** `<@U…>` and `<!subteam^S…>` for ids the definition's schema already checked; anything else as text. */
const user = (id: string): string => (/^[UW][A-Z0-9]+$/.test(id) ? `<@${id}>` : `\`${safeText(id, 40)}\``);
const usergroup = (id: string): string => (/^S[A-Z0-9]+$/.test(id) ? `<!subteam^${id}>` : `\`${safeText(id, 40)}\``);

function people(users: readonly string[], group: string | null): string {
  const named = [...users.slice(0, 10).map(user), ...(users.length > 10 ? [`${users.length - 10} more`] : []), ...(group ? [usergroup(group)] : [])];
  return named.length > 0 ? named.join(', ') : '_nobody named_';
}

/** One step: a title line and, for scripts and request bodies, a code block of at most `codeChars`. */
export function stepText(step: RunbookStep, position: string, codeChars: number, prefix = ''): string {
  const title = `*${position}* \`${safeText(prefix + step.id, 130)}\`${step.name ? ` ${safeText(step.name, 100)}` : ''}`;
  const onFailure = step.continueOnFailure ? ' · _continues on failure_' : '';
  switch (step.kind) {
    case 'script':
      return `${title} · script on \`${safeText(step.script.target, 80)}\`${step.script.type ? ` (${step.script.type})` : ''}${onFailure}\n${codeBlock(step.script.script, codeChars)}`;
    case 'http': {
      const http = step.http;
      const facts = [
        http.target ? `reviewed under \`${safeText(http.target, 80)}\`` : 'no target (countersign.yml)',
        http.headers.length > 0
          ? `headers ${http.headers
              .slice(0, 10)
              .map((h) => `\`${safeText(h.name, 60)}\``)
              .join(', ')}`
          : null,
        http.successStatus ? `success on ${http.successStatus.slice(0, 10).join(', ')}` : 'success on 2xx',
        http.successPattern !== null ? `and body matching \`${safeText(http.successPattern, 100)}\`` : null,
      ].filter((f): f is string => f !== null);
      const body = http.body === undefined ? '' : `\n${codeBlock(JSON.stringify(http.body, null, 2), codeChars)}`;
      return `${title} · http \`${http.method} ${safeText(http.url, 300)}\`${onFailure}\n${facts.join(' · ')}${body}`;
    }
    case 'approval': {
      const a = step.approval;
      return `${title} · approval by ${people(a.users, a.usergroup)} (${a.approvals} needed)${onFailure}`;
    }
    case 'input': {
      const fields = step.input.fields
        .slice(0, 20)
        .map(
          (f) =>
            `\`${safeText(f.name, 60)}\`${f.kind === 'options' ? ` (${safeText(f.options.slice(0, 10).join('|'), 120)})` : f.pattern !== undefined ? ` (matching \`${safeText(f.pattern, 80)}\`)` : ''}`,
        );
      const from = step.input.from ? people(step.input.from.users, step.input.from.usergroup) : 'the person who started the run';
      return `${title} · input from ${from}: ${fields.join(', ') || '_no fields_'}${onFailure}`;
    }
  }
}

/** Every step of a runbook in order, each a separate text; `prefix` qualifies ids (`dep.`). */
export function stepTexts(runbook: Runbook, codeChars: number, prefix = ''): string[] {
  const texts: string[] = [];
  runbook.steps.forEach((group, g) => {
    group.forEach((step, p) => {
      const position = group.length > 1 ? `${g + 1}${letter(p)}` : `${g + 1}`;
      texts.push(stepText(step, position, codeChars, prefix));
    });
  });
  return texts;
}

const letter = (p: number): string => (p < 26 ? String.fromCharCode(97 + p) : `.${p + 1}`);

/** How many characters of each script to show: more when there are few steps. */
export function codeCharsFor(steps: number): number {
  if (steps <= 3) return 1200;
  if (steps <= 10) return 600;
  return 240;
}

/** Texts packed into as few section-sized strings as fit (each at most `max` characters), with how many each holds. */
export function packTexts(texts: readonly string[], max = 2900): Array<{ text: string; count: number }> {
  const packed: Array<{ text: string; count: number }> = [];
  let current = { text: '', count: 0 };
  for (const text of texts) {
    const piece = text.length > max ? `${text.slice(0, max - 1)}…` : text;
    if (current.count > 0 && current.text.length + piece.length + 1 > max) {
      packed.push(current);
      current = { text: piece, count: 1 };
    } else current = { text: current.count === 0 ? piece : `${current.text}\n${piece}`, count: current.count + 1 };
  }
  if (current.count > 0) packed.push(current);
  return packed;
}

/**
 * The first packed sections whose text adds up to at most `budget` characters of JSON (quotes,
 * backslashes and newlines count twice there), so a message stays under Slack's blocks limit.
 */
export function withinBudget<T extends { text: string }>(packed: readonly T[], budget: number): T[] {
  const kept: T[] = [];
  let used = 0;
  for (const p of packed) {
    used += JSON.stringify(p.text).length + 60;
    if (used > budget) break;
    kept.push(p);
  }
  return kept;
}
