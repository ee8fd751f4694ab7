import { Injectable } from '@nestjs/common';
import { InjectMetric } from '@willsoto/nestjs-prometheus';
import type { Gauge } from 'prom-client';
import { AccountPool } from '../account-pool/account-pool.service';
import { METRIC } from './metric-names';

/**
 * The slot and queue gauges, read from the pool when scraped rather than updated per request,
 * and set once at start-up so every configured account is present before its first request.
 */
@Injectable()
export class PoolGauges {
  constructor(
    private readonly pool: AccountPool,
    @InjectMetric(METRIC.accountSlots) private readonly slots: Gauge<'account' | 'state'>,
    @InjectMetric(METRIC.queueDepth) private readonly queueDepth: Gauge,
  ) {
    this.refresh();
  }

  refresh(): void {
    for (const account of this.pool.snapshot()) {
      this.slots.set({ account: account.id, state: 'busy' }, account.busy_slots);
      this.slots.set({ account: account.id, state: 'available' }, account.available_slots);
    }
    this.queueDepth.set(this.pool.queueDepth());
  }
}
