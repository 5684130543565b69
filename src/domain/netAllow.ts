/**
 * Where countersign itself may send HTTP requests (runbook http steps): config `http.allow`, a
 * list of host names and addresses. Without it a runbook could make the service call anything it
 * can reach — the cloud metadata address, an admin port on localhost, a database on the private
 * network (server-side request forgery).
 *
 * Entries:
 *   `api.example.com`     that host name exactly (case-insensitive, a trailing dot ignored)
 *   `*.example.com`       any name under example.com (not example.com itself)
 *   `10.1.2.3`, `::1`     that address
 *   `10.0.0.0/8`, `fd00::/8`  that network (IPv4 and IPv6 CIDRs; IPv4-mapped IPv6 counts as IPv4)
 *
 * The rule, applied to the URL of every request and of every redirect hop:
 *   1. The URL's host must be allowed as written: a name must match a name entry; an address
 *      literal must be covered by an address/CIDR entry. A name is never allowed just because
 *      it happens to resolve into an allowed network: names are what reviewers read.
 *   2. Every address a name resolves to must be acceptable: covered by an address/CIDR entry,
 *      or a public (globally routable) address. Loopback, private, link-local (169.254.169.254,
 *      the metadata service), unique-local, CGNAT, multicast and other special-purpose ranges
 *      need an entry that covers them. So an allowed name that someone points at 127.0.0.1 or
 *      10.0.0.5 is refused, while `api.example.com` may move between public addresses freely.
 *   The checked address is the one connected to (src/exec/httpStep.ts pins it), so a second DNS
 *   answer cannot swap in another address between the check and the connection.
 *
 * Interface (pure; no DNS here):
 *   parseNetAllow(entries)            -> { ok, allow } | { ok: false, problems: ['http.allow[2]: ...'] }
 *   netAllowEntryProblem(entry)       -> why one entry is not valid, or null
 *   checkUrlHost(allow, hostname)     -> { ok, kind: 'name' | 'address', host } | { ok: false, reason }
 *   checkResolvedAddress(allow, name, address) -> { ok } | { ok: false, reason }
 *   specialPurposeRange(address)      -> the range's description, or null for a public address
 *   EMPTY_NET_ALLOW                   -> allows nothing
 * Node's net.BlockList does the CIDR matching (v4, v6 and IPv4-mapped v6).
 */
import { BlockList, isIP, isIPv4 } from 'node:net';

export interface NetAllow {
  /** The entries as written, for messages and `countersign check`. */
  readonly entries: readonly string[];
  readonly names: readonly string[];
  /** `*.example.com` kept as `.example.com`. */
  readonly suffixes: readonly string[];
  readonly addresses: BlockList;
  readonly hasAddresses: boolean;
}

export type HostCheck = { ok: true; kind: 'name' | 'address'; host: string } | { ok: false; reason: string };
export type AddressCheck = { ok: true } | { ok: false; reason: string };

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

function normaliseName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

function validName(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  return name.split('.').every((label) => LABEL.test(label) || /^xn--[a-z0-9-]{1,59}$/.test(label));
}

/** Why `entry` cannot be an http.allow entry, or null when it can. */
export function netAllowEntryProblem(entry: string): string | null {
  const text = entry.trim();
  if (text === '') return 'an entry is empty';
  if (text.includes('/')) {
    const [address = '', prefix = '', ...rest] = text.split('/');
    const family = isIP(address);
    if (rest.length > 0 || family === 0) return `${text}: expected a network like 10.0.0.0/8 or fd00::/8`;
    if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > (family === 4 ? 32 : 128)) return `${text}: the prefix length must be 0 to ${family === 4 ? 32 : 128}`;
    return null;
  }
  if (isIP(stripBrackets(text)) !== 0) return null;
  if (/[:/@?#\s]/.test(text)) return `${text}: expected a host name, an address or a CIDR (no scheme, port or path)`;
  if (text.startsWith('*.')) return validName(normaliseName(text.slice(2))) ? null : `${text}: "*." must be followed by a host name`;
  const name = normaliseName(text);
  if (name.includes('*')) return `${text}: a wildcard is only allowed as the first label ("*.example.com")`;
  return validName(name) ? null : `${text}: not a valid host name`;
}

function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

export function parseNetAllow(entries: readonly string[], field = 'http.allow'): { ok: true; allow: NetAllow } | { ok: false; problems: string[] } {
  const problems: string[] = [];
  const names: string[] = [];
  const suffixes: string[] = [];
  const addresses = new BlockList();
  let hasAddresses = false;
  entries.forEach((raw, index) => {
    const problem = netAllowEntryProblem(raw);
    if (problem !== null) {
      problems.push(`${field}[${index}]: ${problem}`);
      return;
    }
    const text = raw.trim();
    const [address = '', prefix] = text.split('/');
    const bare = stripBrackets(address);
    const family = isIP(bare);
    if (family !== 0) {
      const type = family === 4 ? 'ipv4' : 'ipv6';
      if (prefix === undefined) addresses.addAddress(bare, type);
      else addresses.addSubnet(bare, Number(prefix), type);
      hasAddresses = true;
      return;
    }
    const name = normaliseName(text);
    if (name.startsWith('*.')) suffixes.push(name.slice(1));
    else names.push(name);
  });
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, allow: { entries: entries.map((e) => e.trim()), names, suffixes, addresses, hasAddresses } };
}

export const EMPTY_NET_ALLOW: NetAllow = { entries: [], names: [], suffixes: [], addresses: new BlockList(), hasAddresses: false };

function covered(allow: NetAllow, address: string): boolean {
  const family = isIP(address);
  if (family === 0 || !allow.hasAddresses) return false;
  return allow.addresses.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/** Is the URL's host (as `new URL(...).hostname` gives it) allowed as written? */
export function checkUrlHost(allow: NetAllow, hostname: string): HostCheck {
  const bare = stripBrackets(hostname);
  if (isIP(bare) !== 0) {
    return covered(allow, bare) ? { ok: true, kind: 'address', host: bare } : { ok: false, reason: `${bare} is not covered by http.allow` };
  }
  const name = normaliseName(bare);
  if (allow.names.includes(name) || allow.suffixes.some((suffix) => name.endsWith(suffix) && name.length > suffix.length))
    return { ok: true, kind: 'name', host: name };
  return { ok: false, reason: `the host ${name} is not in http.allow` };
}

/**
 * IANA special-purpose ranges (RFC 6890 and successors) plus the private, shared and
 * documentation ones: none of them is a public service a runbook should reach by name alone.
 */
const SPECIAL: ReadonlyArray<readonly [string, number, 'ipv4' | 'ipv6', string]> = [
  ['0.0.0.0', 8, 'ipv4', '"this network"'],
  ['10.0.0.0', 8, 'ipv4', 'private'],
  ['100.64.0.0', 10, 'ipv4', 'shared (CGNAT)'],
  ['127.0.0.0', 8, 'ipv4', 'loopback'],
  ['169.254.0.0', 16, 'ipv4', 'link-local (cloud metadata)'],
  ['172.16.0.0', 12, 'ipv4', 'private'],
  ['192.0.0.0', 24, 'ipv4', 'IETF protocol assignments'],
  ['192.0.2.0', 24, 'ipv4', 'documentation'],
  ['192.88.99.0', 24, 'ipv4', '6to4 relay'],
  ['192.168.0.0', 16, 'ipv4', 'private'],
  ['198.18.0.0', 15, 'ipv4', 'benchmarking'],
  ['198.51.100.0', 24, 'ipv4', 'documentation'],
  ['203.0.113.0', 24, 'ipv4', 'documentation'],
  ['224.0.0.0', 4, 'ipv4', 'multicast'],
  ['240.0.0.0', 4, 'ipv4', 'reserved'],
  ['::', 128, 'ipv6', 'unspecified'],
  ['::1', 128, 'ipv6', 'loopback'],
  ['::', 96, 'ipv6', 'IPv4-compatible (deprecated)'],
  ['64:ff9b::', 96, 'ipv6', 'NAT64 (embeds an IPv4 address)'],
  ['64:ff9b:1::', 48, 'ipv6', 'local NAT64'],
  ['100::', 64, 'ipv6', 'discard'],
  ['2001::', 23, 'ipv6', 'IETF protocol assignments (Teredo)'],
  ['2001:db8::', 32, 'ipv6', 'documentation'],
  ['2002::', 16, 'ipv6', '6to4 (embeds an IPv4 address)'],
  ['fc00::', 7, 'ipv6', 'unique-local'],
  ['fe80::', 10, 'ipv6', 'link-local'],
  ['fec0::', 10, 'ipv6', 'site-local'],
  ['ff00::', 8, 'ipv6', 'multicast'],
];

const SPECIAL_LISTS = SPECIAL.map(([network, prefix, type, what]) => {
  const list = new BlockList();
  list.addSubnet(network, prefix, type);
  return { list, what };
});

/** The special-purpose range `address` falls in (e.g. "loopback"), or null for a public address. */
export function specialPurposeRange(address: string): string | null {
  const family = isIP(address);
  if (family === 0) return 'not an address';
  // IPv4-mapped IPv6 (::ffff:a.b.c.d, also written ::ffff:7f00:1) is judged as the IPv4 inside:
  // BlockList maps it onto the IPv4 ranges; the dotted form is mapped here to name its range.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (family === 6 && mapped?.[1] && isIPv4(mapped[1])) return specialPurposeRange(mapped[1]);
  const type = family === 4 ? 'ipv4' : 'ipv6';
  for (const { list, what } of SPECIAL_LISTS) if (list.check(address, type)) return what;
  return null;
}

/** May a request to the allowed name `name` connect to `address`, one of its DNS answers? */
export function checkResolvedAddress(allow: NetAllow, name: string, address: string): AddressCheck {
  if (isIP(address) === 0) return { ok: false, reason: `${name} resolved to "${address}", which is not an address` };
  if (covered(allow, address)) return { ok: true };
  const special = specialPurposeRange(address);
  if (special === null) return { ok: true };
  return { ok: false, reason: `${name} resolves to ${address}, a ${special} address that http.allow does not cover` };
}
