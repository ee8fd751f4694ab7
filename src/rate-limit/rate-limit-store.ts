/** The answer for one request against its key's sliding window. */
export interface RateLimitDecision {
  allowed: boolean;
  /** N, the window's capacity. */
  limit: number;
  /** Requests still admissible in the window after this one (0 when refused). */
  remaining: number;
  /** Unix ms at which the oldest request in the window leaves it (now + window when it is the only one). */
  resetAtMs: number;
  /** The store's clock at decision time, unix ms (Redis TIME for the Redis store). */
  nowMs: number;
}

/**
 * An exact sliding window: never more than `limit` requests admitted in any rolling `windowMs`.
 * A refused request consumes nothing. Implementations: Redis (one Lua script, Redis's clock)
 * and in-process (single replica).
 */
export interface RateLimitStore {
  hit(bucket: string, limit: number, windowMs: number): Promise<RateLimitDecision>;
}
