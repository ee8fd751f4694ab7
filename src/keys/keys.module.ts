import { Module } from '@nestjs/common';
import { KeyAuthenticator } from './key-authenticator';
import { KeysRepository } from './keys.repository';
import { KeysService } from './keys.service';

@Module({
  providers: [KeysRepository, KeyAuthenticator, KeysService],
  exports: [KeyAuthenticator, KeysService, KeysRepository],
})
export class KeysModule {}
