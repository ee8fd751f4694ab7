import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';
import { decimalColumn } from '../database/decimal.transformer';

@Entity('api_keys')
export class ApiKey {
  @PrimaryGeneratedColumn('uuid')
  id: string;

  @Column('text')
  name: string;

  /** SHA-256 hex of the secret; the secret itself is never stored. */
  @Column('text', { unique: true })
  key_hash: string;

  @Column('text')
  key_prefix: string;

  @Column('integer', { nullable: true })
  rate_limit_per_minute: number | null;

  @Column('text', { array: true, nullable: true })
  models: string[] | null;

  @Column('timestamptz', { nullable: true })
  expires_at: Date | null;

  @Column('numeric', { nullable: true, transformer: decimalColumn })
  credit_limit: number | null;

  @Column('numeric', { default: 0, transformer: decimalColumn })
  credits_used: number;

  @Column('jsonb', { default: {} })
  metadata: Record<string, unknown>;

  @Column('timestamptz', { default: () => 'now()' })
  created_at: Date;

  @Column('timestamptz', { nullable: true })
  last_used_at: Date | null;

  @Column('timestamptz', { nullable: true })
  revoked_at: Date | null;
}
