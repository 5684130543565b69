/**
 * "Run a countersign runbook", the step countersign offers to Slack's Workflow Builder (issue 13):
 * its definition (what manifest.yml declares under `functions`), how the inputs Slack sends in
 * `function_executed` become a start, and how a run's end becomes the step's completion. Pure.
 *
 * Who starts the run: the person whose click ran the workflow, from the `interactivity` input
 * (`interactor.id`). Slack fills that value from a real interaction (the click that started the
 * workflow, a button in it); a workflow's author cannot type one in. A `user_id` input would be
 * any user the author picks, so a run could be started, and then approved by its real author,
 * in someone else's name. A workflow with no person behind it (a schedule, an event) gives no
 * interactivity and cannot start runs: countersign's own schedules do that, reviewed once.
 */
import { MAX_MESSAGE_CHARS } from './command.js';
import type { Run, RunStatus } from './run.js';

export const WORKFLOW_STEP_CALLBACK_ID = 'run_countersign_runbook';

interface Parameter {
  type: string;
  title: string;
  description: string;
  is_required: boolean;
  hint?: string;
}

/** The step as manifest.yml declares it (`functions.run_countersign_runbook`); the manifest test compares the two. */
export const WORKFLOW_STEP_DEFINITION: {
  title: string;
  description: string;
  input_parameters: Record<'runbook' | 'arguments' | 'message' | 'interactivity', Parameter>;
  output_parameters: Record<'run_id' | 'status' | 'link', Parameter>;
} = {
  title: 'Run a countersign runbook',
  description: 'Starts a countersign runbook in the name of the person who runs the workflow, reviewed like any other start, and finishes when the run ends.',
  input_parameters: {
    runbook: {
      type: 'string',
      title: 'Runbook',
      description: "The runbook's reference, as `/task runbook list` shows it",
      is_required: true,
      hint: 'restart-web',
    },
    arguments: {
      type: 'string',
      title: 'Arguments',
      description: 'One name=value per line, or a JSON object; fixed arguments cannot be set',
      is_required: false,
      hint: 'mode=graceful',
    },
    message: {
      type: 'string',
      title: 'Why',
      description: 'Shown to the reviewers with the run',
      is_required: false,
    },
    interactivity: {
      type: 'slack#/types/interactivity',
      title: 'Started by',
      description: 'The click that runs the workflow: the run is started in the name of the person who clicked',
      is_required: true,
    },
  },
  output_parameters: {
    run_id: { type: 'integer', title: 'Run id', description: 'The countersign run this step started', is_required: true },
    status: { type: 'string', title: 'Status', description: 'How the run ended (success)', is_required: true },
    link: { type: 'string', title: 'Link', description: "The run's card in Slack, or its API address", is_required: true },
  },
};

export const MAX_REFERENCE_CHARS = 200;
export const MAX_ARGUMENTS_CHARS = 16_384;
export const MAX_ARGUMENTS = 100;
/** Slack shows the error of a failed step to the workflow's user; keep it readable. */
export const MAX_ERROR_CHARS = 1000;

/** What one execution asks for, as read from its inputs (checked by checkStepRequest). */
export interface StepRequest {
  reference: string;
  /** The arguments input as given (text), or null. */
  argumentsText: string | null;
  message: string | null;
  /** The interactor's user id, or null when the inputs name none. */
  starter: string | null;
}

const USER_ID = /^[UW][A-Z0-9]{2,}$/;

/** Reads `function_executed` inputs; never keeps the interactivity pointer or the interactor's secret. */
export function readStepInputs(inputs: unknown): StepRequest {
  const given = isObject(inputs) ? inputs : {};
  const text = (value: unknown): string | null => {
    if (value === undefined || value === null) return null;
    if (typeof value === 'string') return value;
    // Workflow Builder may hand over structured values; arguments as an object mean a JSON object.
    return typeof value === 'object' ? JSON.stringify(value) : String(value);
  };
  const interactor = isObject(given.interactivity) && isObject(given.interactivity.interactor) ? given.interactivity.interactor : null;
  const id = interactor && typeof interactor.id === 'string' && USER_ID.test(interactor.id) ? interactor.id : null;
  const message = text(given.message)?.trim() ?? null;
  return {
    reference: (text(given.runbook) ?? '').trim(),
    argumentsText: text(given.arguments),
    message: message === '' ? null : message,
    starter: id,
  };
}

export type CheckedRequest =
  | { ok: true; reference: string; values: Record<string, unknown>; message: string | null; starter: string }
  | { ok: false; error: string };

/** A request countersign can try to start, or why not (the step then fails at once with that reason). */
export function checkStepRequest(request: StepRequest): CheckedRequest {
  if (request.starter === null) {
    return {
      ok: false,
      error:
        'This step needs to know who runs the workflow: give its "Started by" input the interactivity of the workflow (the person who clicked). Workflows nobody starts by hand cannot start countersign runs; use a countersign schedule instead.',
    };
  }
  if (request.reference === '') return { ok: false, error: 'Name the runbook to run (its reference, as /task runbook list shows it).' };
  if (request.reference.length > MAX_REFERENCE_CHARS)
    return { ok: false, error: `The runbook reference is ${request.reference.length} characters; references are at most ${MAX_REFERENCE_CHARS}.` };
  if (request.message !== null && request.message.length > MAX_MESSAGE_CHARS)
    return { ok: false, error: `The message is ${request.message.length} characters; keep it under ${MAX_MESSAGE_CHARS}.` };
  const parsed = parseArgumentsText(request.argumentsText ?? '');
  if (!parsed.ok) return parsed;
  return { ok: true, reference: request.reference, values: parsed.values, message: request.message, starter: request.starter };
}

/**
 * The arguments input: a JSON object (`{"mode": "hard"}`), or one `name=value` per line (blank
 * lines skipped, spaces around name and value dropped; a value with line breaks or edge spaces
 * needs JSON). Empty: no arguments. Whether the names and values fit the runbook is the plan's
 * to say, naming the argument.
 */
export function parseArgumentsText(text: string): { ok: true; values: Record<string, unknown> } | { ok: false; error: string } {
  if (text.length > MAX_ARGUMENTS_CHARS) return { ok: false, error: `The arguments are ${text.length} characters; at most ${MAX_ARGUMENTS_CHARS} are read.` };
  const trimmed = text.trim();
  if (trimmed === '') return { ok: true, values: {} };
  if (trimmed.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch (error) {
      return {
        ok: false,
        error: `The arguments start like a JSON object but are not valid JSON (${(error as Error).message}). Give a JSON object, or one name=value per line.`,
      };
    }
    if (!isObject(parsed)) return { ok: false, error: 'The arguments must be a JSON object of name: value, or one name=value per line.' };
    if (Object.keys(parsed).length > MAX_ARGUMENTS) return { ok: false, error: `At most ${MAX_ARGUMENTS} arguments can be given.` };
    return { ok: true, values: parsed };
  }
  const entries: Array<[string, string]> = [];
  const seen = new Set<string>();
  const lines = trimmed.split(/\r?\n/);
  for (const [index, line] of lines.entries()) {
    if (line.trim() === '') continue;
    const at = line.indexOf('=');
    const name = at === -1 ? '' : line.slice(0, at).trim();
    if (at === -1 || name === '')
      return {
        ok: false,
        error: `Arguments line ${index + 1} is not name=value: "${shorten(line.trim(), 60)}". Give one name=value per line, or a JSON object.`,
      };
    if (seen.has(name)) return { ok: false, error: `The argument ${name} is given twice (line ${index + 1}).` };
    seen.add(name);
    entries.push([name, line.slice(at + 1).trim()]);
    if (entries.length > MAX_ARGUMENTS) return { ok: false, error: `At most ${MAX_ARGUMENTS} arguments can be given.` };
  }
  // fromEntries defines own properties: a name like __proto__ stays a name (refused by the plan).
  return { ok: true, values: Object.fromEntries(entries) };
}

/** What Slack is told when the step ends. */
export type StepCompletion = { kind: 'success'; outputs: { run_id: number; status: RunStatus; link: string } } | { kind: 'error'; error: string };

const ENDED: Readonly<Partial<Record<RunStatus, string>>> = {
  failure: 'failed',
  killed: 'was killed',
  rejected: 'was rejected',
  cancelled: 'was cancelled',
};

/** The completion of a run that has ended, or null while it has not. */
export function runCompletion(run: Pick<Run, 'id' | 'reference' | 'status' | 'failureMessage'>, link: string): StepCompletion | null {
  if (run.status === 'success') return { kind: 'success', outputs: { run_id: run.id, status: run.status, link } };
  const ended = ENDED[run.status];
  if (!ended) return null;
  const why = run.failureMessage ? `: ${shorten(run.failureMessage, MAX_ERROR_CHARS / 2)}` : '';
  return { kind: 'error', error: shorten(`countersign run ${run.id} (${run.reference}) ${ended}${why}. ${link}`, MAX_ERROR_CHARS) };
}

/** The completion of a start countersign refused. */
export function refusalCompletion(reason: string): StepCompletion {
  return { kind: 'error', error: shorten(`countersign did not start the runbook: ${reason}`, MAX_ERROR_CHARS) };
}

function shorten(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
