import { strict as assert } from 'node:assert';
import { Admission, CLIENT_ACTIVE_MS, ShedReason } from '../../../services/gateway/admission';
import { SpiError } from '../../../lib/errors';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Work that finishes when told to, recording when it started. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return { open, work: () => opened };
}

/** Requests sent as named clients, each held until its gate opens; what started and was shed. */
function clients(admission: Admission) {
  const shed: ShedReason[] = [];
  admission.onShed((r) => shed.push(r));
  const started: string[] = [];
  const gates = new Map<string, ReturnType<typeof gate>>();
  const send = (client: string, name: string) => {
    const g = gate();
    gates.set(name, g);
    const run = admission.run(
      undefined,
      () => {
        started.push(name);
        return g.work();
      },
      undefined,
      client,
    );
    run.catch(() => undefined); // refusals are asserted where expected
    return run;
  };
  return { shed, started, gates, send };
}

const refusal = (kind: string, reason?: RegExp) => (err: unknown) => {
  assert.ok(err instanceof SpiError, String(err));
  assert.equal(err.kind, kind, err.message);
  if (reason) assert.match(err.message, reason);
  return true;
};

describe('gateway admission control', () => {
  it('runs at most max-in-flight at once, queues max-queue in order, refuses the rest with a retry hint', async () => {
    const admission = new Admission({ maxInFlight: 2, maxQueue: 2 });
    const shed: ShedReason[] = [];
    admission.onShed((r) => shed.push(r));
    const started: number[] = [];
    const gates = Array.from({ length: 4 }, gate);
    const runs = gates.map((g, i) =>
      admission.run(undefined, () => {
        started.push(i);
        return g.work();
      }),
    );
    await sleep(0);
    assert.deepEqual(started, [0, 1]);
    assert.deepEqual([admission.inFlight, admission.queued], [2, 2]);
    await assert.rejects(
      admission.run(undefined, () => Promise.resolve()),
      (err: SpiError) => {
        refusal(
          'RESOURCE_EXHAUSTED',
          /queue is full.*2 inspections running.*2 waiting.*retry after \d+ ms/,
        )(err);
        assert.equal(err.retryAfterMs, 100, 'no service time measured yet: the default hint');
        return true;
      },
    );
    assert.deepEqual(shed, ['queue_full']);
    gates[1].open();
    await runs[1];
    await sleep(0);
    assert.deepEqual(started, [0, 1, 2], 'the first queued one takes the free slot');
    for (const g of gates) g.open();
    await Promise.all(runs);
    assert.deepEqual([admission.inFlight, admission.queued], [0, 0]);
    assert.ok(admission.serviceEstimateMs! >= 0);
  });

  it('hints how long the queue takes to drain, from the measured service time', async () => {
    const admission = new Admission({ maxInFlight: 1, maxQueue: 1 });
    await admission.run(undefined, () => sleep(40));
    const g = gate();
    const running = admission.run(undefined, g.work);
    const queued = admission.run(undefined, () => Promise.resolve());
    await assert.rejects(admission.run(undefined, g.work), (err: SpiError) => {
      // One queued ahead plus this one, 40 ms each on one slot.
      assert.ok(err.retryAfterMs! >= 70 && err.retryAfterMs! <= 100, String(err.retryAfterMs));
      return true;
    });
    g.open();
    await Promise.all([running, queued]);
  });

  it('drops a request whose deadline cannot be met before starting it, and a queued one at its latest start', async () => {
    const admission = new Admission({ maxInFlight: 1, maxQueue: 4 });
    const shed: ShedReason[] = [];
    admission.onShed((r) => shed.push(r));
    await admission.run(undefined, () => sleep(50));
    let ran = false;
    const work = async () => {
      ran = true;
    };
    // Shorter than one inspection takes: no queue to blame.
    await assert.rejects(admission.run(Date.now() + 20, work), refusal('DEADLINE_EXCEEDED', /shorter than/));
    const g = gate();
    const busy = admission.run(undefined, g.work);
    // Behind a running one and a queue: an overload, worth retrying elsewhere.
    await assert.rejects(admission.run(Date.now() + 70, work), refusal('RESOURCE_EXHAUSTED', /deadline/));
    // Fits when queued, but the slot stays taken past its latest start.
    const t0 = Date.now();
    await assert.rejects(admission.run(Date.now() + 160, work), refusal('RESOURCE_EXHAUSTED', /deadline/));
    const waited = Date.now() - t0;
    assert.ok(waited >= 90 && waited < 160, `dropped after ${waited} ms`);
    assert.equal(ran, false);
    assert.equal(admission.queued, 0);
    assert.deepEqual(shed, ['deadline', 'deadline', 'deadline']);
    g.open();
    await busy;
  });

  it('takes a cancelled caller out of the queue; a failure frees its slot without moving the estimate', async () => {
    const admission = new Admission({ maxInFlight: 1, maxQueue: 1 });
    const g = gate();
    const busy = admission.run(undefined, g.work);
    const cancel = new AbortController();
    const queued = admission.run(undefined, () => Promise.resolve(), cancel.signal);
    cancel.abort();
    await assert.rejects(queued, refusal('UNAVAILABLE', /cancelled/));
    assert.equal(admission.queued, 0);
    g.open();
    await busy;
    const estimate = admission.serviceEstimateMs;
    await assert.rejects(
      admission.run(undefined, () => Promise.reject(new Error('corrupt image'))),
      /corrupt image/,
    );
    assert.equal(admission.inFlight, 0);
    assert.equal(admission.serviceEstimateMs, estimate);
  });

  it('counts calls still arriving when asked early, so a burst is refused before its images are read', () => {
    const admission = new Admission({ maxInFlight: 2, maxQueue: 1 });
    const shed: ShedReason[] = [];
    admission.onShed((r) => shed.push(r));
    const arrivals = Array.from({ length: 3 }, () => {
      assert.equal(admission.refusal(undefined, { early: true }), undefined);
      return admission.arrive();
    });
    assert.equal(admission.refusal(undefined, { early: true })?.kind, 'RESOURCE_EXHAUSTED');
    // With its message in, a call is not refused for the ones that arrived after it.
    arrivals[0]();
    assert.equal(admission.refusal(undefined), undefined);
    arrivals[0](); // once only
    arrivals[1]();
    arrivals[2]();
    assert.equal(admission.refusal(undefined, { early: true }), undefined);
    assert.deepEqual(shed, ['queue_full']);
  });

  describe('fair share between clients (connections)', () => {
    it('gives a second client the place of the busiest one in a full queue, and the next free slot', async () => {
      const admission = new Admission({ maxInFlight: 2, maxQueue: 2 });
      const { shed, started, gates, send } = clients(admission);
      // The overloader fills both slots and the queue.
      const a = ['a1', 'a2', 'a3', 'a4'].map((n) => send('overloader', n));
      await sleep(0);
      assert.deepEqual(started, ['a1', 'a2']);
      // Its fifth is refused as before: one client alone is not refused for fairness.
      await assert.rejects(send('overloader', 'a5'), refusal('RESOURCE_EXHAUSTED', /queue is full/));
      // A line controller arrives: the overloader's newest queued request gives up its place.
      const b = send('line', 'b1');
      await assert.rejects(a[3], refusal('RESOURCE_EXHAUSTED', /went to a client with fewer requests/));
      assert.deepEqual([admission.inFlight, admission.queued], [2, 2]);
      // The next free slot goes to the line controller (no running request) before the older a3.
      gates.get('a1')!.open();
      await a[0];
      await sleep(0);
      assert.deepEqual(started, ['a1', 'a2', 'b1']);
      assert.deepEqual(shed, ['queue_full', 'fair_share']);
      for (const g of gates.values()) g.open();
      await Promise.all([a[1], a[2], b]);
      assert.deepEqual([admission.inFlight, admission.queued], [0, 0]);
    });

    it('does not take a place from a client only one request ahead', async () => {
      const admission = new Admission({ maxInFlight: 1, maxQueue: 2 });
      const g = gate();
      const runs = [
        admission.run(undefined, g.work, undefined, 'x'),
        admission.run(undefined, g.work, undefined, 'x'),
        admission.run(undefined, g.work, undefined, 'y'),
      ];
      await sleep(0);
      // x holds 2, y would hold 2 with this one: no displacement, a plain refusal.
      await assert.rejects(
        admission.run(undefined, g.work, undefined, 'y'),
        refusal('RESOURCE_EXHAUSTED', /queue is full/),
      );
      g.open();
      await Promise.all(runs);
    });

    it("counts a client's calls still arriving when it asks early", () => {
      const admission = new Admission({ maxInFlight: 1, maxQueue: 1 });
      const arrivals = ['x', 'y'].map((client) => {
        assert.equal(admission.refusal(undefined, { early: true, client }), undefined);
        return admission.arrive(client);
      });
      // Full of arriving calls, x no more than one ahead of y: y's next is refused.
      assert.match(admission.refusal(undefined, { early: true, client: 'y' })!.message, /queue is full/);
      // x two ahead (calls that came in together): y is let in; x's next is not, nor are x's
      // arriving ones once their images are in and find the queue full.
      arrivals.push(admission.arrive('x'), admission.arrive('x'));
      assert.equal(admission.refusal(undefined, { early: true, client: 'y' }), undefined);
      const y = admission.arrive('y');
      assert.match(admission.refusal(undefined, { early: true, client: 'x' })!.message, /queue is full/);
      for (const done of [...arrivals, y]) done();
      assert.equal(admission.refusal(undefined, { early: true, client: 'y' }), undefined);
    });
  });

  describe("a client's share while others are active (clientShare)", () => {
    /** An admission on a clock the test moves, and a way to send as a client. */
    function setUp() {
      let clock = 1_000_000;
      const admission = new Admission({ maxInFlight: 4, maxQueue: 4, clientShare: 0.5 }, () => clock);
      const { shed, started, gates, send } = clients(admission);
      const finish = async (name: string, run: Promise<unknown>) => {
        gates.get(name)!.open();
        await run;
        await sleep(0);
      };
      return { admission, shed, started, send, finish, advance: (ms: number) => (clock += ms) };
    }

    it('gives a client alone every slot and the whole queue', async () => {
      const { admission, shed, send, finish } = setUp();
      const runs = Array.from({ length: 8 }, (_, i) => send('camera', `c${i}`));
      await sleep(0);
      assert.deepEqual([admission.inFlight, admission.queued], [4, 4]);
      assert.deepEqual(shed, []);
      for (let i = 0; i < 8; i++) await finish(`c${i}`, runs[i]);
    });

    it('caps a burst at half the slots while a line controller is active, keeping the other half free for it', async () => {
      const { admission, shed, started, send, finish } = setUp();
      // A line controller's frame, answered: the controller counts as active from then on.
      await finish('l0', send('line', 'l0'));
      const burst = Array.from({ length: 8 }, (_, i) => send('burst', `b${i}`));
      await sleep(0);
      // 2 running (half of 4 slots), no place in the queue beyond them: the rest refused at once.
      assert.deepEqual(started, ['l0', 'b0', 'b1']);
      assert.deepEqual([admission.inFlight, admission.queued], [2, 0]);
      for (const run of burst.slice(2))
        await assert.rejects(
          run,
          refusal('RESOURCE_EXHAUSTED', /holds its share.*\(2 of 4 slots, --max-client-share 0.5\)/),
        );
      assert.deepEqual(shed, Array(6).fill('client_share'));
      // The line controller's next frame starts at once.
      const l1 = send('line', 'l1');
      await sleep(0);
      assert.deepEqual([started.at(-1), admission.inFlight], ['l1', 3]);
      for (const [i, run] of [l1, ...burst.slice(0, 2)].entries()) await finish(['l1', 'b0', 'b1'][i], run);
      assert.deepEqual([admission.inFlight, admission.queued], [0, 0]);
    });

    it('holds back what a client queued while alone, once another is active, until the other is quiet', async () => {
      const { admission, shed, started, send, finish, advance } = setUp();
      const burst = Array.from({ length: 8 }, (_, i) => send('burst', `b${i}`));
      await sleep(0);
      assert.deepEqual([admission.inFlight, admission.queued], [4, 4]);
      // A line controller arrives: it takes the place of the burst's newest queued request ...
      const l0 = send('line', 'l0');
      await assert.rejects(burst[7], refusal('RESOURCE_EXHAUSTED', /went to a client with fewer/));
      // ... and the first free slot.
      await finish('b0', burst[0]);
      assert.equal(started.at(-1), 'l0');
      // The burst now runs 3 of its 2: a slot it frees stays free for the line controller ...
      await finish('b1', burst[1]);
      assert.deepEqual([admission.inFlight, admission.queued], [3, 3]);
      // ... until it is under its share again.
      await finish('b2', burst[2]);
      assert.deepEqual([started.at(-1), admission.inFlight, admission.queued], ['b4', 3, 2]);
      // The line controller done and quiet for CLIENT_ACTIVE_MS: the burst is alone again.
      await finish('l0', l0);
      advance(CLIENT_ACTIVE_MS + 1);
      await finish('b3', burst[3]);
      assert.deepEqual([admission.inFlight, admission.queued], [3, 0]);
      assert.deepEqual(shed, ['fair_share']);
      for (const i of [4, 5, 6]) await finish(`b${i}`, burst[i]);
      assert.deepEqual([admission.inFlight, admission.queued], [0, 0]);
    });

    it('refuses a capped client when its metadata is in, counting its calls still arriving', () => {
      const { admission, advance } = setUp();
      admission.arrive('line')();
      advance(10);
      const arriving = Array.from({ length: 2 }, () => {
        assert.equal(admission.refusal(undefined, { early: true, client: 'burst' }), undefined);
        return admission.arrive('burst');
      });
      assert.equal(
        admission.refusal(undefined, { early: true, client: 'burst' })?.kind,
        'RESOURCE_EXHAUSTED',
      );
      assert.equal(admission.refusal(undefined, { early: true, client: 'line' }), undefined);
      for (const done of arriving) done();
    });

    it('refuses a share outside (0, 1]', () => {
      for (const clientShare of [0, -0.5, 1.5, Number.NaN])
        assert.throws(() => new Admission({ maxInFlight: 4, maxQueue: 4, clientShare }), /clientShare/);
    });
  });
});
