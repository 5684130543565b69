/**
 * Content hashes: SHA-256 over a canonical JSON form (object keys sorted, no whitespace), so the
 * same content always hashes the same whichever surface or process built it. Approvals, recipe
 * and runbook audits name content by these hashes.
 */
import { createHash } from 'node:crypto';

export function sha256Hex(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
}

/** JSON with object keys sorted at every depth; arrays keep their order; undefined fields dropped. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object' && !(value instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value as Record<string, unknown>).sort()) {
      const field = (value as Record<string, unknown>)[key];
      // defineProperty, not assignment: a user-chosen key `__proto__` must be hashed like any other.
      if (field !== undefined) Object.defineProperty(out, key, { value: sortKeys(field), enumerable: true, writable: true, configurable: true });
    }
    return out;
  }
  return value;
}

/** A hash of `value` under a named domain, so two kinds of content never share a hash by accident. */
export function contentHash(domain: string, value: unknown): string {
  return sha256Hex(`${domain}\n${canonicalJson(value)}`);
}
