/** What a use case answers: done, or refused with a message the user can act on. */
import type { Refusal } from '../domain/review.js';

export type { Refusal };
export type Outcome<T> = ({ ok: true } & T) | Refusal;

export const refuse = (code: string, message: string): Refusal => ({ ok: false, code, message });
