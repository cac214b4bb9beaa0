import assert from 'node:assert/strict';
import { SpiError } from '../../../lib/errors';
import { fromFloat16, toFloat16 } from '../../../lib/util/float16';
import {
  WireQueries,
  shardQueries,
  encodingFor,
  encodingMsg,
  parseWireEncoding,
} from '../../../lib/cluster/vector-encoding';
import { keyLayout } from '../../../lib/cluster/keys';
import { viewFromKvs } from '../../../lib/cluster/view';
import { WatchedShardDirectory } from '../../../services/gateway/shard-directory';

const isInvalid = (re: RegExp) => (err: unknown) =>
  err instanceof SpiError && err.kind === 'INVALID_ARGUMENT' && re.test(err.message);

describe('query encoding on the shard hop', () => {
  it('sends float16 only to a shard that advertises it, and only when the gateway prefers it', () => {
    assert.equal(encodingFor(['f32', 'f16'], 'f16'), 'f16');
    assert.equal(encodingFor(undefined, 'f16'), 'f32', 'a shard of an earlier release lists nothing');
    assert.equal(encodingFor(['f32'], 'f16'), 'f32');
    assert.equal(encodingFor(['f32', 'f16'], 'f32'), 'f32', '--wire-encoding f32');
    assert.equal(encodingFor('f16' as unknown as string[], 'f16'), 'f32', 'a malformed record');
  });

  it('parses --wire-encoding (default f16)', () => {
    assert.equal(parseWireEncoding(undefined), 'f16');
    assert.equal(parseWireEncoding(''), 'f16');
    assert.equal(parseWireEncoding('f32'), 'f32');
    assert.throws(() => parseWireEncoding('fp16'), isInvalid(/f32 or f16/));
  });

  it('packs float16 in half the bytes, once, and the shard reads the halves as they came', () => {
    const vectors = Float32Array.from({ length: 96 * 3 }, (_, i) => Math.sin(i) * 7);
    const wire = new WireQueries(vectors);
    const f16 = wire.payload('f16');
    assert.equal(f16.encoding, 'f16');
    assert.equal(f16.bytes.byteLength, vectors.byteLength / 2);
    assert.equal(wire.payload('f16'), f16, 'packed once for every partition and replica');
    const halves = shardQueries(f16.bytes, encodingMsg('f16'));
    assert.ok(halves instanceof Uint16Array, 'widened by the search, natively');
    assert.deepEqual(fromFloat16(halves as Uint16Array), fromFloat16(toFloat16(vectors)));
    const f32 = wire.payload('f32');
    assert.equal(f32.encoding, 'f32');
    assert.deepEqual(shardQueries(f32.bytes, encodingMsg('f32')), vectors);
    assert.deepEqual(shardQueries(f32.bytes, undefined), vectors, 'an old gateway sets no encoding');
  });

  it('keeps float32 for queries a half cannot hold', () => {
    const vectors = new Float32Array([1, 2, 70000, 3]);
    const p = new WireQueries(vectors).payload('f16');
    assert.equal(p.encoding, 'f32');
    assert.deepEqual(shardQueries(p.bytes, encodingMsg(p.encoding)), vectors);
  });

  it('reads float16 at an odd byte offset, and refuses bad lengths and unknown encodings', () => {
    const halves = toFloat16(new Float32Array([1.5, -2, 0.25]));
    const odd = Buffer.alloc(halves.byteLength + 1);
    Buffer.from(halves.buffer).copy(odd, 1);
    assert.deepEqual(shardQueries(odd.subarray(1), 'VECTOR_ENCODING_FLOAT16'), halves);
    assert.throws(() => shardQueries(Buffer.alloc(3), 'VECTOR_ENCODING_FLOAT16'), isInvalid(/multiple of 2/));
    assert.throws(() => shardQueries(Buffer.alloc(4), 7), isInvalid(/encoding 7/));
  });

  it('the gateway directory picks per shard from its registration, as configured', () => {
    const k = keyLayout('/spi/');
    const shard = (id: string, extra: object) => ({
      key: k.shard(id),
      value: JSON.stringify({ id, address: `${id}:1`, startedAt: 't', ...extra }),
    });
    const view = viewFromKvs(
      '/spi/',
      [shard('new', { vectorEncodings: ['f32', 'f16'] }), shard('old', {})],
      1,
    );
    const f16 = new WatchedShardDirectory(() => view);
    assert.equal(f16.encodingOf('new'), 'f16');
    assert.equal(f16.encodingOf('old'), 'f32');
    assert.equal(f16.encodingOf('gone'), 'f32');
    const f32 = new WatchedShardDirectory(() => view, null, 'f32');
    assert.equal(f32.encodingOf('new'), 'f32');
  });
});
