import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { AccountPoolModule } from '../account-pool/account-pool.module';
import { RateLimitModule } from '../rate-limit/rate-limit.module';
import { DrainState } from './drain-state';
import { HealthController } from './health.controller';
import { HealthProbes } from './health-probes';

@Module({
  imports: [TerminusModule.forRoot({ logger: false }), AccountPoolModule, RateLimitModule],
  controllers: [HealthController],
  providers: [DrainState, HealthProbes],
  exports: [DrainState],
})
export class HealthModule {}
