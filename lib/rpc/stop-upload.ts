/**
 * Stops a refused call's upload. A server that refuses a call as soon as its metadata is in sends a
 * trailers-only response, but the client goes on sending the request body: a refused Inspect's
 * image still crosses the wire in full and shares the connection's flow-control window with the
 * calls that were let in (measured: 300 concurrent 150 KB calls refused on one channel, 45 MB read
 * by the server; 1.2 MB with this). HTTP/2 lets a server that has sent a complete response ask the
 * client to stop with RST_STREAM NO_ERROR (RFC 9113 section 8.1); grpc-js has no API for it, so
 * the HTTP/2 stream is taken from the innermost call of the interceptor chain. Where grpc-js lays
 * its calls out otherwise, nothing happens and the refusal stands as it is.
 */
import * as http2 from 'node:http2';
import type * as grpc from '@grpc/grpc-js';

interface ChainLink {
  nextCall?: ChainLink;
  stream?: http2.Http2Stream;
}

/** Call after sendStatus(). True when the client was asked to stop sending. */
export function stopUpload(call: grpc.ServerInterceptingCallInterface): boolean {
  let link = call as unknown as ChainLink | undefined;
  for (let depth = 0; link && !link.stream && depth < 32; depth++) link = link.nextCall;
  const stream = link?.stream;
  if (!stream || typeof stream.close !== 'function' || stream.closed || stream.destroyed) return false;
  stream.close(http2.constants.NGHTTP2_NO_ERROR);
  return true;
}
