import { Module } from '@nestjs/common';
import { AccountPoolModule } from '../account-pool/account-pool.module';
import { KeysModule } from '../keys/keys.module';
import { MetricsModule } from '../metrics/metrics.module';
import { UsageModule } from '../usage/usage.module';
import { AdminAccountsController } from './admin-accounts.controller';
import { AdminKeysController } from './admin-keys.controller';
import { AdminMetricsController } from './admin-metrics.controller';
import { AdminUsageController } from './admin-usage.controller';

@Module({
  imports: [KeysModule, UsageModule, AccountPoolModule, MetricsModule],
  controllers: [AdminKeysController, AdminUsageController, AdminAccountsController, AdminMetricsController],
})
export class AdminModule {}
