/**
 * What a step's output goes through before anyone sees or stores it: secret values masked
 * (even split across chunks), then the target's redaction rules applied line by line. With
 * redaction rules, a line shows when it ends (a match split by a pause must not slip through
 * half by half); without them, text passes at once. A secret's possible beginning is held
 * back until it cannot be one.
 */
import type { RedactRule } from '../domain/redaction.js';
import { LineRedactor } from '../domain/redaction.js';
import { SecretMasker } from '../domain/secretMasker.js';

export class OutputFilter {
  private readonly masker: SecretMasker;
  private readonly redactor: LineRedactor;

  constructor(
    secrets: readonly string[],
    rules: readonly RedactRule[],
    /** Receives filtered text. */
    private readonly emit: (text: string) => void,
  ) {
    this.masker = new SecretMasker(secrets);
    this.redactor = new LineRedactor(rules);
  }

  push(text: string): void {
    this.send(this.redactor.push(this.masker.push(text)));
  }

  end(): void {
    this.send(this.redactor.push(this.masker.end()) + this.redactor.end());
  }

  private send(text: string): void {
    if (text !== '') this.emit(text);
  }
}
