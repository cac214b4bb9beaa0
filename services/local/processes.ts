/**
 * Child processes of a local cluster (the demo, integration tests): `node --import tsx <file> <args>`
 * with logs captured (a ring buffer plus a file under $SPI_LOCAL_DIR/logs, default .test-tmp/logs), a
 * wait for a "ready" log line, and stop / kill / pause / resume. Every process is tracked so
 * `killAll()` (a mocha root hook, see `mochaHooks`) or the parent's exit kills whatever is left.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const TEST_TMP = path.resolve(process.env.SPI_LOCAL_DIR ?? path.join(__dirname, '../../.test-tmp'));
const LOG_DIR = path.join(TEST_TMP, 'logs');

export interface SpawnOptions {
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Used in log file names and messages. */
  name?: string;
  /** Lines kept in memory (default 500). */
  ringLines?: number;
  /** Run under `nice -n <niceness>` (every thread of it: a load generator sharing the cores). */
  niceness?: number;
}

export interface ReadyLine {
  /** The parsed JSON line (our services log JSON), or { raw } for any other line that matched. */
  fields: Record<string, unknown>;
  line: string;
}

const live = new Set<ManagedProcess>();

export class ManagedProcess {
  readonly child: ChildProcess;
  readonly logFile: string;
  readonly lines: string[] = [];
  private readonly listeners = new Set<(line: string) => void>();
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;

  constructor(
    readonly name: string,
    command: string,
    args: string[],
    env: NodeJS.ProcessEnv,
    private readonly ringLines: number,
  ) {
    fs.mkdirSync(LOG_DIR, { recursive: true });
    this.child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.logFile = path.join(LOG_DIR, `${name}-${this.child.pid ?? 'nopid'}.log`);
    const file = fs.createWriteStream(this.logFile, { flags: 'a' });
    for (const stream of [this.child.stdout, this.child.stderr]) {
      let partial = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (data: string) => {
        file.write(data);
        const parts = (partial + data).split('\n');
        partial = parts.pop() ?? '';
        for (const line of parts) this.onLine(line);
      });
    }
    live.add(this);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        live.delete(this);
        file.end();
        resolve({ code, signal });
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.exitInfo === null;
  }

  private onLine(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.ringLines) this.lines.shift();
    for (const l of [...this.listeners]) l(line);
  }

  /** Last log lines, for assertion messages. */
  tail(n = 40): string {
    return this.lines.slice(-n).join('\n');
  }

  /**
   * Waits for a log line: a JSON line whose `msg` equals `match`, or any line that `match` (a RegExp or
   * predicate) accepts. Lines already seen count too.
   */
  waitForLine(
    match: string | RegExp | ((fields: Record<string, unknown>, line: string) => boolean),
    timeoutMs = 20_000,
  ): Promise<ReadyLine> {
    const test = (line: string): ReadyLine | null => {
      let fields: Record<string, unknown> = { raw: line };
      try {
        const parsed: unknown = JSON.parse(line);
        if (parsed && typeof parsed === 'object') fields = parsed as Record<string, unknown>;
      } catch {
        // not JSON: only a RegExp or predicate can match it
      }
      const ok =
        typeof match === 'string'
          ? fields.msg === match
          : match instanceof RegExp
            ? match.test(line)
            : match(fields, line);
      return ok ? { fields, line } : null;
    };
    for (const line of this.lines) {
      const hit = test(line);
      if (hit) return Promise.resolve(hit);
    }
    return new Promise((resolve, reject) => {
      const done = (err: Error | null, hit?: ReadyLine) => {
        clearTimeout(timer);
        this.listeners.delete(listener);
        if (err) reject(err);
        else resolve(hit as ReadyLine);
      };
      const listener = (line: string) => {
        const hit = test(line);
        if (hit) done(null, hit);
      };
      const timer = setTimeout(
        () =>
          done(
            new Error(
              `${this.name}: no line matching ${String(match)} within ${timeoutMs} ms\n${this.tail()}`,
            ),
          ),
        timeoutMs,
      );
      this.listeners.add(listener);
      void this.exited.then((info) => {
        if (this.listeners.has(listener)) {
          done(
            new Error(
              `${this.name} exited (${JSON.stringify(info)}) before logging ${String(match)}\n${this.tail()}`,
            ),
          );
        }
      });
    });
  }

  /** SIGTERM, then SIGKILL after `timeoutMs`; resolves with how it exited. */
  async stop(timeoutMs = 5000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.running) return this.exitInfo as { code: number | null; signal: NodeJS.Signals | null };
    this.resume(); // a stopped process cannot handle SIGTERM
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends a signal (default SIGKILL) and waits for the exit. */
  async kill(
    signal: NodeJS.Signals = 'SIGKILL',
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.running) {
      if (signal !== 'SIGKILL') this.resume();
      this.child.kill(signal);
    }
    return this.exited;
  }

  waitForExit(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return this.exited;
  }

  pause(): void {
    if (this.running) this.child.kill('SIGSTOP');
  }

  resume(): void {
    if (this.running) this.child.kill('SIGCONT');
  }
}

/** Runs a command as a tracked child. */
export function spawnProcess(
  command: string,
  args: string[],
  options: Omit<SpawnOptions, 'args'> = {},
): ManagedProcess {
  return new ManagedProcess(
    options.name ?? path.basename(command),
    command,
    args,
    { ...process.env, ...options.env },
    options.ringLines ?? 500,
  );
}

/**
 * glibc malloc settings for the services (the Dockerfile sets the same): buffers of 128 KiB and
 * more (images, embeddings, partition chunks) are mapped and unmapped on their own instead of
 * staying in the heap once freed, and two arenas instead of eight per core. Without them the
 * gateway's resident memory ratchets up after every spike (a frozen shard's pending searches, a
 * rotation) and never comes down: +33 % over a 2-minute soak, against +8 % with them.
 */
export const NATIVE_MEMORY_ENV = { MALLOC_MMAP_THRESHOLD_: '131072', MALLOC_ARENA_MAX: '2' };

/**
 * Fixing the mapping threshold also fixes the heap's trim threshold and top padding at 128 KiB, so
 * a request's large scratch (faiss' 16 MiB distance block on a shard; tiles, tensors and maps on a
 * gateway) went back to the kernel and was faulted in again. Padding kept on the heap's top serves
 * such blocks from memory already touched, a fixed amount that does not grow with spikes:
 * - a shard, 32 MiB: a 784-query search of a 1,500-row bank took 16.7 ms instead of 3.7 (8 and 16
 *   MiB did not help: the block must fit);
 * - a gateway, 16 MiB: a tiled sheet's decode, embedding and map took ~750 ms without, ~420 with
 *   (~370 with 32 MiB, at +12 MiB of resident memory; a soak with 32 MiB grew the gateway 9.4 %
 *   after warm-up, too near the 10 % bound).
 * k8s/base/shard.yaml and gateway.yaml set the same.
 */
export const SHARD_MEMORY_ENV = { ...NATIVE_MEMORY_ENV, MALLOC_TOP_PAD_: String(32 * 1024 * 1024) };
export const GATEWAY_MEMORY_ENV = { ...NATIVE_MEMORY_ENV, MALLOC_TOP_PAD_: String(16 * 1024 * 1024) };

/** `node --import tsx <file> <args>` from the repository root. */
export function spawnNodeService(file: string, options: SpawnOptions = {}): ManagedProcess {
  const root = path.resolve(__dirname, '../..');
  const node = [process.execPath, '--import', 'tsx', path.resolve(root, file), ...(options.args ?? [])];
  const niced = options.niceness === undefined ? node : ['nice', '-n', String(options.niceness), ...node];
  return spawnProcess(niced[0], niced.slice(1), {
    ...options,
    env: { ...NATIVE_MEMORY_ENV, ...options.env },
    name: options.name ?? path.basename(file, path.extname(file)),
  });
}

/** Kills every tracked process still running and waits for them to exit. */
export async function killAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.kill('SIGKILL')));
}

/** Synchronous last resort: the test process is exiting, so no waiting. */
export function killAllSync(): void {
  for (const p of live) {
    try {
      p.child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Hooks for cleanup that must run even when a test file forgets (see killAll). */
const exitHooks: (() => void)[] = [];
export function onTestProcessExit(fn: () => void): void {
  exitHooks.push(fn);
}

process.once('exit', () => {
  killAllSync();
  for (const fn of exitHooks) {
    try {
      fn();
    } catch {
      // best effort
    }
  }
});
// Interrupted runs too: exit() runs the hook above.
process.once('SIGINT', () => process.exit(130));
process.once('SIGTERM', () => process.exit(143));

/** Mocha root hook plugin: add this file to .mocharc.json "require" to clean up after every run. */
export const mochaHooks = {
  async afterAll(): Promise<void> {
    await killAll();
  },
};

/** Polls `check` until it returns a truthy value (returned) or `timeoutMs` passes (throws `what`). */
export async function waitUntil<T>(
  check: () => Promise<T> | T,
  what: string,
  timeoutMs = 10_000,
  intervalMs = 50,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${String(last)})`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
