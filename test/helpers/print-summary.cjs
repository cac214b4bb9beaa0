// Prints "N passed, N failed[, N skipped]" summed over the suites' stats files, and exits non-zero
// when anything failed or a suite did not report (a crash before mocha's end counts as a failure).
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const dir = process.argv[2];
const suites = ['unit.json', 'integration.json'];
let passed = 0;
let failed = 0;
let skipped = 0;
let missing = 0;
for (const name of suites) {
  const file = path.join(dir, name);
  if (!fs.existsSync(file)) {
    console.error(`suite ${name.replace('.json', '')} did not finish`);
    missing++;
    continue;
  }
  const s = JSON.parse(fs.readFileSync(file, 'utf8'));
  passed += s.passes;
  failed += s.failures;
  skipped += s.pending;
}
failed += missing;
const crashed = fs.existsSync(path.join(dir, 'failed'));
console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ''));
process.exit(failed > 0 || crashed ? 1 : 0);
