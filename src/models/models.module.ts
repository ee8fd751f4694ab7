import { Module } from '@nestjs/common';
import { RateLimitModule } from '../rate-limit/rate-limit.module';
import { ModelsController } from './models.controller';

@Module({ imports: [RateLimitModule], controllers: [ModelsController] })
export class ModelsModule {}
