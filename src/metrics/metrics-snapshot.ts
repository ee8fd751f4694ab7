import { Injectable } from '@nestjs/common';
import { register, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import { AccountPool, PoolTotals } from '../account-pool/account-pool.service';
import { GatewayMetrics } from './gateway-metrics';
import { METRIC } from './metric-names';

export interface MetricsSnapshot {
  object: 'metrics';
  requests: { total: number; by_status: Record<string, number> };
  latency_seconds: { p50: number | null; p95: number | null; p99: number | null; window: number };
  tokens: { prompt: number; completion: number; by_model: Record<string, { prompt: number; completion: number }> };
  credits: { total: number; by_model: Record<string, number> };
  pool: PoolTotals;
}

/** `GET /admin/metrics`: the same counters as /metrics, as JSON, plus exact recent percentiles. */
@Injectable()
export class MetricsSnapshotService {
  constructor(
    private readonly metrics: GatewayMetrics,
    private readonly pool: AccountPool,
  ) {}

  async snapshot(): Promise<MetricsSnapshot> {
    const [requests, tokens, credits] = await Promise.all([values(METRIC.requests), values(METRIC.tokens), values(METRIC.credits)]);
    const byStatus: Record<string, number> = { success: 0, error: 0, rate_limited: 0, cancelled: 0 };
    for (const v of requests) byStatus[String(v.labels.status)] = (byStatus[String(v.labels.status)] ?? 0) + v.value;
    const tokensByModel: MetricsSnapshot['tokens']['by_model'] = {};
    for (const v of tokens) {
      const entry = (tokensByModel[String(v.labels.model)] ??= { prompt: 0, completion: 0 });
      if (v.labels.type === 'prompt') entry.prompt += v.value;
      else entry.completion += v.value;
    }
    const creditsByModel: Record<string, number> = {};
    for (const v of credits) creditsByModel[String(v.labels.model)] = v.value;
    const [p50, p95, p99] = this.metrics.latencies.percentiles([50, 95, 99]);
    return {
      object: 'metrics',
      requests: { total: Object.values(byStatus).reduce((a, b) => a + b, 0), by_status: byStatus },
      latency_seconds: { p50, p95, p99, window: this.metrics.latencies.size },
      tokens: {
        prompt: Object.values(tokensByModel).reduce((a, t) => a + t.prompt, 0),
        completion: Object.values(tokensByModel).reduce((a, t) => a + t.completion, 0),
        by_model: tokensByModel,
      },
      credits: { total: Object.values(creditsByModel).reduce((a, b) => a + b, 0), by_model: creditsByModel },
      pool: this.pool.totals(),
    };
  }
}

async function values(name: string): Promise<MetricValue<string>[]> {
  const metric = register.getSingleMetric(name);
  if (!metric) return [];
  return ((await metric.get()) as MetricObjectWithValues<MetricValue<string>>).values;
}
