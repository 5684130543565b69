/**
 * Content versions: what a reviewer approves, named by a SHA-256 over everything that will run
 * (target, type, script, message, arguments, the recipe it came from). Approve buttons and the
 * API's ETag carry it; an approval of any other version is refused, so nobody approves what
 * they did not see.
 *
 * Fixed argument values are secret: they enter every hash sealed with HMAC-SHA256 under a key
 * only the server holds (the `settings` table), so a published version or recipe hash says
 * nothing about them, not even to someone who guesses candidate values and hashes them.
 */
import { createHmac } from 'node:crypto';
import { contentHash } from './digest.js';
import type { ScriptType } from './scriptTypes.js';

export const TASK_CONTENT_DOMAIN = 'countersign.task/v1';
export const RECIPE_CONTENT_DOMAIN = 'countersign.recipe/v1';

/** A content version or recipe hash: 64 lowercase hex digits, nothing shorter. */
export const FULL_HASH = /^[0-9a-f]{64}$/;

/** The recipe a task was started from, and the hash of its definition at that moment. */
export interface RecipeRef {
  name: string;
  hash: string;
  /**
   * Who imported this version (none for a config recipe): never a reviewer of the task. Not part
   * of the content version: it says who may approve, not what runs.
   */
  writtenBy?: string;
}

export interface ContentArgument {
  name: string;
  kind: 'fixed' | 'options' | 'input';
  value: string;
}

export interface TaskContent {
  target: string;
  type: ScriptType;
  script: string;
  message: string | null;
  arguments: readonly ContentArgument[] | null;
  recipe: RecipeRef | null;
}

/**
 * A fixed value as it enters a hash: HMAC-SHA256 under the server's key, never the value itself,
 * bound to the definition it belongs to (`owner`: the recipe or runbook's name). Without the
 * owner, anyone could import a recipe of their own with a guessed value and compare the two
 * hashes: equal hashes would confirm the guess.
 */
export function sealFixedValue(key: string, owner: string, value: string): string {
  return `hmac-sha256:${createHmac('sha256', key)
    .update(JSON.stringify([owner, value]), 'utf8')
    .digest('hex')}`;
}

/** The task's content version (64 hex digits). */
export function contentVersion(content: TaskContent, key: string): string {
  return contentHash(TASK_CONTENT_DOMAIN, {
    target: content.target,
    type: content.type,
    script: content.script,
    message: content.message,
    arguments: (content.arguments ?? []).map((arg) => ({
      name: arg.name,
      kind: arg.kind,
      value: arg.kind === 'fixed' ? sealFixedValue(key, content.recipe?.name ?? '', arg.value) : arg.value,
    })),
    recipe: content.recipe ? { name: content.recipe.name, hash: content.recipe.hash } : null,
  });
}

/**
 * The hash of a recipe's definition (the export format with its fixed values, as stored): what
 * audit events, start forms and tasks name a recipe version by.
 */
export function recipeContentHash(definition: Readonly<Record<string, unknown>>, key: string): string {
  return definitionContentHash(RECIPE_CONTENT_DOMAIN, definition, key);
}

/** A saved definition's hash (a recipe's, a runbook's) in its own domain, fixed argument values sealed to its reference (a recipe's name). */
export function definitionContentHash(domain: string, definition: Readonly<Record<string, unknown>>, key: string): string {
  const args = Array.isArray(definition.arguments) ? definition.arguments : [];
  return contentHash(domain, {
    ...definition,
    arguments: args.map((arg: unknown) => {
      const a = arg as Record<string, unknown>;
      return a && a.kind === 'fixed' && typeof a.value === 'string'
        ? { ...a, value: sealFixedValue(key, String(definition.reference ?? definition.name ?? ''), a.value) }
        : a;
    }),
  });
}

/** How a hash is shown to people: its first 12 hex digits (the full one is what is checked). */
export const shortHash = (hash: string): string => hash.slice(0, 12);
