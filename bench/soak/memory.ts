/**
 * Resident memory of the soak's processes, read from /proc (Linux), by role; and the gateway's
 * JavaScript heap and external (Buffer) memory from its /metrics, to tell a heap that grows from
 * native memory that is not given back.
 */
import * as fs from 'node:fs';

/** VmRSS of a process in MiB, or null when it is gone. */
export function rssMiB(pid: number): number | null {
  try {
    const line = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return line ? Math.round((Number(line[1]) / 1024) * 10) / 10 : null;
  } catch {
    return null;
  }
}

const MIB = 1024 * 1024;

/** A process's JavaScript heap, used and reserved (what RSS holds of it), and its Buffers, in MiB. */
export interface HeapMiB {
  heapUsed: number;
  heapTotal: number;
  external: number;
}

/** nodejs_heap_size_used/total_bytes and nodejs_external_memory_bytes of a process's /metrics, in MiB. */
export async function heapMiB(metricsPort: number): Promise<HeapMiB | null> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const read = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]) / MIB;
    return {
      heapUsed: Math.round(read('nodejs_heap_size_used_bytes') * 10) / 10,
      heapTotal: Math.round(read('nodejs_heap_size_total_bytes') * 10) / 10,
      external: Math.round(read('nodejs_external_memory_bytes') * 10) / 10,
    };
  } catch {
    return null;
  }
}

export interface MemoryPoint {
  at: number;
  /** role -> { pid, MiB } */
  rss: Record<string, { pid: number; mib: number | null }>;
  gatewayHeap: HeapMiB | null;
}

/** Samples every role's current process every `everyMs` (the timeline goes into the results). */
export function memorySampler(
  roles: () => Record<string, number>,
  gatewayMetricsPort: number,
  everyMs: number,
) {
  const timeline: MemoryPoint[] = [];
  const sample = async (): Promise<MemoryPoint> => {
    const rss: MemoryPoint['rss'] = {};
    for (const [role, pid] of Object.entries(roles())) rss[role] = { pid, mib: rssMiB(pid) };
    const point = { at: Date.now(), rss, gatewayHeap: await heapMiB(gatewayMetricsPort) };
    timeline.push(point);
    return point;
  };
  const timer = setInterval(() => void sample(), everyMs);
  timer.unref();
  return {
    timeline,
    sample,
    stop: () => clearInterval(timer),
  };
}
