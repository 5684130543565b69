/**
 * Pinned host keys in OpenSSH known_hosts format:
 *   host[,host2] keytype base64 [comment]      host may be `[host]:port` or a hashed `|1|salt|hash`
 * Pure: parsing and matching only. A host with no matching line is refused, never trusted.
 */
import { createHmac } from 'node:crypto';

export interface KnownHostEntry {
  patterns: string[];
  keyType: string;
  keyBase64: string;
}

export function parseKnownHosts(text: string): { entries: KnownHostEntry[]; errors: string[] } {
  const entries: KnownHostEntry[] = [];
  const errors: string[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const parts = line.split(/\s+/);
    // A leading @marker (@cert-authority, @revoked) is not supported: refuse rather than guess.
    if (parts[0]?.startsWith('@')) {
      errors.push(`line ${index + 1}: markers like ${parts[0]} are not supported`);
      return;
    }
    const [hosts, keyType, keyBase64] = parts;
    if (hosts === undefined || keyType === undefined || keyBase64 === undefined || !/^[A-Za-z0-9+/]+=*$/.test(keyBase64)) {
      errors.push(`line ${index + 1}: expected "host keytype base64-key"`);
      return;
    }
    entries.push({ patterns: hosts.split(','), keyType, keyBase64 });
  });
  return { entries, errors };
}

/** The names a host is known by: `host` on port 22, `[host]:port` otherwise (as OpenSSH writes them). */
function namesFor(host: string, port: number): string[] {
  return port === 22 ? [host, `[${host}]:22`] : [`[${host}]:${port}`, host];
}

function patternMatches(pattern: string, name: string): boolean {
  if (pattern.startsWith('|1|')) {
    const [, , salt, hash] = pattern.split('|');
    if (salt === undefined || hash === undefined) return false;
    const digest = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
    return digest === hash;
  }
  return pattern === name;
}

/**
 * Keys pinned for host:port. A plain `host` entry also pins non-standard ports, as config
 * writers usually mean "this machine", but an exact `[host]:port` entry wins when present.
 */
export function keysFor(entries: readonly KnownHostEntry[], host: string, port: number): KnownHostEntry[] {
  for (const name of namesFor(host, port)) {
    const matched = entries.filter((entry) => entry.patterns.some((pattern) => patternMatches(pattern, name)));
    if (matched.length > 0) return matched;
  }
  return [];
}
