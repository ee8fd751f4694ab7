import { Module } from '@nestjs/common';
import { KeysModule } from '../keys/keys.module';
import { UsageWriter } from './usage-writer';
import { UsageRepository } from './usage.repository';
import { UsageService } from './usage.service';

@Module({
  imports: [KeysModule],
  providers: [UsageRepository, UsageWriter, UsageService],
  exports: [UsageWriter, UsageService],
})
export class UsageModule {}
