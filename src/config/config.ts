/**
 * The resolved config the app runs on: keys read, known hosts parsed, durations in ms.
 * Produced once at start by loadConfig; everything downstream takes these types.
 */
import type { HostAddress } from '../domain/plan.js';
import type { ReviewPolicy } from '../domain/review.js';
import type { ScriptType } from '../domain/scriptTypes.js';
import type { KnownHostEntry } from '../exec/knownHosts.js';

export interface Target {
  name: string;
  description: string | null;
  type: ScriptType;
  hosts: HostAddress[];
  privateKey: string;
  knownHosts: KnownHostEntry[];
  channel: string | null;
  timeoutMs: number;
  review: ReviewPolicy | null;
}

export interface Config {
  targets: ReadonlyMap<string, Target>;
}
