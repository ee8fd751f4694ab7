import { ApiProperty, ApiPropertyOptional, PartialType } from '@nestjs/swagger';
import {
  ArrayMaxSize,
  ArrayNotEmpty,
  IsArray,
  IsIn,
  IsInt,
  IsISO8601,
  IsNumber,
  IsObject,
  IsOptional,
  IsString,
  Length,
  Matches,
  Max,
  Min,
} from 'class-validator';
import { Transform } from 'class-transformer';

const MAX_LIST_LIMIT = 500;

export class CreateKeyDto {
  @ApiProperty({ minLength: 1, maxLength: 100, example: 'billing-service' })
  @IsString({ message: 'name must be a string' })
  @Length(1, 100, { message: 'name must be 1 to 100 characters' })
  // Postgres text cannot hold NUL.
  // eslint-disable-next-line no-control-regex
  @Matches(/^[^\u0000]*$/, { message: 'name must not contain NUL characters' })
  name: string;

  @ApiPropertyOptional({ minimum: 1, maximum: 1_000_000, nullable: true, description: 'null: the configured default' })
  @IsOptional()
  @IsInt({ message: 'rate_limit_per_minute must be an integer' })
  @Min(1, { message: 'rate_limit_per_minute must be at least 1' })
  @Max(1_000_000, { message: 'rate_limit_per_minute must be at most 1000000' })
  rate_limit_per_minute?: number | null;

  @ApiPropertyOptional({ type: [String], nullable: true, description: 'null: every model; an empty list is refused' })
  @IsOptional()
  @IsArray({ message: 'models must be a list of model ids or null' })
  @ArrayNotEmpty({ message: 'models must not be empty; use null for every model' })
  @ArrayMaxSize(1000, { message: 'models may list at most 1000 ids' })
  @IsString({ each: true, message: 'models must be a list of model ids' })
  models?: string[] | null;

  @ApiPropertyOptional({ format: 'date-time', nullable: true })
  @IsOptional()
  @IsISO8601({ strict: true }, { message: 'expires_at must be an ISO 8601 timestamp' })
  expires_at?: string | null;

  @ApiPropertyOptional({ minimum: 0, nullable: true, description: 'credits over the key’s life; null: unlimited' })
  @IsOptional()
  @IsNumber({ allowNaN: false, allowInfinity: false }, { message: 'credit_limit must be a number' })
  @Min(0, { message: 'credit_limit must not be negative' })
  credit_limit?: number | null;

  @ApiPropertyOptional({ type: 'object', additionalProperties: true })
  @IsOptional()
  @IsObject({ message: 'metadata must be an object' })
  metadata?: Record<string, unknown> | null;
}

/** Any field of POST; `null` clears a nullable field (and is refused for `name`). */
export class UpdateKeyDto extends PartialType(CreateKeyDto) {}

export class ListKeysQuery {
  @ApiPropertyOptional({ minimum: 1, maximum: MAX_LIST_LIMIT, default: 50 })
  @IsOptional()
  @Transform(({ value }) => (typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value))
  @IsInt({ message: 'limit must be an integer' })
  @Min(1, { message: 'limit must be at least 1' })
  @Max(MAX_LIST_LIMIT, { message: `limit must be at most ${MAX_LIST_LIMIT}` })
  limit?: number;

  @ApiPropertyOptional({ description: 'next_cursor of the previous page' })
  @IsOptional()
  @IsString({ message: 'cursor must be a string' })
  cursor?: string;

  @ApiPropertyOptional({ enum: ['active', 'revoked', 'expired'] })
  @IsOptional()
  @IsIn(['active', 'revoked', 'expired'], { message: 'status must be one of: active, revoked, expired' })
  status?: 'active' | 'revoked' | 'expired';
}
