import { Module } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { REDIS } from '../redis/redis.module';
import { AccountPool } from './account-pool.service';
import { FleetSync } from './fleet-sync.service';
import { RedisSlotLedger } from './redis-slot-ledger';
import { MemorySlotLedger, SLOT_LEDGER, SlotLedger } from './slot-ledger';

/** The account pool: slots leased in Redis when REDIS_URL is set (shared by replicas), else counted in process. */
@Module({
  providers: [
    {
      provide: SLOT_LEDGER,
      inject: [APP_CONFIG, { token: REDIS, optional: true }],
      useFactory: (config: AppConfig, redis: Redis | null | undefined): SlotLedger =>
        redis
          ? new RedisSlotLedger(redis, {
              keyPrefix: config.redis_key_prefix,
              leaseMs: config.pool.lease_ms,
              accounts: config.accounts.map((a) => ({ id: a.id, max: a.max_concurrency })),
            })
          : new MemorySlotLedger(),
    },
    AccountPool,
    FleetSync,
  ],
  exports: [AccountPool],
})
export class AccountPoolModule {}
