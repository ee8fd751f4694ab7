import { Controller, Get, HttpCode, Inject, Res, ServiceUnavailableException } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import { HealthCheck, HealthCheckService, HealthIndicatorService } from '@nestjs/terminus';
import type { Response } from 'express';
import { AccountPool } from '../account-pool/account-pool.service';
import { Public } from '../common/public.decorator';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { RateLimitStoreHealth } from '../rate-limit/rate-limit-store-health';
import { DrainState } from './drain-state';
import { HealthProbes } from './health-probes';

export interface HealthBody {
  status: 'healthy' | 'degraded' | 'draining' | 'unhealthy';
  accounts: number;
  total_slots: number;
  available_slots: number;
  queued: number;
  database: 'up' | 'down';
  redis: 'up' | 'down' | 'not_configured';
  in_flight: number;
}

/** Orchestration probes (DESIGN §3.3). No auth; nothing here names a key or an account secret. */
@ApiTags('health')
@Public()
@Controller('health')
export class HealthController {
  private readonly failOpen: boolean;

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    private readonly pool: AccountPool,
    private readonly drain: DrainState,
    private readonly probes: HealthProbes,
    private readonly store: RateLimitStoreHealth,
    private readonly terminus: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
  ) {
    this.failOpen = config.rate_limit.on_store_error === 'open';
  }

  /** Drain-aware summary: 200 healthy|degraded, 503 draining|unhealthy. */
  @Get()
  async health(@Res({ passthrough: true }) res: Response): Promise<HealthBody> {
    const [databaseUp, redisUp] = await Promise.all([this.probes.databaseUp(), this.probes.redisUp()]);
    const totals = this.pool.totals();
    const pool = this.pool.condition();
    const redisDown = this.probes.redisConfigured && (!redisUp || this.store.isDown);
    let status: HealthBody['status'];
    if (this.drain.draining) status = 'draining';
    else if (!databaseUp || pool.status === 'unhealthy' || (redisDown && !this.failOpen)) status = 'unhealthy';
    else if (pool.status === 'degraded' || redisDown) status = 'degraded';
    else status = 'healthy';
    res.status(status === 'draining' || status === 'unhealthy' ? 503 : 200);
    return {
      status,
      accounts: totals.accounts,
      total_slots: totals.total_slots,
      available_slots: totals.available_slots,
      queued: totals.queued,
      database: databaseUp ? 'up' : 'down',
      redis: this.probes.redisConfigured ? (redisDown ? 'down' : 'up') : 'not_configured',
      in_flight: this.drain.inFlightCount,
    };
  }

  @Get('live')
  @HttpCode(200)
  live(): { status: 'ok' } {
    return { status: 'ok' };
  }

  /** Terminus readiness: database, Redis when configured, pool, not draining. */
  @Get('ready')
  @HealthCheck()
  async ready(@Res({ passthrough: true }) res: Response) {
    try {
      return await this.readiness();
    } catch (err) {
      // Terminus signals "not ready" with an exception; answer its own body, not the API envelope.
      if (!(err instanceof ServiceUnavailableException)) throw err;
      res.status(503);
      return err.getResponse();
    }
  }

  private readiness() {
    return this.terminus.check([
      () => this.indicators.check('database').attempt(async () => {
        if (!(await this.probes.databaseUp())) throw new Error('unreachable');
      }),
      async () => {
        const redis = this.indicators.check('redis');
        if (!this.probes.redisConfigured) return redis.up({ configured: false });
        if (await this.probes.redisUp()) return redis.up();
        // Failing open, the gateway still serves: ready, but say so.
        return this.failOpen ? redis.degraded({ message: 'unreachable; rate limits fail open' }) : redis.down({ message: 'unreachable' });
      },
      () => {
        const pool = this.indicators.check('pool');
        const condition = this.pool.condition();
        return condition.status === 'unhealthy' ? pool.down({ usable_accounts: 0 }) : pool.up({ usable_accounts: condition.usable_accounts });
      },
      () => {
        const drain = this.indicators.check('drain');
        return this.drain.draining ? drain.down({ message: 'draining' }) : drain.up();
      },
    ]);
  }
}
