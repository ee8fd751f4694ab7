import type { INestApplication } from '@nestjs/common';
import { performance } from 'node:perf_hooks';
import { AccountPool } from '../src/account-pool/account-pool.service';
import { ProviderRegistry } from '../src/providers/provider-registry';
import type { RateLimitStore } from '../src/rate-limit/rate-limit-store';
import { RATE_LIMIT_STORE } from '../src/rate-limit/rate-limit.tokens';

/** What one G waited on, in ms per call, since the last `reset`. */
export interface WaitSamples {
  /** The rate-limit script's round trip to Redis. */
  rateLimit: number[];
  /** Taking a slot: the lease script's round trip (it overlaps the rate limit's). */
  slot: number[];
  /** The upstream call: to the whole answer (non-streaming) or to the first chunk (streams). */
  upstream: number[];
}

/**
 * Times, in one gateway instance, the waits behind G's latency rows: Redis (rate limit, slot) and
 * the upstream. It wraps those objects' methods in place, so only the bench's dedicated `G-waits`
 * instance carries the two clock reads per call; the headline G runs untouched.
 */
export class WaitTimer {
  samples: WaitSamples = { rateLimit: [], slot: [], upstream: [] };

  constructor(app: INestApplication, accountId: string) {
    const adapter = app.get(ProviderRegistry).adapterFor(accountId);
    this.time(app.get<RateLimitStore>(RATE_LIMIT_STORE), 'hit', 'rateLimit');
    this.time(app.get(AccountPool), 'acquire', 'slot');
    this.time(adapter, 'complete', 'upstream');
    this.time(adapter, 'stream', 'upstream');
  }

  /** Hands over what was collected and starts afresh. */
  take(): WaitSamples {
    const taken = this.samples;
    this.samples = { rateLimit: [], slot: [], upstream: [] };
    return taken;
  }

  private time<T extends object>(target: T, method: keyof T & string, into: keyof WaitSamples): void {
    const original = (target[method] as (...args: unknown[]) => Promise<unknown>).bind(target);
    (target as Record<string, unknown>)[method] = async (...args: unknown[]) => {
      const start = performance.now();
      try {
        return await original(...args);
      } finally {
        this.samples[into].push(performance.now() - start);
      }
    };
  }
}
