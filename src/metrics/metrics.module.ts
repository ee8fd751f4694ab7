import { Module } from '@nestjs/common';
import {
  PrometheusModule,
  makeCounterProvider,
  makeHistogramProvider,
} from '@willsoto/nestjs-prometheus';
import { collectDefaultMetrics, register } from 'prom-client';
import { RateLimitModule } from '../rate-limit/rate-limit.module';
import { AccountPoolModule } from '../account-pool/account-pool.module';
import { GatewayMetrics } from './gateway-metrics';
import { METRIC } from './metric-names';
import { MetricsController } from './metrics.controller';
import { MetricsSnapshotService } from './metrics-snapshot';
import { PoolGaugesModule } from './pool-gauges.module';

const LATENCY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const OVERHEAD_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1];

/** Node process defaults, registered once per process (tests run several gateways in one). */
function collectNodeMetricsOnce(): void {
  if (register.getSingleMetric('process_cpu_user_seconds_total')) return;
  collectDefaultMetrics();
  // Gauges named *_total break Prometheus naming rules (promtool rejects them); the same numbers
  // remain in nodejs_active_handles, nodejs_active_requests and nodejs_active_resources.
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    register.removeSingleMetric(name);
  }
}

@Module({
  imports: [
    PrometheusModule.registerAsync({
      imports: [PoolGaugesModule],
      useFactory: () => {
        collectNodeMetricsOnce();
        return { path: '/metrics', defaultMetrics: { enabled: false } };
      },
      controller: MetricsController,
    }),
    RateLimitModule,
    AccountPoolModule,
  ],
  providers: [
    GatewayMetrics,
    MetricsSnapshotService,
    makeCounterProvider({ name: METRIC.requests, help: 'Authenticated chat completion requests by model and outcome.', labelNames: ['model', 'status'] }),
    makeHistogramProvider({ name: METRIC.duration, help: 'Chat completion duration, from arrival to the last byte.', buckets: LATENCY_BUCKETS }),
    makeHistogramProvider({ name: METRIC.ttft, help: 'Time from arrival to the first token sent to the client.', buckets: LATENCY_BUCKETS }),
    makeHistogramProvider({ name: METRIC.overhead, help: 'Time spent in Drawbridge itself, upstream time excluded.', buckets: OVERHEAD_BUCKETS }),
    makeCounterProvider({ name: METRIC.tokens, help: 'Tokens metered, by model and type (prompt or completion).', labelNames: ['model', 'type'] }),
    makeCounterProvider({ name: METRIC.credits, help: 'Credits charged, by model.', labelNames: ['model'] }),
    makeCounterProvider({ name: METRIC.upstreamRequests, help: 'Upstream calls by account and outcome.', labelNames: ['account', 'outcome'] }),
    makeCounterProvider({ name: METRIC.storeErrors, help: 'Rate-limit store (Redis) errors.' }),
  ],
  exports: [GatewayMetrics, MetricsSnapshotService],
})
export class MetricsModule {}
