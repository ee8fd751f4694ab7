import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsISO8601, IsOptional, IsString, IsUUID, Length } from 'class-validator';
import type { UsageGroupBy } from '../../usage/usage.repository';

const GROUP_BY: UsageGroupBy[] = ['key', 'model', 'account', 'day'];

export class UsageQueryDto {
  @ApiPropertyOptional({ format: 'date-time', description: 'inclusive; default: `to` minus 30 days. No zone means UTC.' })
  @IsOptional()
  @IsISO8601({ strict: true }, { message: 'from must be an ISO 8601 timestamp' })
  from?: string;

  @ApiPropertyOptional({ format: 'date-time', description: 'exclusive; default: now. No zone means UTC.' })
  @IsOptional()
  @IsISO8601({ strict: true }, { message: 'to must be an ISO 8601 timestamp' })
  to?: string;

  @ApiPropertyOptional({ format: 'uuid' })
  @IsOptional()
  @IsUUID('all', { message: 'key_id must be a key id (uuid)' })
  key_id?: string;

  @ApiPropertyOptional()
  @IsOptional()
  @IsString({ message: 'model must be a string' })
  @Length(1, 128, { message: 'model must be 1 to 128 characters' })
  model?: string;

  @ApiPropertyOptional({ enum: GROUP_BY })
  @IsOptional()
  @IsIn(GROUP_BY, { message: `group_by must be one of: ${GROUP_BY.join(', ')}` })
  group_by?: UsageGroupBy;
}
