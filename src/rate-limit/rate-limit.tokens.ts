/** The RateLimitStore in use: Redis with REDIS_URL, in-process without. */
export const RATE_LIMIT_STORE = Symbol('RATE_LIMIT_STORE');
