/**
 * What an approval covers besides the script text, said next to every Approve button: the
 * interpreter (a script that is dead code under bash may be live Python), the target, the
 * recipe it came from and the content version. Everything in the content version is shown by
 * one function, so the two places that offer Approve (the review request, App Home) cannot
 * drift apart. Also: invisible and direction-changing characters, which make the text a
 * reviewer reads differ from what runs ("Trojan Source"), are pointed out.
 */
import { shortHash } from '../../domain/contentVersion.js';
import type { Task } from '../../domain/task.js';
import { safeText } from './format.js';
import { recipeLine } from './taskCard.js';

export function approvalFacts(task: Pick<Task, 'type' | 'target' | 'recipe' | 'contentVersion'>): string {
  const parts = [runsAs(task.type, task.target)];
  if (task.recipe) parts.push(recipeLine(task.recipe));
  parts.push(versionFact(task.contentVersion));
  return parts.join(' · ');
}

/** The interpreter and the target of one script (a task's, a run's script step). */
export function runsAs(type: string, target: string): string {
  return `Runs as *${safeText(type, 20)}* on \`${safeText(target, 80)}\``;
}

const versionFact = (contentVersion: string) => `Version \`${shortHash(contentVersion)}\``;

/**
 * What a run's Approve covers besides its steps (each step says how it runs): the runbook and
 * the version of its definition it was started from, every target it touches, the run's content
 * version (steps, arguments and all).
 */
export function runApprovalFacts(run: { reference: string; runbookHash: string | null; contentVersion: string; plan: { targets: readonly string[] } }): string {
  const parts = [`:scroll: Runbook \`${safeText(run.reference, 64)}\`${run.runbookHash ? ` @ \`${shortHash(run.runbookHash)}\`` : ''}`];
  if (run.plan.targets.length > 0)
    parts.push(
      `Touches ${run.plan.targets
        .slice(0, 10)
        .map((t) => `\`${safeText(t, 80)}\``)
        .join(', ')}${run.plan.targets.length > 10 ? ', …' : ''}`,
    );
  parts.push(versionFact(run.contentVersion));
  return parts.join(' · ');
}

/** Bidi controls, zero-width characters, word joiners, BOM, soft hyphen, and the C0/C1 controls a terminal or editor may not show. */
const HIDDEN =
  // biome-ignore lint/suspicious/noMisleadingCharacterClass: each hidden code point on its own (variation selectors included) is what it looks for
  /[\u00AD\u061C\u115F\u1160\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u206F\u3164\uFE00-\uFE0F\uFEFF\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]/u;

/** The first invisible or direction-changing character in `text`, with its line, or null. */
export function firstHiddenCharacter(text: string): { codePoint: string; line: number } | null {
  const match = HIDDEN.exec(text);
  if (!match) return null;
  const line = text.slice(0, match.index).split('\n').length;
  return { codePoint: `U+${match[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`, line };
}

/** A warning for the reviewer when the text holds characters they cannot see; null when it holds none. */
export function hiddenCharactersWarning(text: string, what = 'script'): string | null {
  const found = firstHiddenCharacter(text);
  if (!found) return null;
  return `:warning: The ${what} contains invisible or direction-changing characters (first: ${found.codePoint} on line ${found.line}): what you read may not be what runs. Ask the author to remove them.`;
}
