import 'reflect-metadata';
import { Type } from 'class-transformer';
import {
  ArrayNotEmpty,
  IsArray,
  IsIn,
  IsInt,
  IsNumber,
  IsOptional,
  IsString,
  Matches,
  Max,
  Min,
  MinLength,
  ValidateNested,
} from 'class-validator';

/*
 * The shape of drawbridge.yaml (DESIGN §2.2), validated once at start-up. Property names are the
 * file's own snake_case, so a problem's path reads exactly as the operator wrote it.
 */

const POSITIVE = { message: 'must be a positive integer' };
const NON_NEGATIVE = { message: 'must be a non-negative integer' };
const INTEGER = { message: 'must be an integer' };
const NUMBER = { message: 'must be a number' };
const STRING = { message: 'must be a string' };

export class ServerSection {
  /** 0 picks a free port (the tests use it). */
  @IsInt(INTEGER) @Min(0, { message: 'must be an integer from 0 to 65535' }) @Max(65535, { message: 'must be an integer from 0 to 65535' })
  port = 8080;

  @IsString(STRING)
  host = '0.0.0.0';

  /** bytes-library units: 10mb = 10 MiB; a bare number is bytes. */
  @Matches(/^\d+(\.\d+)?\s*(b|kb|mb|gb)?$/i, { message: 'must be a size such as 10mb, 512kb or 1048576' })
  body_limit: string = '10mb';

  @IsInt(INTEGER) @Min(0, NON_NEGATIVE)
  drain_timeout_ms = 30000;
}

export class AdminSection {
  @IsOptional() @IsString(STRING) @MinLength(32, { message: 'must be at least 32 characters' })
  auth_token?: string;
}

export class RateLimitSection {
  @IsInt(INTEGER) @Min(1, POSITIVE) @Max(1_000_000, { message: 'must be at most 1000000' })
  default_per_minute = 60;

  @IsIn(['open', 'closed'], { message: 'must be one of: open, closed' })
  on_store_error: 'open' | 'closed' = 'open';
}

export class PoolSection {
  @IsInt(INTEGER) @Min(1, POSITIVE)
  queue_timeout_ms = 30000;

  @IsInt(INTEGER) @Min(0, NON_NEGATIVE)
  max_queue = 1000;

  @IsInt(INTEGER) @Min(0, NON_NEGATIVE) @Max(10, { message: 'must be at most 10' })
  retries = 2;

  @IsInt(INTEGER) @Min(1, POSITIVE)
  cooldown_ms = 30000;

  /** With Redis: how long a slot lease lives unrenewed, so a crashed replica's slots come back. */
  @IsInt(INTEGER) @Min(1000, { message: 'must be an integer of at least 1000' })
  lease_ms = 15000;
}

export class CreditsSection {
  @IsNumber({}, NUMBER) @Min(0, { message: 'must not be negative' })
  per_request = 0;

  @IsNumber({}, NUMBER) @Min(0, { message: 'must not be negative' })
  per_1k_prompt_tokens = 0;

  @IsNumber({}, NUMBER) @Min(0, { message: 'must not be negative' })
  per_1k_completion_tokens = 0;
}

export class ModelSection {
  @IsString({ message: 'is required' }) @Matches(/^[\w.:/@-]{1,128}$/, { message: 'must be 1-128 letters, digits or . : / @ - _' })
  id: string;

  @IsString(STRING)
  owned_by = 'drawbridge';

  @IsOptional() @IsString(STRING) @MinLength(1, { message: 'must not be empty' })
  upstream_model?: string;

  @ValidateNested() @Type(() => CreditsSection)
  credits: CreditsSection = new CreditsSection();
}

export class TimeoutsSection {
  @IsInt(INTEGER) @Min(1, POSITIVE)
  connect_ms = 5000;

  @IsInt(INTEGER) @Min(1, POSITIVE)
  first_byte_ms = 60000;

  @IsInt(INTEGER) @Min(1, POSITIVE)
  idle_ms = 60000;
}

export const PROVIDERS = ['openai', 'anthropic', 'mock'] as const;
export type ProviderKind = (typeof PROVIDERS)[number];

export class AccountSection {
  @IsString({ message: 'is required' }) @Matches(/^[\w.:@-]{1,64}$/, { message: 'must be 1-64 letters, digits or . : @ - _' })
  id: string;

  @IsIn(PROVIDERS, { message: `must be one of: ${PROVIDERS.join(', ')}` })
  provider: ProviderKind;

  @IsOptional() @Matches(/^https?:\/\/\S+$/, { message: 'must be an http(s) URL' })
  base_url?: string;

  @IsOptional() @IsString(STRING) @MinLength(1, { message: 'must not be empty' })
  api_key?: string;

  @IsInt(POSITIVE) @Min(1, POSITIVE)
  max_concurrency: number;

  @IsOptional() @IsArray({ message: 'must be a list of model ids' }) @ArrayNotEmpty({ message: 'must not be empty (omit it for every model)' })
  @IsString({ each: true, message: 'must be a list of model ids' })
  models?: string[];

  @ValidateNested() @Type(() => TimeoutsSection)
  timeouts: TimeoutsSection = new TimeoutsSection();

  @IsInt(INTEGER) @Min(1, POSITIVE)
  max_tokens_default = 4096;

  /** mock only: delay before the first byte. */
  @IsInt(INTEGER) @Min(0, NON_NEGATIVE)
  latency_ms = 0;

  /** mock only: streaming pace; 0 sends every chunk at once. */
  @IsNumber({}, NUMBER) @Min(0, { message: 'must not be negative' })
  tokens_per_second = 0;
}

export class RedisSection {
  /** Prefix of every Redis key, so several deployments (or test runs) can share one Redis. */
  @IsString(STRING) @Matches(/^[\w:.-]{0,64}$/, { message: 'must be up to 64 letters, digits or : . - _' })
  key_prefix = 'drawbridge:';
}

export class ConfigFile {
  @ValidateNested() @Type(() => ServerSection)
  server: ServerSection = new ServerSection();

  @ValidateNested() @Type(() => AdminSection)
  admin: AdminSection = new AdminSection();

  @ValidateNested() @Type(() => RateLimitSection)
  rate_limit: RateLimitSection = new RateLimitSection();

  @ValidateNested() @Type(() => PoolSection)
  pool: PoolSection = new PoolSection();

  @ValidateNested() @Type(() => RedisSection)
  redis: RedisSection = new RedisSection();

  @IsArray({ message: 'must be a list' }) @ArrayNotEmpty({ message: 'must list at least one model' })
  @ValidateNested({ each: true }) @Type(() => ModelSection)
  models: ModelSection[];

  @IsArray({ message: 'must be a list' }) @ArrayNotEmpty({ message: 'must list at least one account' })
  @ValidateNested({ each: true }) @Type(() => AccountSection)
  accounts: AccountSection[];
}
