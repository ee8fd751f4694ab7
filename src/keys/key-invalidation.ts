import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit, Optional } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { REDIS } from '../redis/redis.module';
import { KeyAuthenticator } from './key-authenticator';

/**
 * Tells every replica's key cache that a key changed (DESIGN §3.2 "Key changes"): the change
 * applies at once on this replica and, through Redis pub/sub, within about a millisecond on the
 * others. Without Redis, or while it is down, the cache TTL is the fallback.
 */
@Injectable()
export class KeyInvalidation implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(KeyInvalidation.name);
  private readonly channel: string;
  private subscriber?: Redis;

  constructor(
    private readonly authenticator: KeyAuthenticator,
    @Inject(APP_CONFIG) config: AppConfig,
    @Optional() @Inject(REDIS) private readonly redis: Redis | null,
  ) {
    this.channel = `${config.redis_key_prefix}keys:changed`;
  }

  async onModuleInit(): Promise<void> {
    if (!this.redis) return;
    // A subscribed connection can do nothing else, so it gets its own; it resubscribes by itself
    // after a reconnect.
    this.subscriber = this.redis.duplicate({ enableOfflineQueue: true, commandTimeout: undefined });
    this.subscriber.on('error', () => undefined);
    this.subscriber.on('message', (_channel: string, id: string) => this.authenticator.invalidate(id));
    try {
      await this.subscriber.subscribe(this.channel);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'key-change subscription failed; other replicas see changes after the cache TTL');
    }
  }

  async onApplicationShutdown(): Promise<void> {
    this.subscriber?.disconnect();
  }

  /** Invalidates here at once, then tells the other replicas. */
  async changed(id: string): Promise<void> {
    this.authenticator.invalidate(id);
    if (!this.redis) return;
    try {
      await this.redis.publish(this.channel, id);
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'could not announce a key change; other replicas see it after the cache TTL');
    }
  }
}
