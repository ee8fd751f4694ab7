import { Module } from '@nestjs/common';
import { KeysModule } from '../keys/keys.module';
import { UsageModule } from '../usage/usage.module';
import { AdminKeysController } from './admin-keys.controller';
import { AdminUsageController } from './admin-usage.controller';

@Module({
  imports: [KeysModule, UsageModule],
  controllers: [AdminKeysController, AdminUsageController],
})
export class AdminModule {}
