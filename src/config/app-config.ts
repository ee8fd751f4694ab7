import type { AccountSection, ModelSection, PoolSection, RateLimitSection } from './config.schema';
import type { Secret } from './secret';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface AccountConfig extends Omit<AccountSection, 'api_key'> {
  api_key?: Secret;
}

/** The one validated, typed configuration object; nothing else reads `process.env`. */
export interface AppConfig {
  server: {
    port: number;
    host: string;
    body_limit_bytes: number;
    drain_timeout_ms: number;
  };
  /** Undefined only before the embedded-mode token is generated (see admin-token.ts). */
  admin_token?: Secret;
  rate_limit: RateLimitSection;
  pool: PoolSection;
  models: ModelSection[];
  accounts: AccountConfig[];
  /** Unset → embedded PGlite under `data_dir`. */
  database_url?: Secret;
  /** Unset → in-process limiter, slot ledger and cooldowns. */
  redis_url?: Secret;
  redis_key_prefix: string;
  data_dir: string;
  log_level: LogLevel;
  /** Where the config came from: a file path, or 'built-in demo'. */
  source: string;
}

export const APP_CONFIG = Symbol('APP_CONFIG');
