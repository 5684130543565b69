/**
 * `npm run schema`: writes countersign.schema.json (the JSON Schema of countersign.yml) from the
 * config's zod schema. `npm run schema -- --check` only compares, and exits 1 when the committed
 * file is stale (test/unit/jsonSchema.test.ts does the same).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configJsonSchemaText } from '../config/jsonSchema.js';

export const SCHEMA_FILE = fileURLToPath(new URL('../../countersign.schema.json', import.meta.url));

function main(): void {
  const text = configJsonSchemaText();
  if (process.argv.includes('--check')) {
    let committed = '';
    try {
      committed = readFileSync(SCHEMA_FILE, 'utf8');
    } catch {
      // missing: stale
    }
    if (committed !== text) {
      process.stderr.write(`${SCHEMA_FILE} is not what the config schema generates: run npm run schema and commit it\n`);
      process.exit(1);
    }
    process.stdout.write(`${SCHEMA_FILE} is up to date\n`);
    return;
  }
  writeFileSync(SCHEMA_FILE, text);
  process.stdout.write(`wrote ${SCHEMA_FILE}\n`);
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) main();
