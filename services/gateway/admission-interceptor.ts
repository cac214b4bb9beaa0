/**
 * Admission of an Inspect as soon as its metadata is in: refused then, when the calls running,
 * queued and still arriving already fill the bounds, its image (often hundreds of KiB) is never
 * uploaded, read, parsed or held (see lib/rpc/stop-upload.ts), so a burst costs the gateway little
 * CPU and memory, and the calls let in do not wait behind the refused ones' bytes. A call let through
 * counts as arriving until its message is in; the handler's admission.run() takes it from there.
 */
import * as grpc from '@grpc/grpc-js';
import { toServiceError } from '../../lib/rpc/status';
import { stopUpload } from '../../lib/rpc/stop-upload';
import { Admission } from './admission';
import { markArrival } from './arrival';
import { deadlineOf } from './inspector-service';

const INSPECT = '/spi.v1.Inspector/Inspect';

export function admissionInterceptor(admission: Admission): grpc.ServerInterceptor {
  return (def, call) => {
    if (def.path !== INSPECT) return new grpc.ServerInterceptingCall(call);
    let arrived: (() => void) | undefined;
    return new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, nextMetadata) => {
            const client = call.getPeer();
            const refused = admission.refusal(deadlineOf(call), { early: true, client });
            if (!refused) {
              markArrival(metadata);
              arrived = admission.arrive(client);
              return nextMetadata(metadata);
            }
            const status = toServiceError(refused);
            call.sendStatus({
              code: status.code ?? grpc.status.RESOURCE_EXHAUSTED,
              details: status.details ?? '',
              metadata: status.metadata ?? new grpc.Metadata(),
            });
            // Nor is it uploaded: the client is asked to stop sending it.
            stopUpload(call);
          },
          // The image is in: from here the handler's admission.run() counts the call.
          onReceiveMessage: (message, nextMessage) => {
            arrived?.();
            nextMessage(message);
          },
          onCancel: () => arrived?.(),
        }),
      // Ended before its message came (too large, cancelled): it no longer counts either.
      sendStatus: (status, next) => {
        arrived?.();
        next(status);
      },
    });
  };
}
