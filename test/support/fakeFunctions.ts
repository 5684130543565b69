// Slack's side of Workflow Builder custom steps for the fake Slack (fakeSlack.ts `functions`):
// a workflow running a step makes a `function_executed` event (shaped like Slack's, see
// https://docs.slack.dev/reference/events/function_executed) and a running execution; the app
// ends it with functions.completeSuccess / completeError, answered as Slack does:
// - an unknown execution id: `function_execution_not_found`;
// - an execution already completed (or failed): `execution_not_in_running_state`;
// - outputs that do not fit the step's `output_parameters` (a required one missing, one not
//   declared, a value of the wrong type): `parameter_validation_failed`.
// Step definitions come from manifest.yml's `functions`, so the tests check the real manifest.
// Kept by fakeSlack's reset().
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';

type Json = Record<string, unknown>;

interface Parameter {
  type: string;
  title?: string;
  description?: string;
  is_required?: boolean;
}

export interface FunctionDefinition {
  title: string;
  description?: string;
  input_parameters: Record<string, Parameter>;
  output_parameters: Record<string, Parameter>;
}

export interface FunctionCompletion {
  functionExecutionId: string;
  kind: 'success' | 'error';
  outputs?: Json;
  error?: string;
  at: number;
}

interface Execution {
  callbackId: string;
  definition: FunctionDefinition;
  state: 'running' | 'completed' | 'failed';
}

const MANIFEST = new URL('../../manifest.yml', import.meta.url);

/** The `functions` section of manifest.yml. */
export function manifestFunctions(): Record<string, FunctionDefinition> {
  return (parseYaml(readFileSync(MANIFEST, 'utf8')) as { functions?: Record<string, FunctionDefinition> }).functions ?? {};
}

export class FakeFunctions {
  /** Every completion Slack accepted, in order. */
  readonly completions: FunctionCompletion[] = [];
  private readonly executions = new Map<string, Execution>();
  private readonly definitions = new Map<string, FunctionDefinition>(Object.entries(manifestFunctions()));

  /**
   * A workflow reaches the step `callbackId` with these inputs (as Workflow Builder maps them):
   * the execution is running, and this is the event Slack sends the app.
   */
  execute(callbackId: string, inputs: Json): Json {
    const definition = this.definitions.get(callbackId);
    if (!definition) throw new Error(`manifest.yml declares no function ${callbackId}`);
    const functionExecutionId = `Fx${randomBytes(5).toString('hex').toUpperCase()}`;
    this.executions.set(functionExecutionId, { callbackId, definition, state: 'running' });
    const params = (p: Record<string, Parameter>) => Object.entries(p).map(([name, param]) => ({ name, ...param }));
    return {
      type: 'function_executed',
      function: {
        id: `Fn${randomBytes(5).toString('hex').toUpperCase()}`,
        callback_id: callbackId,
        title: definition.title,
        description: definition.description ?? '',
        type: 'app',
        input_parameters: params(definition.input_parameters),
        output_parameters: params(definition.output_parameters),
        app_id: 'A0TEST',
        date_created: 1_700_000_000,
        date_updated: 1_700_000_000,
        date_deleted: 0,
      },
      inputs,
      function_execution_id: functionExecutionId,
      workflow_execution_id: `Wx${randomBytes(5).toString('hex').toUpperCase()}`,
      // The execution's own token: the app may use it, or its bot token.
      bot_access_token: `xwfp-${randomBytes(12).toString('hex')}`,
    };
  }

  /** Interactivity as Slack fills it from a person's click (`interactor` is who clicked). */
  static interactivity(userId: string): Json {
    return { interactor: { id: userId, secret: randomBytes(24).toString('base64') }, interactivity_pointer: `${Date.now()}.${randomBytes(6).toString('hex')}` };
  }

  /** 'running' until completed, then 'completed' or 'failed'; undefined for an id Slack never made. */
  state(functionExecutionId: string): Execution['state'] | undefined {
    return this.executions.get(functionExecutionId)?.state;
  }

  completionsOf(functionExecutionId: string): FunctionCompletion[] {
    return this.completions.filter((c) => c.functionExecutionId === functionExecutionId);
  }

  /** @internal functions.completeSuccess */
  completeSuccess(args: Json): Json {
    const found = this.running(args);
    if ('error' in found) return found.error;
    const outputs = decode(args.outputs);
    if (outputs === undefined) return { ok: false, error: 'invalid_arguments' };
    const problem = checkOutputs(found.execution.definition, outputs);
    if (problem) return { ok: false, error: 'parameter_validation_failed', errors: [problem] };
    found.execution.state = 'completed';
    this.completions.push({ functionExecutionId: found.id, kind: 'success', outputs, at: Date.now() });
    return { ok: true };
  }

  /** @internal functions.completeError */
  completeError(args: Json): Json {
    const found = this.running(args);
    if ('error' in found) return found.error;
    if (typeof args.error !== 'string' || args.error === '') return { ok: false, error: 'invalid_arguments' };
    found.execution.state = 'failed';
    this.completions.push({ functionExecutionId: found.id, kind: 'error', error: args.error, at: Date.now() });
    return { ok: true };
  }

  private running(args: Json): { id: string; execution: Execution } | { error: Json } {
    const id = typeof args.function_execution_id === 'string' ? args.function_execution_id : '';
    if (id === '') return { error: { ok: false, error: 'invalid_arguments' } };
    const execution = this.executions.get(id);
    if (!execution) return { error: { ok: false, error: 'function_execution_not_found' } };
    if (execution.state !== 'running') return { error: { ok: false, error: 'execution_not_in_running_state' } };
    return { id, execution };
  }
}

/** web-api sends objects JSON-encoded in form bodies. */
function decode(value: unknown): Json | undefined {
  let parsed = value;
  if (typeof value === 'string') {
    try {
      parsed = JSON.parse(value);
    } catch {
      return undefined;
    }
  }
  return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Json) : undefined;
}

function checkOutputs(definition: FunctionDefinition, outputs: Json): string | null {
  for (const [name, param] of Object.entries(definition.output_parameters)) {
    const value = outputs[name];
    if (value === undefined || value === null) {
      if (param.is_required) return `missing required output ${name}`;
      continue;
    }
    if (!fits(param.type, value)) return `output ${name} is not of type ${param.type}`;
  }
  const unknown = Object.keys(outputs).filter((name) => !Object.hasOwn(definition.output_parameters, name));
  return unknown.length > 0 ? `outputs not declared: ${unknown.join(', ')}` : null;
}

function fits(type: string, value: unknown): boolean {
  switch (type) {
    case 'integer':
      return Number.isInteger(value);
    case 'number':
      return typeof value === 'number';
    case 'boolean':
      return typeof value === 'boolean';
    case 'string':
    case 'slack#/types/user_id':
    case 'slack#/types/channel_id':
      return typeof value === 'string';
    default:
      return true;
  }
}
