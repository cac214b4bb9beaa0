/**
 * A bare grpc-js unary method: raw bytes in, a reply of the asked size out, no protobuf and no
 * handler work. A shard serves it only with --bench-echo, so that `make bench` can time one Search
 * against a bare call of the same bytes between the same two processes: what the Search adds to
 * the transport itself.
 */
import * as grpc from '@grpc/grpc-js';
import { CLIENT_CHANNEL_OPTIONS, DEFAULT_MAX_MESSAGE_BYTES } from './grpc-server';

const PATH = '/spi.bench.BareEcho/Call';
const raw = (b: Buffer) => b;

export const BARE_ECHO_SERVICE: grpc.ServiceDefinition = {
  call: {
    path: PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: raw,
    requestDeserialize: raw,
    responseSerialize: raw,
    responseDeserialize: raw,
  },
};

/** The reply's size is the request's first 4 bytes (little-endian); the rest is payload. */
export function bareEchoHandlers(): grpc.UntypedServiceImplementation {
  const replies = new Map<number, Buffer>();
  return {
    call: (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) => {
      const size = call.request.length >= 4 ? call.request.readUInt32LE(0) : 0;
      if (size > DEFAULT_MAX_MESSAGE_BYTES)
        return done({ code: grpc.status.INVALID_ARGUMENT, details: `reply of ${size} bytes asked` });
      let reply = replies.get(size);
      if (!reply) replies.set(size, (reply = Buffer.alloc(size)));
      done(null, reply);
    },
  };
}

export class BareEchoClient {
  private readonly client: grpc.Client;

  constructor(address: string) {
    this.client = new grpc.Client(address, grpc.credentials.createInsecure(), CLIENT_CHANNEL_OPTIONS);
  }

  /** Sends `requestBytes` bytes and asks for `replyBytes` back. */
  request(requestBytes: number, replyBytes: number): Buffer {
    const request = Buffer.alloc(Math.max(4, requestBytes));
    request.writeUInt32LE(replyBytes, 0);
    return request;
  }

  call(request: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) =>
      this.client.makeUnaryRequest(PATH, raw, raw, request, (err, reply) =>
        err || !reply ? reject(err ?? new Error('no reply')) : resolve(reply),
      ),
    );
  }

  close(): void {
    this.client.close();
  }
}
