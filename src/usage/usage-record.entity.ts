import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { decimalColumn } from '../database/decimal.transformer';

export type UsageStatus = 'success' | 'error' | 'cancelled';

/** One row per request that reached the account pool (DESIGN §5, §6.11). */
@Entity('usage_records')
export class UsageRecord {
  @PrimaryGeneratedColumn({ type: 'bigint' })
  id: number;

  /** Unique, so a retried batch never doubles a row. */
  @Column('text', { unique: true })
  request_id: string;

  @Column('uuid')
  api_key_id: string;

  @Column('text')
  model: string;

  @Column('text', { nullable: true })
  account_id: string | null;

  @Column('text')
  status: UsageStatus;

  @Column('integer')
  http_status: number;

  @Column('integer', { default: 0 })
  prompt_tokens: number;

  @Column('integer', { default: 0 })
  completion_tokens: number;

  @Column('integer', { default: 0 })
  total_tokens: number;

  @Column('numeric', { default: 0, transformer: decimalColumn })
  credits: number;

  @Column('boolean', { default: false })
  usage_estimated: boolean;

  @Column('boolean', { default: false })
  stream: boolean;

  @Column('integer')
  latency_ms: number;

  @Column('integer', { nullable: true })
  ttft_ms: number | null;

  @Column('text', { nullable: true })
  error_code: string | null;

  @Column('timestamptz', { default: () => 'now()' })
  created_at: Date;
}
