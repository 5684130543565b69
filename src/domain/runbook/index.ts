/**
 * Runbooks, the pure half: definitions, the graph, the pinned plan, references and outputs.
 * The engine (storage, claiming, Slack and API surfaces) builds on exactly this surface; the
 * HTTP step's executor is src/exec/httpStep.ts and the allowlist src/domain/netAllow.ts.
 *
 * Life of a run, as the engine is expected to drive it:
 *   load     runbooksConfigSchema (config) / parseRunbookJson (import) -> runbookFromBody
 *            -> checkRunbooks(all, { targets, allow })  (problems name their fields)
 *            recipes join as runbookFromRecipe(recipe)
 *   start    planRun(runbooks, reference, args, { fixedValueKey, targets }) -> RunPlan
 *            store the plan as it is (it is the pinned content); review covers plan.targets;
 *            approvals name plan.contentVersion (runContentVersion re-computes it from a stored plan)
 *   each step, group by group (steps of a group at once):
 *     script   resolveScriptStep(step, values) -> ScriptArgument[] for encodeStdin; after the
 *              run, parseStepOutputs(file) per host, mergeHostOutputs -> StepValues.outputs
 *     http     resolveHttpStep(step, values, targetSecrets) -> HttpRequestSpec, maskValues
 *              -> runHttpStep (src/exec/httpStep.ts) -> StepValues.http
 *     approval the step's content says who and how many (ApprovalStep)
 *     input    resolveInputValues(step, submitted) -> StepValues.outputs
 *   values   RunValues = { arguments: plan.arguments, steps: { [qualifiedId]: StepValues } }
 */
export * from './definition.js';
export * from './template.js';
export * from './httpRequest.js';
export * from './arguments.js';
export * from './graph.js';
export * from './plan.js';
export * from './values.js';
export * from './outputs.js';
