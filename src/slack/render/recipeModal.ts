/**
 * The `/task start <recipe>` form: what the recipe runs (its script, whole when short, else its
 * first lines, and its version hash), one field per `options` argument (static_select) and per
 * `input` argument (argumentFields.ts), and an optional message. Fixed
 * arguments are never shown, only counted. The form carries the hash it showed: a submit after
 * the recipe changed is refused. Opened as a loading view (Slack's trigger expires in 3 s) and
 * filled in with views.update. Everything the recipe's author wrote is escaped for mrkdwn.
 */
import type * as types from '@slack/types';
import { shortHash } from '../../domain/contentVersion.js';
import type { Recipe } from '../../domain/recipe.js';
import { context, section } from './blocks.js';
import { codeBlock, fitsInCodeBlock, safeText } from './format.js';
import { ARG_VALUE, argumentInputs } from './argumentFields.js';

/** How much of the script the form shows (a section holds 3000 characters). */
export const RECIPE_FORM_SCRIPT_CHARS = 1500;

export const RECIPE_MODAL_CALLBACK = 'recipe_start';
/** Each argument's block is `arg:<name>`, its element `value`; the message is `message`. */
export const RECIPE_VALUE = ARG_VALUE;
export const RECIPE_MESSAGE_BLOCK = 'message';

export interface RecipeFormMetadata {
  recipe: string;
  channel: string | null;
  /** The recipe version the form shows (64 hex); set once the recipe is read. */
  hash?: string;
}

const plain = (text: string) => ({ type: 'plain_text' as const, text, emoji: true });
const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);
const title = (text: string) => plain(clip(text, 24));

export function renderRecipeLoadingModal(name: string): types.ModalView {
  return { type: 'modal', callback_id: RECIPE_MODAL_CALLBACK, title: title(`Start ${name}`), close: plain('Cancel'), blocks: [section(':hourglass_flowing_sand: Loading the recipe…')] };
}

export function renderRecipeMissingModal(text: string): types.ModalView {
  return { type: 'modal', callback_id: RECIPE_MODAL_CALLBACK, title: title('Start a recipe'), close: plain('Close'), blocks: [section(text)] };
}

export function renderRecipeModal(recipe: Recipe, metadata: RecipeFormMetadata & { hash: string }): types.ModalView {
  const fixed = recipe.arguments.filter((a) => a.kind === 'fixed').length;
  const blocks: types.KnownBlock[] = [
    section(`*${safeText(recipe.name, 64)}* on \`${safeText(recipe.target, 80)}\`${recipe.description ? `\n${safeText(recipe.description, 2000)}` : ''}`),
    section(codeBlock(recipe.script, RECIPE_FORM_SCRIPT_CHARS)),
    context(
      `Recipe version \`${shortHash(metadata.hash)}\`${fitsInCodeBlock(recipe.script, RECIPE_FORM_SCRIPT_CHARS) ? '' : ` · only the first lines are shown: \`/task recipe export ${safeText(recipe.name, 64)}\` shows the whole script`}. Reviewers see the same version.`,
    ),
  ];
  if (fixed > 0) blocks.push(context(`${fixed} fixed argument${fixed > 1 ? 's are' : ' is'} set by the recipe.`));
  blocks.push(...argumentInputs(recipe.arguments));
  blocks.push({
    type: 'input',
    block_id: RECIPE_MESSAGE_BLOCK,
    label: plain('Why'),
    optional: true,
    element: { type: 'plain_text_input', action_id: RECIPE_VALUE, max_length: 2000, ...(recipe.message ? { initial_value: clip(recipe.message, 2000) } : {}) },
  });
  return {
    type: 'modal',
    callback_id: RECIPE_MODAL_CALLBACK,
    private_metadata: JSON.stringify(metadata),
    title: title(`Start ${recipe.name}`),
    submit: plain('Start'),
    close: plain('Cancel'),
    blocks,
  };
}
