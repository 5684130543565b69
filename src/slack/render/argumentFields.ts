/**
 * Form fields for declared values, shared by every form that asks for them: a recipe's and a
 * runbook's arguments (`/task start`), an input step's fields. One field per `options` value
 * (static_select) and per `input` value (plain_text_input, its pattern in the hint); fixed
 * values are never shown. Each field's block is `arg:<name>`, its element `value`, so field
 * errors from the service land on the field they are about.
 */
import type * as types from '@slack/types';
import type { ArgumentError, RecipeArgument } from '../../domain/recipe.js';

export const ARG_VALUE = 'value';
export const argBlock = (name: string): string => `arg:${name}`;

const plain = (text: string) => ({ type: 'plain_text' as const, text, emoji: true });
const clip = (text: string, max: number) => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

export function argumentInputs(args: readonly RecipeArgument[]): types.InputBlock[] {
  const blocks: types.InputBlock[] = [];
  for (const arg of args) {
    if (arg.kind === 'fixed') continue;
    const label = plain(clip(arg.label ?? arg.name, 2000));
    if (arg.kind === 'options') {
      const options = arg.options.slice(0, 100).map((option) => ({ text: plain(clip(option, 75)), value: option }));
      const initial = options.find((o) => o.value === arg.default);
      blocks.push({
        type: 'input',
        block_id: argBlock(arg.name),
        label,
        element: { type: 'static_select', action_id: ARG_VALUE, placeholder: plain('Choose…'), options, ...(initial ? { initial_option: initial } : {}) },
      });
      continue;
    }
    const hint = [arg.hint, arg.pattern !== undefined ? `Must match /${arg.pattern}/` : undefined].filter(Boolean).join(' · ');
    blocks.push({
      type: 'input',
      block_id: argBlock(arg.name),
      label,
      optional: !arg.required,
      element: {
        type: 'plain_text_input',
        action_id: ARG_VALUE,
        max_length: 3000,
        ...(arg.default !== undefined && arg.default !== '' ? { initial_value: clip(arg.default, 3000) } : {}),
      },
      ...(hint !== '' ? { hint: plain(clip(hint, 2000)) } : {}),
    });
  }
  return blocks;
}

type ViewState = Record<string, Record<string, { value?: string | null; selected_option?: { value?: string } | null }>>;

/** What was typed or chosen, by name; empty fields are left out (the service applies defaults and `required`). */
export function readArgumentValues(args: readonly RecipeArgument[], state: ViewState): Record<string, string> {
  const values: Record<string, string> = {};
  for (const arg of args) {
    if (arg.kind === 'fixed') continue;
    const element = state[argBlock(arg.name)]?.[ARG_VALUE];
    const value = arg.kind === 'options' ? element?.selected_option?.value : element?.value;
    if (value !== undefined && value !== null && value !== '') values[arg.name] = value;
  }
  return values;
}

/** Errors by block: each on its field when the form has one, else on `fallbackBlock`. */
export function argumentErrors(args: readonly RecipeArgument[], errors: readonly ArgumentError[], fallbackBlock: string): Record<string, string> {
  const byBlock: Record<string, string> = {};
  for (const error of errors) {
    const block = args.some((a) => a.name === error.name && a.kind !== 'fixed') ? argBlock(error.name) : fallbackBlock;
    byBlock[block] = byBlock[block] ? `${byBlock[block]}; ${error.message}` : error.message;
  }
  return byBlock;
}
