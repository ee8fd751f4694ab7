import { Module } from '@nestjs/common';
import { AccountPoolModule } from '../account-pool/account-pool.module';
import { HealthModule } from '../health/health.module';
import { KeysModule } from '../keys/keys.module';
import { MetricsModule } from '../metrics/metrics.module';
import { ProvidersModule } from '../providers/providers.module';
import { RateLimitModule } from '../rate-limit/rate-limit.module';
import { UsageModule } from '../usage/usage.module';
import { CompletionsController } from './completions.controller';
import { CompletionsFastLane } from './completions.fast-lane';
import { CompletionsRoute } from './completions.route';
import { CompletionsService } from './completions.service';

@Module({
  imports: [AccountPoolModule, ProvidersModule, UsageModule, HealthModule, RateLimitModule, MetricsModule, KeysModule],
  controllers: [CompletionsController],
  providers: [CompletionsService, CompletionsRoute, CompletionsFastLane],
})
export class CompletionsModule {}
