import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import { API_DOC, renderApiDocs } from '../../scripts/gen-api-docs';

describe('API reference', () => {
  it('docs/API.md is generated from the current proto (run `make docs` after changing it)', () => {
    assert.equal(fs.readFileSync(API_DOC, 'utf8'), renderApiDocs());
  });

  it('documents every RPC', () => {
    const doc = renderApiDocs();
    for (const row of doc
      .split('\n')
      .filter((l) => /^\| [A-Z]\w+ \| .*stream|^\| [A-Z]\w+ \| [A-Z]/.test(l))) {
      assert.doesNotMatch(row, /\|\s*\|$/, `undocumented: ${row}`);
    }
  });
});
