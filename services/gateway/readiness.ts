/**
 * When a gateway is ready. Not before its first complete read of the cluster from etcd; and not
 * while an active bank in that view has a partition without a live loaded replica (after a cluster
 * restart the shards are still reloading from disk), unless that lasts longer than `waitMs`: a bank
 * that lost every replica must not keep new gateways out for ever. Once ready it stays ready until
 * shutdown: every gateway sees the same view, so a lost partition would empty the Service at once.
 * BankAdmin also needs etcd to be reachable now (it writes there); Inspector does not.
 */
import { LiveView } from '../../lib/cluster/cluster-registry';
import { ClusterView, activeRecord, missingPartitions } from '../../lib/cluster/view';
import { OVERALL, ServingHealth } from '../common/health';
import { Logger } from '../../lib/util/log';

export const DEFAULT_READY_WAIT_MS = 30_000;

export interface IncompleteBank {
  bank: string;
  version: number;
  /** Partitions without a live replica; empty when the active version's record is missing. */
  missing: number[];
}

/** Active banks that cannot be fully served from this view. */
export function incompleteBanks(view: ClusterView): IncompleteBank[] {
  const out: IncompleteBank[] = [];
  for (const [bank, version] of view.active) {
    const record = activeRecord(view, bank);
    if (!record) {
      out.push({ bank, version, missing: [] });
      continue;
    }
    const missing = missingPartitions(view, record);
    if (missing.length > 0) out.push({ bank, version, missing });
  }
  return out;
}

export class GatewayReadiness {
  private ready = false;
  private waitedOut = false;
  private timer: NodeJS.Timeout | null = null;
  private live: LiveView | null = null;

  constructor(
    private readonly health: ServingHealth,
    private readonly log: Logger,
    private readonly waitMs = DEFAULT_READY_WAIT_MS,
  ) {}

  /** Follows `live`: evaluates once its first read is done (later changes come through update()). */
  follow(live: LiveView): void {
    this.live = live;
    live.ready.then(
      () => this.update(live.view),
      () => undefined,
    );
  }

  get isReady(): boolean {
    return this.ready;
  }

  update(view: ClusterView): void {
    if (this.health.shuttingDown) return;
    if (!this.ready) {
      const incomplete = incompleteBanks(view);
      if (incomplete.length === 0 || this.waitedOut) {
        this.ready = true;
        this.stopTimer();
        if (incomplete.length === 0) this.log.info('gateway serving: cluster view complete');
        else this.log.warn('gateway serving although some active banks lack replicas', { incomplete });
      } else if (!this.timer) {
        this.log.info('gateway waiting for every active bank to have a live replica', {
          incomplete,
          waitMs: this.waitMs,
        });
        this.timer = setTimeout(() => {
          this.timer = null;
          this.waitedOut = true;
          if (this.live) this.update(this.live.view);
        }, this.waitMs);
        this.timer.unref();
      }
    }
    this.health.set(OVERALL, this.ready);
    this.health.set('spi.v1.Inspector', this.ready);
    this.health.set('spi.v1.BankAdmin', this.ready && view.connected);
  }

  close(): void {
    this.stopTimer();
  }

  private stopTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
