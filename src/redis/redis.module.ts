import { Global, Inject, Module, OnApplicationShutdown, Optional } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { createRedisClient, whenRedisReady } from './redis-client';

/** The shared ioredis client, or null in embedded mode (no REDIS_URL). */
export const REDIS = Symbol('REDIS');

class RedisCloser implements OnApplicationShutdown {
  constructor(@Optional() @Inject(REDIS) private readonly redis: Redis | null) {}

  async onApplicationShutdown(): Promise<void> {
    if (!this.redis) return;
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }
}

@Global()
@Module({
  providers: [
    {
      provide: REDIS,
      inject: [APP_CONFIG],
      useFactory: async (config: AppConfig): Promise<Redis | null> => {
        if (!config.redis_url) return null;
        const client = createRedisClient(config.redis_url.reveal());
        // Commands fail fast while disconnected; give the first connection a moment so the first
        // requests are limited for real. If Redis is down, start anyway: it reconnects by itself.
        await whenRedisReady(client, 2000);
        return client;
      },
    },
    RedisCloser,
  ],
  exports: [REDIS],
})
export class RedisModule {}
