import { strict as assert } from 'node:assert';
import * as grpc from '@grpc/grpc-js';
import { ClientOptions, InspectionClient } from '../../../lib/client/inspection-client';
import { retryDelayMs } from '../../../lib/client/retry';
import { RETRY_AFTER_KEY, toServiceError } from '../../../lib/rpc/status';
import { serviceDefinition } from '../../../lib/rpc/proto';
import { RunningServer, startGrpcServer } from '../../../lib/rpc/grpc-server';
import { SpiError } from '../../../lib/errors';
import { quietLog } from '../../helpers/quiet-log';

const hinted = (ms: number) => {
  const metadata = new grpc.Metadata();
  metadata.set(RETRY_AFTER_KEY, String(ms));
  return { code: grpc.status.RESOURCE_EXHAUSTED, metadata };
};

describe('client retries', () => {
  it('waits at least the server hint, jittered up to half again; UNAVAILABLE backs off; nothing else retries', () => {
    assert.equal(
      retryDelayMs(hinted(200), 0, () => 0),
      200,
    );
    assert.equal(
      retryDelayMs(hinted(200), 0, () => 1),
      300,
    );
    assert.equal(
      retryDelayMs(hinted(10), 3, () => 0),
      400,
      'the back-off when it is longer than the hint',
    );
    assert.equal(
      retryDelayMs({ code: grpc.status.UNAVAILABLE }, 0, () => 0),
      25,
    );
    assert.equal(
      retryDelayMs({ code: grpc.status.UNAVAILABLE }, 9, () => 1),
      750,
    );
    // An image over the pixel limit is RESOURCE_EXHAUSTED too, but final: no hint, no retry.
    assert.equal(
      retryDelayMs({ code: grpc.status.RESOURCE_EXHAUSTED, metadata: new grpc.Metadata() }, 0),
      undefined,
    );
    assert.equal(retryDelayMs({ code: grpc.status.INVALID_ARGUMENT }, 0), undefined);
  });

  describe('against a gateway that sheds (real loopback gRPC)', () => {
    let server: RunningServer;
    let refuseNext = 0;
    let hint = true;
    const calls: number[] = [];
    before(async () => {
      server = await startGrpcServer({
        host: '127.0.0.1',
        port: 0,
        log: quietLog,
        services: [
          {
            definition: serviceDefinition('Inspector'),
            implementation: {
              inspect: (
                call: grpc.ServerUnaryCall<{ bank: string }, unknown>,
                cb: grpc.sendUnaryData<unknown>,
              ) => {
                calls.push(Date.now());
                if (refuseNext-- > 0)
                  return cb(
                    toServiceError(
                      new SpiError('RESOURCE_EXHAUSTED', 'gateway overloaded', hint ? 80 : undefined),
                    ),
                  );
                cb(null, { bank: call.request.bank, version: 3 });
              },
            },
          },
        ],
      });
    });
    after(() => server.shutdown(0));
    beforeEach(() => {
      calls.length = 0;
      hint = true;
    });
    const client = (retries: number, onRetry?: ClientOptions['onRetry']) =>
      new InspectionClient(`127.0.0.1:${server.port}`, { retries, deadlineMs: 5000, onRetry });

    it('comes back after the retry-after-ms hint and gets its answer', async () => {
      refuseNext = 2;
      const retried: string[] = [];
      const c = client(3, (r) => retried.push(`${r.attempt} ${r.error.kind} ${r.delayMs >= 80}`));
      try {
        const res = await c.inspect({ bank: 'b', image: Buffer.from('x') });
        assert.equal(res.version, 3);
        assert.equal(calls.length, 3);
        assert.deepEqual(retried, ['1 RESOURCE_EXHAUSTED true', '2 RESOURCE_EXHAUSTED true']);
        for (let i = 1; i < calls.length; i++)
          assert.ok(calls[i] - calls[i - 1] >= 78, `attempt ${i} after ${calls[i] - calls[i - 1]} ms`);
      } finally {
        c.close();
      }
    });

    it('gives up after its retries with the refusal and its hint; a hintless RESOURCE_EXHAUSTED is final', async () => {
      const c = client(1);
      try {
        refuseNext = 5;
        await assert.rejects(c.inspect({ bank: 'b', image: Buffer.from('x') }), (err: SpiError) => {
          assert.equal(err.kind, 'RESOURCE_EXHAUSTED');
          assert.equal(err.retryAfterMs, 80);
          return true;
        });
        assert.equal(calls.length, 2);
        calls.length = 0;
        hint = false;
        refuseNext = 1;
        await assert.rejects(c.inspect({ bank: 'b', image: Buffer.from('x') }), /overloaded/);
        assert.equal(calls.length, 1);
      } finally {
        refuseNext = 0;
        c.close();
      }
    });

    it('does not retry past its deadline', async () => {
      refuseNext = 1;
      const c = client(3);
      try {
        await assert.rejects(c.inspect({ bank: 'b', image: Buffer.from('x') }, 50), /overloaded/);
        assert.equal(calls.length, 1);
      } finally {
        refuseNext = 0;
        c.close();
      }
    });
  });
});
