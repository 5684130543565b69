/**
 * A run's script step leaves values for later steps in the file named by $COUNTERSIGN_OUTPUT
 * (src/domain/runbook/outputs.ts says the format). After the script ends on a host, its file is
 * read back over the pooled connection with a bounded control command (at most 64 KiB + 1
 * bytes, then removed) and parsed; when every host is done their values are merged. What could
 * not be read or agreed on is said in the step's output, and left out of its values: a later
 * step that uses such a value fails naming it, it is never filled with a guess.
 */
import { hostLabel } from '../domain/plan.js';
import { mergeHostOutputs, MAX_OUTPUT_FILE_BYTES, parseStepOutputs } from '../domain/runbook/index.js';
import { readOutputFile, type RunOnHost } from '../exec/hostControl.js';
import { SecretMasker } from '../domain/secretMasker.js';

export interface HostOutputs {
  host: string;
  outputs: Record<string, string>;
}

export interface StepOutputs {
  outputs: Record<string, string>;
  problems: string[];
}

async function fromHost(run: RunOnHost, say: (line: string) => void): Promise<HostOutputs> {
  const host = hostLabel(run.endpoint.address);
  const bytes = await readOutputFile(run, MAX_OUTPUT_FILE_BYTES);
  if (bytes === null) {
    say(`countersign: ${host}: could not read the step's $COUNTERSIGN_OUTPUT file, so it has no outputs from this host\n`);
    return { host, outputs: {} };
  }
  const parsed = parseStepOutputs(bytes);
  if (!parsed.ok) {
    say(`countersign: ${host}: $COUNTERSIGN_OUTPUT: ${parsed.error}\n`);
    return { host, outputs: {} };
  }
  return { host, outputs: parsed.outputs };
}

/**
 * The step's outputs: what every host agreed on, with the target's secrets and the run's fixed
 * values masked as in the step's output. Outputs are shown (card, API) and passed to later
 * steps, so a secret never travels through them: a later step that needs one names the target.
 */
function merge(perHost: readonly HostOutputs[], say: (line: string) => void, secrets: readonly string[] = []): StepOutputs {
  const merged = mergeHostOutputs(perHost);
  for (const conflict of merged.conflicts) say(`countersign: $COUNTERSIGN_OUTPUT: ${conflict}; it is left out of the step's outputs\n`);
  const mask = (value: string) => {
    const masker = new SecretMasker(secrets);
    return masker.push(value) + masker.end();
  };
  return { outputs: Object.fromEntries(Object.entries(merged.outputs).map(([name, value]) => [name, mask(value)])), problems: merged.conflicts };
}

export const readStepOutputs = { fromHost, merge };
