// Slack's documented limits for messages and views, as pure functions, so the fake Slack server
// (and unit tests of renderers) refuse exactly what Slack would refuse.
//
// Each check returns the error code Slack answers with plus a human reason pointing at the
// offending field (Slack itself puts a similar hint in `response_metadata.messages`).

export type MessageMethod = 'chat.postMessage' | 'chat.update' | 'chat.postEphemeral';

export interface LimitProblem {
  /** The `error` Slack returns, e.g. `invalid_blocks`. */
  error: string;
  /** Which limit was broken and where, e.g. `/blocks/3/text/text: 3120 > 3000 characters`. */
  reason: string;
}

/** Slack's numbers, in one place (from Slack's Block Kit and Web API reference). */
export const SLACK_LIMITS = {
  messageBlocks: 50, // blocks per message
  viewBlocks: 100, // blocks per modal or Home tab
  blocksJsonChars: 12_000, // Slack refuses blocks adding up past ~12-13k chars: msg_blocks_too_long
  updateTextChars: 4_000, // chat.update refuses longer text: msg_too_long
  postTextChars: 40_000, // chat.postMessage / postEphemeral text past this: msg_too_long
  sectionText: 3_000, // section block text
  sectionFields: 10, // section fields count
  sectionFieldText: 2_000, // each section field
  headerText: 150, // header block text
  actionsElements: 25, // elements in an actions block
  contextElements: 10, // elements in a context block
  buttonText: 75, // button label
  buttonValue: 2_000, // button value
  buttonUrl: 3_000, // button url
  id: 255, // action_id and block_id
  inputLabel: 2_000, // input block label and hint
  selectOptions: 100, // options in a static select
  optionText: 75, // option label
  optionValue: 150, // option value
  viewTitle: 24, // modal title, submit and close texts
  privateMetadata: 3_000, // view private_metadata
  callbackId: 255, // view callback_id
  externalId: 255, // view external_id
} as const;

const L = SLACK_LIMITS;

/** The error string Slack would return for this message, or null when Slack would accept it. */
export function validateMessage(args: { text?: string; blocks?: unknown[] }, method: MessageMethod): string | null {
  return checkMessage(args, method)?.error ?? null;
}

/** Like validateMessage, with the reason. */
export function checkMessage(args: { text?: string; blocks?: unknown[] }, method: MessageMethod): LimitProblem | null {
  const { text, blocks } = args;
  const hasText = typeof text === 'string' && text.length > 0;
  const hasBlocks = Array.isArray(blocks) && blocks.length > 0;
  // Slack needs something to show (and to notify with).
  if (!hasText && !hasBlocks) return { error: 'no_text', reason: 'neither text nor blocks given' };
  if (hasText) {
    const max = method === 'chat.update' ? L.updateTextChars : L.postTextChars;
    if (text.length > max) return { error: 'msg_too_long', reason: `text: ${text.length} > ${max} characters` };
  }
  if (blocks === undefined) return null;
  if (!Array.isArray(blocks)) return { error: 'invalid_blocks_format', reason: 'blocks is not an array' };
  if (blocks.length > L.messageBlocks) {
    return { error: 'invalid_blocks', reason: `blocks: ${blocks.length} > ${L.messageBlocks} blocks` };
  }
  const blockProblem = checkBlocks(blocks, '/blocks');
  if (blockProblem) return { error: 'invalid_blocks', reason: blockProblem };
  const jsonLength = JSON.stringify(blocks).length;
  if (jsonLength > L.blocksJsonChars) {
    return { error: 'msg_blocks_too_long', reason: `blocks: ${jsonLength} > ${L.blocksJsonChars} characters of JSON` };
  }
  return null;
}

/** `invalid_arguments` (what views.* answer) when the view breaks a limit, else null. */
export function validateView(view: unknown): string | null {
  return checkView(view)?.error ?? null;
}

/** Like validateView, with the reason. */
export function checkView(view: unknown): LimitProblem | null {
  const reason = viewProblem(view);
  return reason === null ? null : { error: 'invalid_arguments', reason };
}

function viewProblem(view: unknown): string | null {
  if (!isObject(view)) return 'view: not an object';
  if (view.type !== 'modal' && view.type !== 'home') return `/view/type: "${String(view.type)}" is not modal or home`;
  // A modal must have a title; Home tabs have none.
  if (view.type === 'modal' && !isObject(view.title)) return '/view/title: required for a modal';
  for (const key of ['title', 'submit', 'close'] as const) {
    const problem = textProblem(view[key], L.viewTitle, `/view/${key}`);
    if (problem) return problem;
  }
  if (typeof view.private_metadata === 'string' && view.private_metadata.length > L.privateMetadata) {
    return `/view/private_metadata: ${view.private_metadata.length} > ${L.privateMetadata} characters`;
  }
  for (const key of ['callback_id', 'external_id'] as const) {
    const value = view[key];
    if (typeof value === 'string' && value.length > L.id) return `/view/${key}: ${value.length} > ${L.id} characters`;
  }
  if (!Array.isArray(view.blocks)) return '/view/blocks: required array';
  if (view.blocks.length > L.viewBlocks) return `/view/blocks: ${view.blocks.length} > ${L.viewBlocks} blocks`;
  return checkBlocks(view.blocks, '/view/blocks');
}

/** First broken per-block limit, as a reason string, or null. Unknown block types are not checked. */
export function checkBlocks(blocks: unknown[], path = '/blocks'): string | null {
  for (const [i, block] of blocks.entries()) {
    const problem = blockProblem(block, `${path}/${i}`);
    if (problem) return problem;
  }
  return null;
}

function blockProblem(block: unknown, path: string): string | null {
  if (!isObject(block) || typeof block.type !== 'string') return `${path}: a block needs a type`;
  const idProblem = lengthProblem(block.block_id, L.id, `${path}/block_id`);
  if (idProblem) return idProblem;
  switch (block.type) {
    case 'section': {
      const fields = block.fields;
      if (block.text === undefined && fields === undefined) return `${path}: a section needs text or fields`;
      const text = textProblem(block.text, L.sectionText, `${path}/text`);
      if (text) return text;
      if (fields !== undefined) {
        if (!Array.isArray(fields)) return `${path}/fields: not an array`;
        if (fields.length > L.sectionFields) return `${path}/fields: ${fields.length} > ${L.sectionFields} fields`;
        for (const [j, field] of fields.entries()) {
          const problem = textProblem(field, L.sectionFieldText, `${path}/fields/${j}`);
          if (problem) return problem;
        }
      }
      return block.accessory === undefined ? null : elementProblem(block.accessory, `${path}/accessory`);
    }
    case 'header':
      if (!isObject(block.text)) return `${path}/text: required`;
      return textProblem(block.text, L.headerText, `${path}/text`);
    case 'actions':
      return elementsProblem(block.elements, L.actionsElements, `${path}/elements`, elementProblem);
    case 'context':
      // Context elements are texts and images; only their count is limited here.
      return elementsProblem(block.elements, L.contextElements, `${path}/elements`, () => null);
    case 'input':
      return (
        textProblem(block.label, L.inputLabel, `${path}/label`) ??
        textProblem(block.hint, L.inputLabel, `${path}/hint`) ??
        (isObject(block.element) ? elementProblem(block.element, `${path}/element`) : `${path}/element: required`)
      );
    default:
      // divider, image, markdown, rich_text, file, video...: accepted as they are.
      return null;
  }
}

function elementsProblem(elements: unknown, max: number, path: string, each: (element: unknown, path: string) => string | null): string | null {
  if (!Array.isArray(elements) || elements.length === 0) return `${path}: required non-empty array`;
  if (elements.length > max) return `${path}: ${elements.length} > ${max} elements`;
  for (const [i, element] of elements.entries()) {
    const problem = each(element, `${path}/${i}`);
    if (problem) return problem;
  }
  return null;
}

function elementProblem(element: unknown, path: string): string | null {
  if (!isObject(element)) return `${path}: not an object`;
  const idProblem = lengthProblem(element.action_id, L.id, `${path}/action_id`);
  if (idProblem) return idProblem;
  if (element.type === 'button') {
    if (!isObject(element.text)) return `${path}/text: required`;
    return (
      textProblem(element.text, L.buttonText, `${path}/text`) ??
      lengthProblem(element.value, L.buttonValue, `${path}/value`) ??
      lengthProblem(element.url, L.buttonUrl, `${path}/url`)
    );
  }
  if (element.type === 'static_select' || element.type === 'multi_static_select') {
    const options = element.options;
    if (!Array.isArray(options)) return null; // option_groups: not checked
    if (options.length > L.selectOptions) return `${path}/options: ${options.length} > ${L.selectOptions} options`;
    for (const [i, option] of options.entries()) {
      if (!isObject(option)) return `${path}/options/${i}: not an object`;
      const problem =
        textProblem(option.text, L.optionText, `${path}/options/${i}/text`) ?? lengthProblem(option.value, L.optionValue, `${path}/options/${i}/value`);
      if (problem) return problem;
    }
  }
  return null;
}

/** A text object ({ type, text }) longer than max. Absent is fine; required-ness is checked by callers. */
function textProblem(textObject: unknown, max: number, path: string): string | null {
  if (textObject === undefined) return null;
  if (!isObject(textObject) || typeof textObject.text !== 'string') return `${path}: not a text object`;
  return lengthProblem(textObject.text, max, `${path}/text`);
}

function lengthProblem(value: unknown, max: number, path: string): string | null {
  if (typeof value !== 'string') return null;
  return value.length > max ? `${path}: ${value.length} > ${max} characters` : null;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
