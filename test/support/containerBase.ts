/**
 * A local stand-in for node:20-bookworm-slim, for building the Dockerfile where image registries
 * are unreachable (shared/facts.md, "Containers"): Debian bookworm from Debian's own packages
 * (`debootstrap --variant=minbase`), with the Node.js that runs these tests copied in where the
 * official image has it (/usr/local/bin/node, npm under /usr/local/lib/node_modules). Built once
 * and kept in podman's store under a tag naming the Node version, so later runs reuse it.
 *
 * Where this machine reaches the npm registry through a TLS-inspecting proxy, npm here trusts the
 * proxy's CA (npm's `cafile`); the base gets the same bundle and setting, as a company's base
 * images carry the company's CA. The Dockerfile itself assumes nothing about it.
 */
import { execFile, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const BASE_IMAGE = `localhost/countersign-test-base:bookworm-node${process.versions.node}`;
const MIRROR = 'http://deb.debian.org/debian';

/** podman, or a clear error saying how to get it. */
export function requirePodman(): void {
  for (const tool of ['podman', 'debootstrap']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
      throw new Error(`${tool} is not installed: apt-get install -y podman debootstrap, or run .ci/run`);
    }
  }
}

export function imageExists(tag: string): boolean {
  return spawnSync('podman', ['image', 'exists', tag]).status === 0;
}

/** The base image's tag, building it first when podman does not have it yet (about a minute). */
export async function ensureBaseImage(log: (line: string) => void = () => undefined): Promise<string> {
  requirePodman();
  if (imageExists(BASE_IMAGE)) return BASE_IMAGE;
  const root = mkdtempSync(join(tmpdir(), 'countersign-rootfs-'));
  try {
    log(`debootstrap bookworm into ${root}`);
    await run('debootstrap', ['--variant=minbase', 'bookworm', root, MIRROR], { maxBuffer: 64 * 1024 * 1024 });
    // Downloaded .debs are not part of an image.
    const archives = join(root, 'var/cache/apt/archives');
    for (const name of readdirSync(archives)) if (name.endsWith('.deb')) rmSync(join(archives, name));
    // Node and npm where the official node images keep them.
    const prefix = dirname(dirname(process.execPath));
    const npm = join(prefix, 'lib/node_modules/npm');
    if (!existsSync(npm)) throw new Error(`npm not found at ${npm} (next to ${process.execPath})`);
    mkdirSync(join(root, 'usr/local/bin'), { recursive: true });
    mkdirSync(join(root, 'usr/local/lib/node_modules'), { recursive: true });
    cpSync(process.execPath, join(root, 'usr/local/bin/node'));
    cpSync(npm, join(root, 'usr/local/lib/node_modules/npm'), { recursive: true });
    symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', join(root, 'usr/local/bin/npm'));
    symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', join(root, 'usr/local/bin/npx'));
    const cafile = (await run('npm', ['config', 'get', 'cafile'])).stdout.trim();
    if (cafile !== '' && cafile !== 'null' && cafile !== 'undefined' && existsSync(cafile)) {
      mkdirSync(join(root, dirname(cafile)), { recursive: true });
      cpSync(cafile, join(root, cafile));
      mkdirSync(join(root, 'usr/local/etc'), { recursive: true });
      writeFileSync(join(root, 'usr/local/etc/npmrc'), `cafile=${cafile}\n`);
    }
    log(`podman import -> ${BASE_IMAGE}`);
    await run('sh', [
      '-c',
      `tar -C "$1" -c . | podman import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'CMD ["node"]' - "$2"`,
      'import',
      root,
      BASE_IMAGE,
    ]);
    return BASE_IMAGE;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
