/**
 * What a step's output goes through before anyone sees or stores it: secret values masked
 * (even split across chunks), then the target's redaction rules applied line by line. A
 * partial line is released after a short quiet spell, so a prompt or a progress bar still
 * shows; a secret's possible beginning is only ever released at the end.
 */
import type { RedactRule } from '../domain/redaction.js';
import { LineRedactor } from '../domain/redaction.js';
import { SecretMasker } from '../domain/secretMasker.js';

export class OutputFilter {
  private readonly masker: SecretMasker;
  private readonly redactor: LineRedactor;
  private idleTimer: NodeJS.Timeout | null = null;

  constructor(
    secrets: readonly string[],
    rules: readonly RedactRule[],
    /** Receives filtered text, from push() and from the quiet-spell release. */
    private readonly emit: (text: string) => void,
    private readonly quietMs = 250,
  ) {
    this.masker = new SecretMasker(secrets);
    this.redactor = new LineRedactor(rules);
  }

  push(text: string): void {
    this.send(this.redactor.push(this.masker.push(text)));
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      this.send(this.redactor.flushPartial());
    }, this.quietMs);
  }

  end(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    this.send(this.redactor.push(this.masker.end()) + this.redactor.end());
  }

  private send(text: string): void {
    if (text !== '') this.emit(text);
  }
}
