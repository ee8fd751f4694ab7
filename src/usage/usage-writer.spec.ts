import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Logger } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../database/data-source-options';
import { KeyAuthenticator, toAuthenticatedKey } from '../keys/key-authenticator';
import { KeysRepository } from '../keys/keys.repository';
import { UsageWriter, UsageWriterOptions } from './usage-writer';
import { NewUsageRecord, UsageRepository } from './usage.repository';

const DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** The real repository, remembering the size of every batch it was asked to write. */
class CountingRepository extends UsageRepository {
  readonly batches: number[] = [];

  override recordBatch(records: readonly NewUsageRecord[]): Promise<number> {
    this.batches.push(records.length);
    return super.recordBatch(records);
  }
}

/** A TCP hop in front of Postgres that can play "unreachable": it cuts open and new connections. */
class SwitchableProxy {
  private readonly server = net.createServer((client) => this.accept(client));
  private readonly sockets = new Set<net.Socket>();
  private up = true;

  constructor(private readonly target: { host: string; port: number }) {}

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as net.AddressInfo).port;
  }

  down(): void {
    this.up = false;
    for (const socket of this.sockets) socket.destroy();
  }

  restore(): void {
    this.up = true;
  }

  close(): Promise<void> {
    this.down();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    if (!this.up) return void client.destroy();
    const upstream = net.connect(this.target.port, this.target.host);
    for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
      this.sockets.add(a);
      a.on('error', () => b.destroy());
      a.on('close', () => {
        this.sockets.delete(a);
        b.destroy();
      });
      a.pipe(b);
    }
  }
}

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('usage writer', () => {
  let db: DataSource;
  let keysRepository: KeysRepository;
  const writers: UsageWriter[] = [];
  const model = `writer-spec-${randomBytes(4).toString('hex')}`;

  before(async () => {
    // The writer's outage and refusal logs are expected here; keep the test output readable.
    Logger.overrideLogger(false);
    db = await new DataSource(dataSourceOptions(DATABASE_URL, 4)).initialize();
    keysRepository = new KeysRepository(db);
  });

  after(async () => {
    for (const writer of writers) await writer.onApplicationShutdown();
    await db.destroy();
  });

  function writerOn(repository: UsageRepository, options: Partial<UsageWriterOptions>, keys = new KeyAuthenticator(keysRepository)) {
    const writer = new UsageWriter(repository, keys, { shutdownTimeoutMs: 2_000, ...options });
    writer.onModuleInit();
    writers.push(writer);
    return writer;
  }

  function usage(fields: Partial<NewUsageRecord> = {}): NewUsageRecord {
    return {
      request_id: `req-${randomUUID()}`,
      api_key_id: randomUUID(),
      model,
      account_id: 'acct-1',
      status: 'success',
      http_status: 200,
      prompt_tokens: 10,
      completion_tokens: 5,
      total_tokens: 15,
      credits: 0,
      usage_estimated: false,
      stream: false,
      latency_ms: 12,
      ttft_ms: null,
      error_code: null,
      ...fields,
    };
  }

  async function stored(requestIds: string[]): Promise<number> {
    const rows = (await db.query('SELECT count(*)::int AS n FROM usage_records WHERE request_id = ANY($1)', [requestIds])) as { n: number }[];
    return rows[0].n;
  }

  async function creditsUsed(keyId: string): Promise<number> {
    return (await keysRepository.findById(keyId))!.credits_used;
  }

  function createKey() {
    return keysRepository.insert({
      name: 'usage writer spec',
      key_hash: randomBytes(32).toString('hex'),
      key_prefix: 'db-usagespe',
      rate_limit_per_minute: null,
      models: null,
      expires_at: null,
      credit_limit: null,
      metadata: {},
      created_at: new Date(),
    });
  }

  it('writes full batches at once, one statement each, and keeps the remainder for the timer', async () => {
    const repository = new CountingRepository(db);
    const writer = writerOn(repository, { batchSize: 10, flushIntervalMs: 3_600_000 });
    const records = Array.from({ length: 25 }, () => usage());
    for (const record of records) writer.record(record);
    const ids = records.map((r) => r.request_id);
    await until(async () => (await stored(ids)) === 20 && writer.pending() === 5, '20 rows stored');
    assert.deepEqual(repository.batches, [10, 10]);
    await writer.flush();
    assert.equal(writer.pending(), 0);
    assert.equal(await stored(ids), 25);
    assert.deepEqual(repository.batches, [10, 10, 5]);
  });

  it('writes a partial batch by time without being asked', async () => {
    const repository = new CountingRepository(db);
    const writer = writerOn(repository, { batchSize: 200, flushIntervalMs: 100 });
    const records = [usage(), usage(), usage()];
    for (const record of records) writer.record(record);
    await until(() => writer.pending() === 0, 'the timer to write the batch');
    assert.equal(await stored(records.map((r) => r.request_id)), 3);
    assert.deepEqual(repository.batches, [3]);
  });

  it('stores created_at as given, or the moment of recording', async () => {
    const writer = writerOn(new UsageRepository(db), { flushIntervalMs: 3_600_000 });
    const dated = usage({ created_at: new Date('2002-02-02T02:02:02.000Z') });
    const before = Date.now();
    const undated = usage();
    writer.record(dated);
    writer.record(undated);
    await writer.flush();
    const rows = (await db.query('SELECT request_id, created_at FROM usage_records WHERE request_id = ANY($1)', [
      [dated.request_id, undated.request_id],
    ])) as { request_id: string; created_at: Date }[];
    const at = new Map(rows.map((r) => [r.request_id, r.created_at.getTime()]));
    assert.equal(at.get(dated.request_id), Date.parse('2002-02-02T02:02:02.000Z'));
    assert.ok(Math.abs(at.get(undated.request_id)! - before) < 60_000);
  });

  it('counts a request_id stored twice once, and its credits once', async () => {
    const key = await createKey();
    const repository = new UsageRepository(db);
    const writer = writerOn(repository, { flushIntervalMs: 3_600_000 });
    const first = usage({ api_key_id: key.id, credits: 1.25 });
    writer.record(first);
    writer.record({ ...first }); // the same request twice in one batch
    await writer.flush();
    writer.record({ ...first }); // and again in a later batch
    await writer.flush();
    assert.equal(await repository.recordBatch([{ ...first }]), 0, 'a retried batch inserts nothing');
    assert.equal(await stored([first.request_id]), 1);
    assert.equal(await creditsUsed(key.id), 1.25);
  });

  it('adds the credits of a batch to each key in the same statement', async () => {
    const [a, b] = [await createKey(), await createKey()];
    const repository = new UsageRepository(db);
    const inserted = await repository.recordBatch([
      usage({ api_key_id: a.id, credits: 0.000001 }),
      usage({ api_key_id: a.id, credits: 2.5 }),
      usage({ api_key_id: b.id, credits: 4 }),
      usage({ api_key_id: b.id, credits: 0 }),
    ]);
    assert.equal(inserted, 4);
    assert.equal(await creditsUsed(a.id), 2.500001);
    assert.equal(await creditsUsed(b.id), 4);
  });

  it('moves the cached key’s credits_used at once, before anything is written', async () => {
    const row = await createKey();
    const keys = new KeyAuthenticator(keysRepository);
    keys.cache.set(toAuthenticatedKey(row));
    const writer = writerOn(new UsageRepository(db), { flushIntervalMs: 3_600_000 }, keys);
    writer.record(usage({ api_key_id: row.id, credits: 0.1 }));
    writer.record(usage({ api_key_id: row.id, credits: 0.2 }));
    assert.equal(keys.cache.findById(row.id)!.creditsUsed, 0.3);
    assert.equal(writer.pending(), 2);
    await writer.flush();
    assert.equal(await creditsUsed(row.id), 0.3);
  });

  it('writes what is queued when the application shuts down', async () => {
    const writer = writerOn(new UsageRepository(db), { flushIntervalMs: 3_600_000 });
    const records = [usage(), usage()];
    for (const record of records) writer.record(record);
    assert.equal(writer.pending(), 2);
    await writer.onApplicationShutdown();
    assert.equal(writer.pending(), 0);
    assert.equal(await stored(records.map((r) => r.request_id)), 2);
  });

  it('drops only the rows Postgres refuses and writes the rest of their batch', async () => {
    const repository = new CountingRepository(db);
    const writer = writerOn(repository, { batchSize: 200, flushIntervalMs: 3_600_000 });
    const good = Array.from({ length: 6 }, () => usage());
    const bad = [usage({ api_key_id: 'not-a-uuid' }), usage({ prompt_tokens: 2 ** 40 })];
    for (const record of [good[0], bad[0], ...good.slice(1, 4), bad[1], ...good.slice(4)]) writer.record(record);
    await writer.flush(10_000);
    assert.equal(writer.pending(), 0);
    assert.equal(writer.rejected, 2);
    assert.equal(await stored(good.map((r) => r.request_id)), 6);
    assert.equal(await stored(bad.map((r) => r.request_id)), 0);
  });

  describe('while Postgres is unreachable', () => {
    let proxy: SwitchableProxy;
    let proxied: DataSource;

    before(async () => {
      const url = new URL(DATABASE_URL);
      proxy = new SwitchableProxy({ host: url.hostname, port: Number(url.port || 5432) });
      url.host = `127.0.0.1:${await proxy.listen()}`;
      proxied = await new DataSource(dataSourceOptions(url.toString(), 2)).initialize();
    });

    after(async () => {
      proxy.restore();
      await proxied.destroy();
      await proxy.close();
    });

    it('keeps the records, retries, and writes each once when Postgres returns', async () => {
      const key = await createKey();
      const repository = new CountingRepository(proxied);
      const writer = writerOn(repository, { batchSize: 5, flushIntervalMs: 50, minBackoffMs: 20, maxBackoffMs: 100 });
      proxy.down();
      const records = Array.from({ length: 12 }, () => usage({ api_key_id: key.id, credits: 1 }));
      for (const record of records) writer.record(record);
      await until(() => repository.batches.length >= 4, 'several failed attempts');
      assert.equal(writer.pending(), 12);
      assert.equal(await stored(records.map((r) => r.request_id)), 0);

      proxy.restore();
      await until(() => writer.pending() === 0, 'the records to be written after the outage');
      assert.equal(await stored(records.map((r) => r.request_id)), 12);
      assert.equal(await creditsUsed(key.id), 12);
      assert.equal(writer.dropped, 0);
    });

    it('bounds the queue by dropping the oldest records, and counts them', async () => {
      const repository = new CountingRepository(proxied);
      const writer = writerOn(repository, { batchSize: 10, maxPending: 100, flushIntervalMs: 50, minBackoffMs: 20, maxBackoffMs: 100 });
      proxy.down();
      const records = Array.from({ length: 150 }, () => usage());
      for (const record of records) writer.record(record);
      // The first 10 went out as a batch (and failed); records 11..50 were pushed out by 51..150.
      assert.equal(writer.dropped, 40);
      assert.equal(writer.pending(), 110);
      await until(() => repository.batches.length >= 2, 'a failed retry');
      assert.equal(writer.pending(), 110);

      proxy.restore();
      await writer.flush(15_000);
      assert.equal(writer.pending(), 0);
      const ids = records.map((r) => r.request_id);
      assert.equal(await stored(ids.slice(0, 10)), 10);
      assert.equal(await stored(ids.slice(10, 50)), 0);
      assert.equal(await stored(ids.slice(50)), 100);
    });

    it('gives up a shutdown flush after its timeout and says what is left', async () => {
      const writer = writerOn(new UsageRepository(proxied), { flushIntervalMs: 3_600_000, minBackoffMs: 20, maxBackoffMs: 50 });
      proxy.down();
      writer.record(usage());
      await writer.flush(300);
      assert.equal(writer.pending(), 1);
      proxy.restore();
      await writer.flush(15_000);
      assert.equal(writer.pending(), 0);
    });
  });
});
