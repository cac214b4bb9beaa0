import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadBank, saveBank } from '../../../lib/bank/bank-store';
import { BankMeta, DEFAULT_SCORE } from '../../../lib/bank/bank-meta';
import { DEFAULT_CORESET } from '../../../lib/coreset/coreset';
import { DEFAULT_VIEW } from '../../../lib/image/views';

function meta(): Omit<BankMeta, 'vectors' | 'format'> {
  return {
    name: 'job-1',
    version: 1,
    createdAt: new Date(0).toISOString(),
    model: { id: 'm', stages: ['a'] },
    view: DEFAULT_VIEW,
    embedding: { dim: 4, projection: null },
    coreset: { ...DEFAULT_CORESET, inputPatches: 10, keptPatches: 3 },
    knn: { factory: 'Flat' },
    score: DEFAULT_SCORE,
    threshold: { value: 1.5, method: 'manual' },
    categories: ['x'],
    sources: [],
  };
}

describe('bank store', () => {
  let dir: string;
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spi-bank-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('round-trips vectors and metadata with a checksum', () => {
    const vectors = Float32Array.from({ length: 12 }, (_, i) => i / 3);
    const written = saveBank(path.join(dir, 'b'), meta(), vectors, 4);
    assert.equal(written.vectors.rows, 3);
    const loaded = loadBank(path.join(dir, 'b'));
    assert.deepEqual(Array.from(loaded.vectors), Array.from(vectors));
    assert.equal(loaded.meta.threshold.value, 1.5);
    assert.deepEqual(fs.readdirSync(dir), ['b']); // no temporary left behind
  });

  it('refuses a corrupted vector file', () => {
    saveBank(path.join(dir, 'b'), meta(), new Float32Array(8), 4);
    fs.writeFileSync(path.join(dir, 'b', 'vectors.f32'), Buffer.alloc(32, 1));
    assert.throws(() => loadBank(path.join(dir, 'b')), /checksum/);
  });

  it('says clearly when there is no bank', () => {
    assert.throws(() => loadBank(path.join(dir, 'none')), /no bank at/);
  });
});
