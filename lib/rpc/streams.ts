/**
 * Reading the incoming side of a gRPC duplex call with `for await`. A plain `for await (… of call)`
 * destroys the whole Duplex when the loop ends, so the answers written afterwards never leave;
 * `iterator({ destroyOnReturn: false })` keeps the sending side open.
 */
import { Readable } from 'node:stream';

export function incoming<T>(call: Readable): AsyncIterable<T> {
  return call.iterator({ destroyOnReturn: false }) as AsyncIterable<T>;
}
