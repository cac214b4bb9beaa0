/**
 * The layers of docs/ARCHITECTURE.md, checked on the import graph: `lib/` is the engine and never
 * reaches up into the processes (`services/`), the benchmarks (`bench/`) or the tests (`test/`);
 * `models/` never imports a service. Every import form counts (`import`, `import type`, `export ...
 * from`, `import()`, `require()`), read with the TypeScript compiler's own pre-processor.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';

const ROOT = path.resolve(__dirname, '../..');

/** Top-level folder -> the top-level folders its files must not import from. */
const FORBIDDEN: Record<string, readonly string[]> = {
  lib: ['services', 'bench', 'test'],
  models: ['services'],
};

const SOURCE = /\.(ts|cts|mts|js|cjs|mjs)$/;

/** Source files under `dir` (repository-relative, '/'-separated). */
function sourcesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of fs.readdirSync(path.join(ROOT, rel), { withFileTypes: true })) {
      const child = `${rel}/${e.name}`;
      if (e.isDirectory()) {
        if (e.name !== 'node_modules') walk(child);
      } else if (SOURCE.test(e.name) && !e.name.endsWith('.d.ts')) out.push(child);
    }
  };
  if (fs.existsSync(path.join(ROOT, dir))) walk(dir);
  return out.sort();
}

/**
 * The imports of one file (at repository-relative `file`) that cross a forbidden layer boundary,
 * as "file -> specifier (resolved path)".
 */
function violations(file: string, source: string): string[] {
  const from = file.split('/')[0];
  const forbidden = FORBIDDEN[from] ?? [];
  const out: string[] = [];
  for (const { fileName: spec } of ts.preProcessFile(source, true, true).importedFiles) {
    if (!spec.startsWith('.')) continue; // a package
    const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec));
    if (forbidden.includes(target.split('/')[0])) out.push(`${file} -> '${spec}' (${target})`);
  }
  return out;
}

describe('layers: lib/ never imports services/, bench/ or test/; models/ never imports services/', () => {
  it('finds the crossings it is meant to find', () => {
    const code = [
      "import { Logger } from '../../services/common/log';",
      "import type { X } from '../../bench/lib/x';",
      "export { y } from '../../test/helpers/fixtures';",
      "const z = require('../../services/shard/server');",
      "const w = import('../../services/gateway/gateway');",
      "import { SpiError } from '../errors';",
      "import * as grpc from '@grpc/grpc-js';",
    ].join('\n');
    assert.deepEqual(
      violations('lib/cluster/x.ts', code).map((v) => v.split(' -> ')[1]),
      [
        "'../../services/common/log' (services/common/log)",
        "'../../bench/lib/x' (bench/lib/x)",
        "'../../test/helpers/fixtures' (test/helpers/fixtures)",
        "'../../services/shard/server' (services/shard/server)",
        "'../../services/gateway/gateway' (services/gateway/gateway)",
      ],
    );
    assert.equal(violations('models/onnx/x.ts', "import { a } from '../../services/common/http';").length, 1);
    assert.deepEqual(violations('models/onnx/x.ts', "import { a } from '../../lib/errors';"), []);
    assert.deepEqual(violations('services/gateway/x.ts', "import { a } from '../../lib/rpc/proto';"), []);
  });

  for (const layer of Object.keys(FORBIDDEN)) {
    it(`no file under ${layer}/ imports from ${FORBIDDEN[layer].map((f) => `${f}/`).join(', ')}`, () => {
      const files = sourcesUnder(layer);
      assert.ok(files.length > 0, `no sources found under ${layer}/`);
      const found = files.flatMap((file) => violations(file, fs.readFileSync(path.join(ROOT, file), 'utf8')));
      if (found.length > 0)
        assert.fail(`imports across the layers (see docs/ARCHITECTURE.md):\n  ${found.join('\n  ')}`);
    });
  }
});
