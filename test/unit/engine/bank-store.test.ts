import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadBank, saveBank } from '../../../lib/bank/bank-store';
import { testBankMeta } from '../../helpers/bank-meta';

const meta = () => testBankMeta(4);

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
