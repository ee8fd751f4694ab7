import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { KeysModule } from '../keys/keys.module';
import { AdminTokenGuard } from './admin-token.guard';
import { ApiKeyGuard } from './api-key.guard';

@Module({
  imports: [KeysModule],
  providers: [{ provide: APP_GUARD, useClass: ApiKeyGuard }, AdminTokenGuard],
  exports: [AdminTokenGuard],
})
export class AuthModule {}
