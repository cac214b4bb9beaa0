import { strict as assert } from 'node:assert';
import * as http2 from 'node:http2';
import { BARE_ECHO_SERVICE, BareEchoClient, bareEchoHandlers } from '../../../lib/rpc/bare-echo';
import { FLOW_CONTROL_WINDOW_BYTES, RunningServer, startGrpcServer } from '../../../lib/rpc/grpc-server';

describe('gRPC servers: the HTTP/2 receive window', () => {
  let running: RunningServer;

  before(async () => {
    running = await startGrpcServer({
      host: '127.0.0.1',
      services: [{ definition: BARE_ECHO_SERVICE, implementation: bareEchoHandlers() }],
    });
  });

  after(() => running.shutdown(1000));

  it('grants the wide window per stream and per connection, not the 64 KiB default', async () => {
    const session = http2.connect(`http://127.0.0.1:${running.port}`);
    try {
      const settings = await new Promise<http2.Settings>((resolve, reject) => {
        session.once('remoteSettings', resolve);
        session.once('error', reject);
      });
      assert.equal(settings.initialWindowSize, FLOW_CONTROL_WINDOW_BYTES);
      // The connection window arrives as a WINDOW_UPDATE after the settings: a ping's answer
      // comes after it.
      await new Promise<void>((resolve, reject) => session.ping((err) => (err ? reject(err) : resolve())));
      assert.ok(
        (session.state.remoteWindowSize ?? 0) >= FLOW_CONTROL_WINDOW_BYTES - 65_535,
        `connection window ${session.state.remoteWindowSize}`,
      );
    } finally {
      session.close();
    }
  });

  it('carries a 3 MB message both ways with the wide windows', async () => {
    const client = new BareEchoClient(`127.0.0.1:${running.port}`);
    try {
      const reply = await client.call(client.request(3_000_000, 3_000_000));
      assert.equal(reply.length, 3_000_000);
    } finally {
      client.close();
    }
  });
});
