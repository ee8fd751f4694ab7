import { Inject, Injectable } from '@nestjs/common';
import { GatewayError } from '../common/gateway-error';
import { isStorableText } from '../common/storable-text';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { isDatabaseUnavailable } from '../database/database-errors';
import { KeyInvalidation } from './key-invalidation';
import { generateApiKey, hashApiKey, keyPrefixOf } from './key-format';
import { KeyObject, toKeyObject } from './key-object';
import { KeyChanges, KeysRepository, KeyStatus } from './keys.repository';

export interface KeyFields {
  name?: string;
  rate_limit_per_minute?: number | null;
  models?: string[] | null;
  expires_at?: string | null;
  credit_limit?: number | null;
  metadata?: Record<string, unknown> | null;
}

export interface KeyPage {
  object: 'list';
  data: KeyObject[];
  has_more: boolean;
  next_cursor: string | null;
}

const MAX_METADATA_BYTES = 16 * 1024;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Key management for the admin API. Every change invalidates the key on this replica at once. */
@Injectable()
export class KeysService {
  private readonly modelIds: Set<string>;

  constructor(
    private readonly repository: KeysRepository,
    private readonly invalidation: KeyInvalidation,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.modelIds = new Set(config.models.map((m) => m.id));
  }

  async create(fields: KeyFields & { name: string }, now = new Date()): Promise<KeyObject & { key: string }> {
    this.checkModels(fields.models);
    this.checkMetadata(fields.metadata);
    const expiresAt = fields.expires_at ? new Date(fields.expires_at) : null;
    if (expiresAt && expiresAt.getTime() <= now.getTime()) {
      throw GatewayError.invalidValue('expires_at', 'expires_at must be in the future.');
    }
    const secret = generateApiKey();
    const row = await this.store(() =>
      this.repository.insert({
        name: fields.name,
        key_hash: hashApiKey(secret),
        key_prefix: keyPrefixOf(secret),
        rate_limit_per_minute: fields.rate_limit_per_minute ?? null,
        models: fields.models ?? null,
        expires_at: expiresAt,
        credit_limit: fields.credit_limit ?? null,
        metadata: fields.metadata ?? {},
        // Millisecond precision, so the pagination cursor round-trips exactly.
        created_at: now,
      }),
    );
    return { ...toKeyObject(row), key: secret };
  }

  async list(limit: number, cursor?: string, status?: KeyStatus): Promise<KeyPage> {
    const after = cursor === undefined ? undefined : decodeCursor(cursor);
    const { rows, hasMore } = await this.store(() => this.repository.list({ limit, after, status }));
    const last = rows.at(-1);
    return {
      object: 'list',
      data: rows.map(toKeyObject),
      has_more: hasMore,
      next_cursor: hasMore && last ? encodeCursor(last.created_at, last.id) : null,
    };
  }

  async get(id: string): Promise<KeyObject> {
    const row = await this.store(() => this.repository.findById(checkId(id)));
    if (!row) throw keyNotFound();
    return toKeyObject(row);
  }

  async update(id: string, fields: KeyFields): Promise<KeyObject> {
    checkId(id);
    if (fields.name === null) throw GatewayError.invalidValue('name', 'name must be a string');
    this.checkModels(fields.models);
    this.checkMetadata(fields.metadata);
    const changes: KeyChanges = {};
    if (fields.name !== undefined && fields.name !== null) changes.name = fields.name;
    if (fields.rate_limit_per_minute !== undefined) changes.rate_limit_per_minute = fields.rate_limit_per_minute;
    if (fields.models !== undefined) changes.models = fields.models;
    if (fields.expires_at !== undefined) changes.expires_at = fields.expires_at === null ? null : new Date(fields.expires_at);
    if (fields.credit_limit !== undefined) changes.credit_limit = fields.credit_limit;
    if (fields.metadata !== undefined) changes.metadata = fields.metadata ?? {};
    const row = await this.store(() => this.repository.update(id, changes));
    if (!row) throw keyNotFound();
    await this.invalidation.changed(id);
    return toKeyObject(row);
  }

  /** Revoking twice keeps the first revocation time. */
  async revoke(id: string, now = new Date()): Promise<KeyObject> {
    const existing = await this.store(() => this.repository.findById(checkId(id)));
    if (!existing) throw keyNotFound();
    const row = existing.revoked_at ? existing : await this.store(() => this.repository.update(id, { revoked_at: now }));
    await this.invalidation.changed(id);
    return toKeyObject(row ?? existing);
  }

  private checkModels(models: string[] | null | undefined): void {
    models?.forEach((model, i) => {
      if (!this.modelIds.has(model)) throw GatewayError.invalidValue(`models[${i}]`, `Unknown model '${model.slice(0, 100)}'.`);
    });
  }

  private checkMetadata(metadata: Record<string, unknown> | null | undefined): void {
    if (!metadata) return;
    const text = JSON.stringify(metadata);
    if (text.length > MAX_METADATA_BYTES) {
      throw GatewayError.invalidValue('metadata', `metadata must serialize to at most ${MAX_METADATA_BYTES} bytes.`);
    }
    if (!isStorableText(metadata)) {
      throw GatewayError.invalidValue('metadata', 'metadata must not contain NUL characters or unpaired surrogates.');
    }
  }

  /** The admin API answers 503 `store_unavailable` while Postgres is unreachable (DESIGN §6.6). */
  private async store<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      if (isDatabaseUnavailable(err)) throw GatewayError.storeUnavailable('The key store');
      throw err;
    }
  }
}

function checkId(id: string): string {
  if (!UUID.test(id)) throw keyNotFound();
  return id;
}

function keyNotFound(): GatewayError {
  return GatewayError.notFound('No API key with that id.');
}

function encodeCursor(createdAt: Date, id: string): string {
  return Buffer.from(`${createdAt.toISOString()}|${id}`).toString('base64url');
}

function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  const [iso, id] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  const createdAt = new Date(iso ?? '');
  if (!id || !UUID.test(id) || Number.isNaN(createdAt.getTime())) {
    throw GatewayError.invalidValue('cursor', 'cursor is not a value this API returned.');
  }
  return { createdAt, id };
}
