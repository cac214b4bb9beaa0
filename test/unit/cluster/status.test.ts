import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { SpiError } from '../../../lib/errors';
import { fromServiceError, toServiceError } from '../../../lib/rpc/status';
import { float32View, int32View } from '../../../lib/cluster/bytes';

describe('lib/rpc/status: SpiError <-> gRPC status', () => {
  it('maps each kind to its code and back', () => {
    for (const [kind, code] of [
      ['INVALID_ARGUMENT', grpc.status.INVALID_ARGUMENT],
      ['NOT_FOUND', grpc.status.NOT_FOUND],
      ['FAILED_PRECONDITION', grpc.status.FAILED_PRECONDITION],
      ['DATA_LOSS', grpc.status.DATA_LOSS],
      ['UNAVAILABLE', grpc.status.UNAVAILABLE],
      ['UNAUTHENTICATED', grpc.status.UNAUTHENTICATED],
      ['PERMISSION_DENIED', grpc.status.PERMISSION_DENIED],
    ] as const) {
      const s = toServiceError(new SpiError(kind, `m ${kind}`));
      assert.equal(s.code, code);
      assert.equal(s.details, `m ${kind}`);
      const err = Object.assign(new Error('x'), {
        code,
        details: `m ${kind}`,
        metadata: new grpc.Metadata(),
      });
      const back = fromServiceError(err);
      assert.equal(back.kind, kind);
      assert.equal(back.message, `m ${kind}`);
    }
  });

  it('hides unexpected errors behind INTERNAL with a log reference', () => {
    const log = { debug() {}, info() {}, warn() {}, error() {}, child: () => log };
    const s = toServiceError(new TypeError('secret detail'), log);
    assert.equal(s.code, grpc.status.INTERNAL);
    assert.match(s.details ?? '', /^internal error \(server log reference [0-9a-f]{8}\)$/);
  });
});

describe('cluster/bytes: typed views over protobuf bytes', () => {
  it('shares aligned bytes and copies unaligned ones', () => {
    const backing = Buffer.alloc(20);
    new Float32Array(backing.buffer, backing.byteOffset, 5).set([1, 2, 3, 4, 5]);
    const aligned = backing.subarray(4, 12);
    const v = float32View(aligned);
    assert.deepEqual([...v], [2, 3]);
    assert.equal(v.buffer, backing.buffer);
    const odd = Buffer.alloc(9);
    backing.copy(odd, 1, 4, 12);
    const u = float32View(odd.subarray(1));
    assert.deepEqual([...u], [2, 3]);
    assert.notEqual(u.buffer, odd.buffer);
    assert.throws(() => int32View(Buffer.alloc(6)), /multiple of 4/);
  });
});
