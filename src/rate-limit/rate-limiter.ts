import { Inject, Injectable } from '@nestjs/common';
import type { ServerResponse } from 'node:http';
import { GatewayError } from '../common/gateway-error';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import type { AuthenticatedKey } from '../keys/authenticated-key';
import { RateLimitStoreHealth } from './rate-limit-store-health';
import { RATE_LIMIT_STORE } from './rate-limit.tokens';
import type { RateLimitDecision, RateLimitStore } from './rate-limit-store';

const WINDOW_MS = 60_000;

/** The X-RateLimit-* headers of one admitted request. */
type RateLimitHeaders = Record<'X-RateLimit-Limit' | 'X-RateLimit-Remaining' | 'X-RateLimit-Reset', string>;

/**
 * Per-key sliding window on every authenticated /v1 request (DESIGN §3.2): one store round trip,
 * the X-RateLimit-* headers on every answer, 429 with an honest Retry-After when the window is
 * full. When the store is unreachable, `rate_limit.on_store_error` decides: `open` admits
 * without headers, `closed` answers 503 store_unavailable.
 */
@Injectable()
export class RateLimiter {
  private readonly defaultLimit: number;
  private readonly failOpen: boolean;
  /** Per key, what the last decision left: 0 after a refusal. */
  private readonly lastRemaining = new Map<string, number>();

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    @Inject(RATE_LIMIT_STORE) private readonly store: RateLimitStore,
    private readonly health: RateLimitStoreHealth,
  ) {
    this.defaultLimit = config.rate_limit.default_per_minute;
    this.failOpen = config.rate_limit.on_store_error === 'open';
  }

  /**
   * Whether the key's next request will very likely be admitted: its last decision left more
   * than a tenth of its limit. Callers may start work that a refusal would waste (a slot), since
   * a refusal then is rare; a key at or near its limit gets no such head start.
   */
  likelyAdmits(key: AuthenticatedKey): boolean {
    const remaining = this.lastRemaining.get(key.id);
    return remaining !== undefined && remaining > (key.rateLimitPerMinute ?? this.defaultLimit) / 10;
  }

  /**
   * Counts one request of `key` and puts the X-RateLimit-* headers on `res` (none when admitted
   * while the store is down: fail open). Throws the 429 (headers included) or the 503 otherwise.
   */
  async admit(key: AuthenticatedKey, res: ServerResponse): Promise<void> {
    const limit = key.rateLimitPerMinute ?? this.defaultLimit;
    let decision: RateLimitDecision;
    try {
      decision = await this.store.hit(key.id, limit, WINDOW_MS);
      this.health.succeeded();
    } catch {
      this.health.failed();
      if (this.failOpen) return;
      throw GatewayError.storeUnavailable('The rate-limit store');
    }
    this.lastRemaining.set(key.id, decision.allowed ? decision.remaining : 0);
    const headers: RateLimitHeaders = {
      'X-RateLimit-Limit': String(decision.limit),
      'X-RateLimit-Remaining': String(decision.remaining),
      'X-RateLimit-Reset': String(Math.ceil(decision.resetAtMs / 1000)),
    };
    if (!decision.allowed) {
      const retryAfter = Math.max(1, Math.ceil((decision.resetAtMs - decision.nowMs) / 1000));
      throw new GatewayError(429, 'rate_limit_error', 'rate_limit_exceeded', `Rate limit of ${limit} requests per minute reached.`, null, retryAfter, headers);
    }
    for (const name in headers) res.setHeader(name, headers[name as keyof RateLimitHeaders]);
  }
}
