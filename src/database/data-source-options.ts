import type { DataSourceOptions } from 'typeorm';
import { InitialSchema1764000000000 } from '../../migrations/1764000000000-initial-schema';
import { ApiKey } from '../keys/api-key.entity';
import { UsageRecord } from '../usage/usage-record.entity';

export const ENTITIES = [ApiKey, UsageRecord];
export const MIGRATIONS = [InitialSchema1764000000000];

/**
 * The one options object behind both the app's TypeORM module and the migration CLI: the same
 * `pg` driver, entities and migrations whether the URL points at a real server or at the
 * embedded PGlite socket.
 */
export function dataSourceOptions(url: string, poolSize = 10): DataSourceOptions {
  return {
    type: 'postgres',
    url,
    entities: ENTITIES,
    migrations: MIGRATIONS,
    migrationsTableName: 'typeorm_migrations',
    migrationsTransactionMode: 'each',
    synchronize: false,
    parseInt8: true,
    poolSize,
    // Fail fast instead of hanging a request when the database is down (DESIGN §6.6).
    connectTimeoutMS: 3000,
    extra: { query_timeout: 10000, idleTimeoutMillis: 30000 },
    logging: false,
  };
}
