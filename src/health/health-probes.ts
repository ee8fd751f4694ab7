import { Inject, Injectable, Optional } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { Redis } from 'ioredis';
import { DataSource } from 'typeorm';
import { REDIS } from '../redis/redis.module';

const PROBE_TIMEOUT_MS = 1000;

/** Cheap liveness checks of the two stores, each bounded in time so a probe never hangs. */
@Injectable()
export class HealthProbes {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    @Optional() @Inject(REDIS) private readonly redis: Redis | null,
  ) {}

  get redisConfigured(): boolean {
    return this.redis !== null;
  }

  async databaseUp(): Promise<boolean> {
    return within(PROBE_TIMEOUT_MS, () => this.dataSource.query('SELECT 1'));
  }

  /** True when Redis answers (or is not configured). */
  async redisUp(): Promise<boolean> {
    const redis = this.redis;
    return redis === null || within(PROBE_TIMEOUT_MS, () => redis.ping());
  }
}

async function within(ms: number, work: () => Promise<unknown>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([work().then(() => true, () => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
