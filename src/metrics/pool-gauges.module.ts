import { Module } from '@nestjs/common';
import { makeGaugeProvider } from '@willsoto/nestjs-prometheus';
import { AccountPoolModule } from '../account-pool/account-pool.module';
import { METRIC } from './metric-names';
import { PoolGauges } from './pool-gauges';

/** Its own module so the /metrics controller (which lives in PrometheusModule) can reach it. */
@Module({
  imports: [AccountPoolModule],
  providers: [
    PoolGauges,
    makeGaugeProvider({ name: METRIC.accountSlots, help: 'Slots per account, busy or available.', labelNames: ['account', 'state'] }),
    makeGaugeProvider({ name: METRIC.queueDepth, help: 'Requests waiting for a slot on this replica.' }),
  ],
  exports: [PoolGauges],
})
export class PoolGaugesModule {}
