/**
 * Script types and the interpreter each one runs under. The interpreter name is the only
 * part of a remote command line that depends on the task, and it comes from this fixed table,
 * never from user text.
 */
export const SCRIPT_TYPES = ['bash', 'sh', 'python3', 'node'] as const;
export type ScriptType = (typeof SCRIPT_TYPES)[number];

export const INTERPRETERS: Readonly<Record<ScriptType, string>> = {
  bash: 'bash',
  sh: 'sh',
  python3: 'python3',
  node: 'node',
};

export function isScriptType(value: string): value is ScriptType {
  return (SCRIPT_TYPES as readonly string[]).includes(value);
}

/** Language tags people put after a ``` fence, mapped to our types. */
const FENCE_LANGUAGES: Readonly<Record<string, ScriptType>> = {
  bash: 'bash',
  shell: 'bash',
  sh: 'sh',
  python: 'python3',
  python3: 'python3',
  py: 'python3',
  node: 'node',
  js: 'node',
  javascript: 'node',
};

export function scriptTypeForFenceLanguage(language: string): ScriptType | undefined {
  return FENCE_LANGUAGES[language.toLowerCase()];
}

export function isShellType(type: ScriptType): boolean {
  return type === 'bash' || type === 'sh';
}
