import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, Repository } from 'typeorm';
import { ApiKey } from './api-key.entity';

export type KeyStatus = 'active' | 'revoked' | 'expired';

export interface KeyListQuery {
  limit: number;
  /** The (created_at, id) of the last row of the previous page. */
  after?: { createdAt: Date; id: string };
  status?: KeyStatus;
}

export type KeyChanges = Partial<
  Pick<ApiKey, 'name' | 'rate_limit_per_minute' | 'models' | 'expires_at' | 'credit_limit' | 'metadata' | 'revoked_at'>
>;

/** Every SQL statement about api_keys lives here. */
@Injectable()
export class KeysRepository {
  private readonly keys: Repository<ApiKey>;

  constructor(@InjectDataSource() private readonly dataSource: DataSource) {
    this.keys = dataSource.getRepository(ApiKey);
  }

  async insert(fields: Omit<ApiKey, 'id' | 'credits_used' | 'last_used_at' | 'revoked_at'>): Promise<ApiKey> {
    return this.keys.save(this.keys.create({ ...fields, credits_used: 0, last_used_at: null, revoked_at: null }));
  }

  findById(id: string): Promise<ApiKey | null> {
    return this.keys.findOneBy({ id });
  }

  findByHash(keyHash: string): Promise<ApiKey | null> {
    return this.keys.findOneBy({ key_hash: keyHash });
  }

  /** Newest first, keyset-paginated on (created_at, id). Fetches one extra row to tell `has_more`. */
  async list(query: KeyListQuery): Promise<{ rows: ApiKey[]; hasMore: boolean }> {
    const qb = this.keys.createQueryBuilder('k').orderBy('k.created_at', 'DESC').addOrderBy('k.id', 'DESC').limit(query.limit + 1);
    if (query.after) {
      qb.andWhere('(k.created_at, k.id) < (:createdAt, :id)', { createdAt: query.after.createdAt, id: query.after.id });
    }
    if (query.status === 'revoked') qb.andWhere('k.revoked_at IS NOT NULL');
    if (query.status === 'expired') qb.andWhere('k.revoked_at IS NULL AND k.expires_at <= now()');
    if (query.status === 'active') qb.andWhere('k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())');
    const rows = await qb.getMany();
    return { rows: rows.slice(0, query.limit), hasMore: rows.length > query.limit };
  }

  /** Applies the changes and returns the updated row, or null when no key has that id. */
  async update(id: string, changes: KeyChanges): Promise<ApiKey | null> {
    // TypeORM's deep-partial type cannot see through a jsonb Record; the fields are plain columns.
    if (Object.keys(changes).length > 0) await this.keys.update({ id }, changes as Parameters<Repository<ApiKey>["update"]>[1]);
    return this.findById(id);
  }

  /** One statement for the whole batch; a key used a thousand times costs one row update. */
  /** `lastUsed`: key id → unix ms. */
  async touchLastUsed(lastUsed: Map<string, number>): Promise<void> {
    if (lastUsed.size === 0) return;
    const ids = [...lastUsed.keys()];
    const times = ids.map((id) => new Date(lastUsed.get(id)!).toISOString());
    await this.dataSource.query(
      `UPDATE api_keys k SET last_used_at = GREATEST(COALESCE(k.last_used_at, v.t), v.t)
         FROM unnest($1::uuid[], $2::timestamptz[]) AS v(id, t) WHERE k.id = v.id`,
      [ids, times],
    );
  }
}
