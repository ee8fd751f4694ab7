import { Module } from '@nestjs/common';
import { KeyAuthenticator } from './key-authenticator';
import { KeyInvalidation } from './key-invalidation';
import { KeysRepository } from './keys.repository';
import { KeysService } from './keys.service';

@Module({
  providers: [KeysRepository, KeyAuthenticator, KeyInvalidation, KeysService],
  exports: [KeyAuthenticator, KeysService, KeysRepository],
})
export class KeysModule {}
