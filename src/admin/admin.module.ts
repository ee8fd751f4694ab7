import { Module } from '@nestjs/common';
import { KeysModule } from '../keys/keys.module';
import { AdminKeysController } from './admin-keys.controller';

@Module({
  imports: [KeysModule],
  controllers: [AdminKeysController],
})
export class AdminModule {}
