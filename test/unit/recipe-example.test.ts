// The shipped countersign.example.yml stays valid with its recipe (and its hooks commented out).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { resolveArguments } from '../../src/domain/recipe.js';

it('countersign.example.yml parses, and its recipe takes a service and a mode', () => {
  const dir = mkdtempSync(join(tmpdir(), 'countersign-example-'));
  try {
    const key = join(dir, 'id_ed25519');
    writeFileSync(key, '-----BEGIN OPENSSH PRIVATE KEY-----\nnot used\n-----END OPENSSH PRIVATE KEY-----\n');
    const text = readFileSync(new URL('../../countersign.example.yml', import.meta.url), 'utf8').replace('/etc/countersign/id_ed25519', key);
    const recipe = parseConfig(text, join(dir, 'countersign.yml'), {}).recipes?.get('restart-service');
    expect(recipe).toBeDefined();
    expect(resolveArguments(recipe!, { service: 'nginx' })).toEqual({
      ok: true,
      values: [
        { name: 'environment', kind: 'fixed', value: 'production' },
        { name: 'service', kind: 'input', value: 'nginx' },
        { name: 'mode', kind: 'options', value: 'graceful' },
      ],
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
