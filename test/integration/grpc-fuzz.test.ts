/**
 * The gRPC services fed malformed and oversized messages and odd metadata (seeded, bounded) on a
 * real local cluster: a gateway (Inspector, BankAdmin) and a shard (BankShard) as processes. Raw
 * bytes go out through a grpc-js client with an identity serializer: mutants of valid requests,
 * random bytes, messages over the size limit. Every call must end in a clean status (a code the
 * API documents; grpc-js' own INTERNAL for bytes that are not protobuf), never an unexpected
 * server error or UNKNOWN, and both processes must serve normally afterwards.
 */
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { LocalCluster, startLocalCluster } from '../../services/local/cluster';
import { serviceDefinition } from '../../lib/rpc/proto';
import { printDataset, upload } from '../helpers/fixtures';
import { mutator } from '../helpers/mutate';

const SEED = 1919;
const MUTANTS_PER_METHOD = 30;
const LIMIT_MB = 1;

type Service = 'Inspector' | 'BankAdmin' | 'BankShard';
/** Valid request(s) of each method, mutated below; destructive ones name banks that do not exist. */
type Samples = Record<string, unknown[]>;

const { status } = grpc;
/** Codes a malformed request may end in. INTERNAL only as grpc-js' "Error deserializing request". */
const CLEAN = new Set([
  status.OK,
  status.INVALID_ARGUMENT,
  status.NOT_FOUND,
  status.ALREADY_EXISTS,
  status.RESOURCE_EXHAUSTED,
  status.FAILED_PRECONDITION,
  status.OUT_OF_RANGE,
  status.DATA_LOSS,
  status.UNAUTHENTICATED,
  status.PERMISSION_DENIED,
]);

interface Outcome {
  code: grpc.status;
  details: string;
}

function isClean(o: Outcome): boolean {
  if (CLEAN.has(o.code)) return true;
  return o.code === status.INTERNAL && /^Error deserializing request/.test(o.details);
}

const raw = (b: Buffer) => b;

/** One call of `method` with raw request bytes, ending in its status (streams: every message sent). */
function call(
  client: grpc.Client,
  def: grpc.MethodDefinition<unknown, unknown>,
  messages: Buffer[],
  metadata = new grpc.Metadata(),
): Promise<Outcome> {
  const options = { deadline: Date.now() + 20_000 };
  return new Promise((resolve) => {
    const done = (err: grpc.ServiceError | null) =>
      resolve({ code: err ? err.code : status.OK, details: err ? err.details : '' });
    if (!def.requestStream && !def.responseStream) {
      client.makeUnaryRequest(def.path, raw, raw, messages[0] ?? Buffer.alloc(0), metadata, options, done);
      return;
    }
    if (!def.requestStream) {
      const reader = client.makeServerStreamRequest(
        def.path,
        raw,
        raw,
        messages[0] ?? Buffer.alloc(0),
        metadata,
        options,
      );
      reader.on('data', () => {});
      reader.on('error', () => {});
      reader.on('status', (s: grpc.StatusObject) => resolve({ code: s.code, details: s.details }));
      return;
    }
    let stream: grpc.ClientWritableStream<Buffer> | grpc.ClientDuplexStream<Buffer, Buffer>;
    if (!def.responseStream)
      stream = client.makeClientStreamRequest(def.path, raw, raw, metadata, options, done);
    else {
      const duplex = client.makeBidiStreamRequest(def.path, raw, raw, metadata, options);
      duplex.on('data', () => {});
      duplex.on('error', () => {});
      duplex.on('status', (s: grpc.StatusObject) => resolve({ code: s.code, details: s.details }));
      stream = duplex;
    }
    for (const m of messages) stream.write(m);
    stream.end();
  });
}

describe('fuzz: gRPC services with malformed and oversized messages and odd metadata', function () {
  this.timeout(240_000);
  let cluster: LocalCluster;
  const clients = new Map<Service, grpc.Client>();
  const samples = new Map<Service, Samples>();

  before(async () => {
    const data = await printDataset();
    const args = ['--max-message-mb', String(LIMIT_MB)];
    cluster = await startLocalCluster({ shards: 1, gatewayArgs: args, shardArgs: args });
    const admin = cluster.client({ deadlineMs: 60_000 });
    await admin.createBank({ bank: 'fuzz', partitions: 1, replicas: 1 }, upload(data.train.slice(0, 4)));
    const ready = await cluster.shards[0].waitForLine('shard ready');
    const shardAddress = `127.0.0.1:${Number(ready.fields.port)}`;
    for (const service of ['Inspector', 'BankAdmin', 'BankShard'] as const)
      clients.set(
        service,
        new grpc.Client(
          service === 'BankShard' ? shardAddress : cluster.gatewayAddress,
          grpc.credentials.createInsecure(),
          {
            'grpc.max_send_message_length': -1,
          },
        ),
      );
    const image = fs.readFileSync(data.testDefective[0]);
    const vectors = Buffer.from(new Float32Array(2 * 4).fill(0.5).buffer);
    samples.set('Inspector', {
      Inspect: [{ bank: 'fuzz', image, requestId: 'fuzz-1', returnMap: true }],
      ReportFalseAlarm: [{ bank: 'fuzz', version: 1, requestId: 'fuzz-1', image, note: 'good' }],
      InspectStream: [
        { bank: 'fuzz', image },
        { bank: 'fuzz', image, threshold: 1 },
      ],
    });
    samples.set('BankAdmin', {
      CreateBank: [
        { spec: { bank: 'fuzz-new', partitions: 1, replicas: 1 } },
        { image: { name: 'a.png', data: image } },
      ],
      RotateBank: [{ spec: { bank: 'fuzz-new' } }, { image: { name: 'a.png', data: image } }],
      ListBanks: [{}],
      GetBank: [{ bank: 'fuzz' }],
      ActivateVersion: [{ bank: 'nobank', version: 1 }],
      DeleteBank: [{ bank: 'nobank', version: 0 }],
    });
    samples.set('BankShard', {
      Search: [
        {
          partition: { bank: 'fuzz', version: 1, partition: 0 },
          queries: Buffer.alloc(96 * 4 * 3),
          dim: 96,
          k: 1,
        },
      ],
      LoadPartition: [
        {
          header: {
            partition: { bank: 'fuzz-load', version: 1, partition: 0 },
            dim: 4,
            rows: 2,
            rowOffset: 0,
            index: 'Flat',
            sha256: createHash('sha256').update(vectors).digest('hex'),
          },
        },
        { chunk: vectors },
      ],
      DropPartition: [{ bank: 'nobank', version: 1, partition: 0 }],
      ListPartitions: [{}],
      ReadPartition: [{ bank: 'fuzz', version: 1, partition: 0 }],
    });
    admin.close();
  });

  after(async () => {
    for (const c of clients.values()) c.close();
    await cluster?.stop();
  });

  /** Each method of a service with its definition, its samples serialized. */
  function methods(service: Service) {
    const def = serviceDefinition(service);
    return Object.entries(samples.get(service)!).map(([name, messages]) => {
      const method = def[name] as grpc.MethodDefinition<unknown, unknown>;
      assert.ok(method, `${service}.${name}`);
      return { name: `${service}.${name}`, method, valid: messages.map((m) => method.requestSerialize(m)) };
    });
  }

  async function expectAlive(): Promise<void> {
    assert.ok(cluster.gateway.running, `gateway exited\n${cluster.gateway.tail()}`);
    assert.ok(cluster.shards[0].running, `shard exited\n${cluster.shards[0].tail()}`);
    const client = cluster.client({ deadlineMs: 20_000, retries: 0 });
    try {
      const data = await printDataset();
      const res = await client.inspect({ bank: 'fuzz', image: fs.readFileSync(data.testGood[0]) });
      assert.equal(res.version, 1);
    } finally {
      client.close();
    }
  }

  for (const service of ['Inspector', 'BankAdmin', 'BankShard'] as const)
    it(`${service}: mutants of valid requests, random bytes and oversized messages end in a clean status`, async () => {
      const { mutate, random } = mutator(SEED + service.length);
      const client = clients.get(service)!;
      const unclean: string[] = [];
      const codes = new Map<string, number>();
      for (const { name, method, valid } of methods(service)) {
        const cases: [string, Buffer[]][] = [
          ['valid', valid],
          ['empty', valid.map(() => Buffer.alloc(0))],
          [
            'random',
            valid.map(() =>
              Buffer.from(
                Array.from({ length: 1 + Math.floor(random() * 512) }, () => Math.floor(random() * 256)),
              ),
            ),
          ],
          ['oversized', [Buffer.concat([valid[0], Buffer.alloc(LIMIT_MB * 1024 * 1024 + 1024, 0x41)])]],
          // A length-delimited field that claims far more bytes than follow.
          ['lying length', [Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x41])]],
        ];
        for (let i = 0; i < MUTANTS_PER_METHOD; i++)
          cases.push([`mutant ${i}`, valid.map((v, j) => (j === 0 || random() < 0.5 ? mutate(v).bytes : v))]);
        for (const [label, messages] of cases) {
          const outcome = await call(client, method, messages);
          const key = `${status[outcome.code]}`;
          codes.set(key, (codes.get(key) ?? 0) + 1);
          if (!isClean(outcome))
            unclean.push(`${name} ${label} (seed ${SEED}): ${status[outcome.code]} ${outcome.details}`);
          if (label === 'oversized')
            assert.equal(outcome.code, status.RESOURCE_EXHAUSTED, `${name} oversized: ${outcome.details}`);
        }
      }
      assert.deepEqual(unclean, [], JSON.stringify([...codes]));
      await expectAlive();
    });

  it('odd metadata: huge, many, binary and bogus values end in a clean status', async () => {
    const client = clients.get('Inspector')!;
    const { method, valid } = methods('Inspector')[0];
    const md = (entries: [string, string | Buffer][]) => {
      const m = new grpc.Metadata();
      for (const [k, v] of entries) m.add(k, v);
      return m;
    };
    const cases: [string, grpc.Metadata, grpc.status[]][] = [
      ['a request id of 8 KiB', md([['x-request-id', 'r'.repeat(8192)]]), [status.OK]],
      ['a request id with spaces', md([['x-request-id', 'a b c']]), [status.OK]],
      [
        'two request ids',
        md([
          ['x-request-id', 'one'],
          ['x-request-id', 'two'],
        ]),
        [status.OK],
      ],
      [
        'binary junk',
        md([['x-junk-bin', Buffer.from(Array.from({ length: 4096 }, (_, i) => i & 0xff))]]),
        [status.OK],
      ],
      // Past Node's HTTP/2 limit of 128 header pairs: refused by the transport (ENHANCE_YOUR_CALM).
      [
        '200 headers',
        md(Array.from({ length: 200 }, (_, i) => [`x-h${i}`, 'v'] as [string, string])),
        [status.RESOURCE_EXHAUSTED],
      ],
      ['64 KiB of metadata', md([['x-big', 'b'.repeat(64 * 1024)]]), [status.OK]],
      // Past HTTP/2's header limits: the server's transport resets the stream (the client reports
      // INTERNAL "Received RST_STREAM"); no handler runs.
      [
        '1 MiB of metadata',
        md([['x-big', 'b'.repeat(1024 * 1024)]]),
        [status.RESOURCE_EXHAUSTED, status.INTERNAL],
      ],
      ['a bogus bearer token', md([['authorization', 'Bearer ' + 'A'.repeat(5000)]]), [status.OK]],
      ['a non-bearer authorization', md([['authorization', 'Basic Zm9vOmJhcg==']]), [status.OK]],
    ];
    for (const [label, metadata, allowed] of cases) {
      const outcome = await call(client, method, valid, metadata);
      assert.ok(allowed.includes(outcome.code), `${label}: ${status[outcome.code]} ${outcome.details}`);
    }
    // A bogus token on the open loopback admin API: ignored, a normal answer.
    const list = methods('BankAdmin').find((m) => m.name === 'BankAdmin.ListBanks')!;
    const listed = await call(
      clients.get('BankAdmin')!,
      list.method,
      list.valid,
      md([['authorization', 'Bearer x']]),
    );
    assert.equal(listed.code, status.OK, listed.details);
    await expectAlive();
  });
});
