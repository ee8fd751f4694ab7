import { Inject, Injectable } from '@nestjs/common';
import { InjectMetric } from '@willsoto/nestjs-prometheus';
import type { Counter, Histogram } from 'prom-client';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { RateLimitStoreHealth } from '../rate-limit/rate-limit-store-health';
import { LatencyWindow } from './latency-window';
import { METRIC, RequestStatus } from './metric-names';

export interface CompletionObservation {
  /** The requested model id when configured, else 'unknown' (label cardinality stays bounded). */
  model: string;
  status: RequestStatus;
  durationSeconds: number;
  ttftSeconds: number | null;
  overheadSeconds: number | null;
  promptTokens: number;
  completionTokens: number;
  credits: number;
}

/**
 * Every number the gateway reports: the Prometheus metrics of DESIGN §3.5 and the JSON snapshot
 * of `GET /admin/metrics`. Labels are model ids, account ids and fixed words only.
 */
@Injectable()
export class GatewayMetrics {
  private readonly modelIds: Set<string>;
  readonly latencies = new LatencyWindow(4096);

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    storeHealth: RateLimitStoreHealth,
    @InjectMetric(METRIC.requests) private readonly requests: Counter<'model' | 'status'>,
    @InjectMetric(METRIC.duration) private readonly duration: Histogram,
    @InjectMetric(METRIC.ttft) private readonly ttft: Histogram,
    @InjectMetric(METRIC.overhead) private readonly overhead: Histogram,
    @InjectMetric(METRIC.tokens) private readonly tokens: Counter<'model' | 'type'>,
    @InjectMetric(METRIC.credits) private readonly credits: Counter<'model'>,
    @InjectMetric(METRIC.upstreamRequests) private readonly upstream: Counter<'account' | 'outcome'>,
    @InjectMetric(METRIC.storeErrors) storeErrors: Counter,
  ) {
    this.modelIds = new Set(config.models.map((m) => m.id));
    storeHealth.onError(() => storeErrors.inc());
    // Present from start-up, so dashboards and alerts see every series before its first request.
    for (const model of this.modelIds) for (const status of ['success', 'error', 'rate_limited', 'cancelled']) this.requests.inc({ model, status }, 0);
    storeErrors.inc(0);
  }

  modelLabel(model: unknown): string {
    return typeof model === 'string' && this.modelIds.has(model) ? model : 'unknown';
  }

  /** Counts a chat completion refused before it reached the pool (rate limit, validation…). */
  refused(model: unknown, status: RequestStatus): void {
    this.requests.inc({ model: this.modelLabel(model), status });
  }

  completed(o: CompletionObservation): void {
    this.requests.inc({ model: o.model, status: o.status });
    this.duration.observe(o.durationSeconds);
    this.latencies.add(o.durationSeconds);
    if (o.ttftSeconds !== null) this.ttft.observe(o.ttftSeconds);
    if (o.overheadSeconds !== null) this.overhead.observe(o.overheadSeconds);
    if (o.promptTokens > 0) this.tokens.inc({ model: o.model, type: 'prompt' }, o.promptTokens);
    if (o.completionTokens > 0) this.tokens.inc({ model: o.model, type: 'completion' }, o.completionTokens);
    if (o.credits > 0) this.credits.inc({ model: o.model }, o.credits);
  }

  upstreamOutcome(account: string, outcome: string): void {
    this.upstream.inc({ account, outcome });
  }
}
