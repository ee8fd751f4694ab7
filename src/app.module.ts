import { DynamicModule, Module } from '@nestjs/common';
import { APP_FILTER, APP_PIPE } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { LoggerModule } from 'nestjs-pino';
import { AdminModule } from './admin/admin.module';
import { AuthModule } from './auth/auth.module';
import { CompletionsModule } from './completions/completions.module';
import { EnvelopeFilter } from './common/envelope.filter';
import { loggerOptions } from './common/logger.options';
import { createValidationPipe } from './common/validation';
import type { AppConfig } from './config/app-config';
import { ConfigModule } from './config/config.module';
import { dataSourceOptions } from './database/data-source-options';
import { HealthModule } from './health/health.module';
import { KeysModule } from './keys/keys.module';
import { MetricsModule } from './metrics/metrics.module';
import { ModelsModule } from './models/models.module';
import { RedisModule } from './redis/redis.module';

export interface AppModuleOptions {
  config: AppConfig;
  /** The database to use: the real server's URL, or the embedded PGlite socket's. */
  databaseUrl: string;
  /** PGlite serves one statement at a time; a large pool only queues on its side. */
  databasePoolSize: number;
}

@Module({})
export class AppModule {
  static forRoot({ config, databaseUrl, databasePoolSize }: AppModuleOptions): DynamicModule {
    return {
      module: AppModule,
      imports: [
        LoggerModule.forRoot(loggerOptions(config.log_level)),
        ConfigModule.forRoot(config),
        TypeOrmModule.forRoot(dataSourceOptions(databaseUrl, databasePoolSize)),
        RedisModule,
        KeysModule,
        AuthModule,
        HealthModule,
        MetricsModule,
        ModelsModule,
        CompletionsModule,
        AdminModule,
      ],
      providers: [
        { provide: APP_FILTER, useClass: EnvelopeFilter },
        { provide: APP_PIPE, useFactory: createValidationPipe },
      ],
    };
  }
}
