/**
 * A call the gateway refuses at its metadata must not upload its image: the refused calls' bytes
 * would otherwise share the connection with the calls let in and delay them (issue #19's burst).
 * Real grpc-js server and client on loopback, the gateway's own admission interceptor, and a TCP
 * relay between them that counts what the client really sends.
 */
import { strict as assert } from 'node:assert';
import * as net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { Admission } from '../../services/gateway/admission';
import { admissionInterceptor } from '../../services/gateway/admission-interceptor';

const PAYLOAD = 256 * 1024;
const CALLS = 40;

const passThrough = (b: Buffer) => b;
/** A service at the Inspect path, so the interceptor treats its calls as inspections. */
const SERVICE: grpc.ServiceDefinition = {
  Inspect: {
    path: '/spi.v1.Inspector/Inspect',
    requestStream: false,
    responseStream: false,
    requestSerialize: passThrough,
    requestDeserialize: passThrough,
    responseSerialize: passThrough,
    responseDeserialize: passThrough,
  },
};

/** Relays localhost:<port> to `target`, counting the bytes the client sends. */
async function countingRelay(
  target: number,
): Promise<{ port: number; sent: () => number; close: () => void }> {
  let sent = 0;
  const sockets = new Set<net.Socket>();
  const relay = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => s.destroy());
    }
    client.on('data', (d: Buffer) => (sent += d.length));
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  return {
    port: (relay.address() as net.AddressInfo).port,
    sent: () => sent,
    close: () => {
      for (const s of sockets) s.destroy();
      relay.close();
    },
  };
}

describe('refused inspections are not uploaded', () => {
  it('a burst past the bounds is refused at its metadata, its images are not sent, and the rest are answered', async () => {
    const admission = new Admission({ maxInFlight: 2, maxQueue: 2 });
    const server = new grpc.Server({
      interceptors: [admissionInterceptor(admission)],
      'grpc.max_receive_message_length': 8 << 20,
    });
    server.addService(SERVICE, {
      Inspect: (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) => {
        admission
          .run(undefined, () => new Promise((r) => setTimeout(r, 20)))
          .then(
            () => done(null, Buffer.from([call.request.length % 251])),
            (err: Error) => done({ code: grpc.status.RESOURCE_EXHAUSTED, details: err.message }),
          );
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    const relay = await countingRelay(port);
    const Client = grpc.makeGenericClientConstructor(SERVICE, 'Inspector');
    const client = new Client(`127.0.0.1:${relay.port}`, grpc.credentials.createInsecure(), {
      'grpc.max_send_message_length': 8 << 20,
    });
    const inspect = (payload: Buffer) =>
      new Promise<{ code: number; details?: string }>((resolve) =>
        client.makeUnaryRequest(
          SERVICE.Inspect.path,
          passThrough,
          passThrough,
          payload,
          { deadline: Date.now() + 20_000 },
          (err) => resolve(err ? { code: err.code, details: err.details } : { code: grpc.status.OK }),
        ),
      );
    try {
      assert.equal((await inspect(Buffer.alloc(16))).code, grpc.status.OK);
      const before = relay.sent();
      // All at once on one connection, as one overloaded line controller would send them.
      const results = await Promise.all(
        Array.from({ length: CALLS }, (_, i) => inspect(Buffer.alloc(PAYLOAD, i))),
      );
      const answered = results.filter((r) => r.code === grpc.status.OK).length;
      const refused = results.filter((r) => r.code !== grpc.status.OK);
      assert.ok(
        answered >= 2 && refused.length >= CALLS / 2,
        `${answered} answered, ${refused.length} refused`,
      );
      for (const r of refused) {
        assert.equal(r.code, grpc.status.RESOURCE_EXHAUSTED, r.details);
        assert.match(r.details ?? '', /overloaded/);
      }
      // Without the stop the refused images cross in full, behind or between the answered ones.
      const refusedBytes = relay.sent() - before - answered * PAYLOAD;
      assert.ok(
        refusedBytes < 0.25 * refused.length * PAYLOAD,
        `${(refusedBytes / 2 ** 20).toFixed(1)} MiB sent for ${refused.length} refused calls of ${PAYLOAD / 1024} KiB`,
      );
      // The connection and the server go on: a call after the burst is answered.
      const after = await inspect(Buffer.alloc(PAYLOAD, 7));
      assert.equal(after.code, grpc.status.OK, after.details);
    } finally {
      client.close();
      relay.close();
      server.forceShutdown();
    }
  });
});
