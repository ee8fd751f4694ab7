import { Module } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { REDIS } from '../redis/redis.module';
import { MemoryWindowStore } from './memory-window.store';
import { RateLimitStoreHealth } from './rate-limit-store-health';
import { RateLimitInterceptor } from './rate-limit.interceptor';
import { RateLimiter } from './rate-limiter';
import { RATE_LIMIT_STORE } from './rate-limit.tokens';
import { RedisWindowStore } from './redis-window.store';

@Module({
  providers: [
    {
      provide: RATE_LIMIT_STORE,
      inject: [APP_CONFIG, REDIS],
      useFactory: (config: AppConfig, redis: Redis | null) =>
        redis ? new RedisWindowStore(redis, `${config.redis_key_prefix}rl:`) : new MemoryWindowStore(),
    },
    RateLimitStoreHealth,
    RateLimiter,
    RateLimitInterceptor,
  ],
  exports: [RATE_LIMIT_STORE, RateLimitStoreHealth, RateLimiter, RateLimitInterceptor],
})
export class RateLimitModule {}
