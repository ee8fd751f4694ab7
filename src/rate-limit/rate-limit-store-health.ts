import { Injectable } from '@nestjs/common';

/**
 * Whether the rate-limit store answered lately, for /health (`degraded` while Redis is down and
 * the limiter fails open) and readiness. Counted store errors feed
 * `drawbridge_rate_limit_store_errors_total` through `onError` listeners.
 */
@Injectable()
export class RateLimitStoreHealth {
  private down = false;
  private readonly listeners: Array<() => void> = [];

  succeeded(): void {
    this.down = false;
  }

  failed(): void {
    this.down = true;
    for (const listener of this.listeners) listener();
  }

  get isDown(): boolean {
    return this.down;
  }

  onError(listener: () => void): void {
    this.listeners.push(listener);
  }
}
