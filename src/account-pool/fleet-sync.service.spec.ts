import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { buildConfig } from '../config/config.loader';
import { createRedisClient, whenRedisReady } from '../redis/redis-client';
import { UpstreamError } from '../providers/upstream-error';
import { AccountPool, AccountView } from './account-pool.service';
import { FleetSync } from './fleet-sync.service';
import { RedisSlotLedger } from './redis-slot-ledger';
import { deleteKeysWithPrefix } from '../../test/support/redis-keys';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const FILE_PREFIX = `test:fleet:${process.pid}:${Date.now()}:`;

let prefixes = 0;
function freshPrefix(): string {
  return `${FILE_PREFIX}${prefixes++}:`;
}

async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await sleep(10);
  }
}

interface Replica {
  pool: AccountPool;
  ledger: RedisSlotLedger;
  redis: Redis;
  account(id: string): AccountView;
}

describe('FleetSync', () => {
  const clients: Redis[] = [];
  const stops: Array<() => unknown> = [];

  /** One replica: its own Redis connection, ledger, pool and sync, sharing `prefix` with the others. */
  async function replica(prefix: string, options: { slots?: number; leaseMs?: number; refreshMs?: number } = {}): Promise<Replica> {
    const slots = options.slots ?? 2;
    const config = buildConfig({
      models: [{ id: 'm' }],
      accounts: [
        { id: 'first', provider: 'mock', max_concurrency: slots },
        { id: 'second', provider: 'mock', max_concurrency: slots },
      ],
      pool: { queue_timeout_ms: 5_000, cooldown_ms: 30_000 },
      redis: { key_prefix: prefix },
    });
    const redis = createRedisClient(REDIS_URL);
    clients.push(redis);
    assert.equal(await whenRedisReady(redis, 5000), true);
    const ledger = new RedisSlotLedger(redis, {
      keyPrefix: prefix,
      leaseMs: options.leaseMs ?? 15_000,
      refreshMs: options.refreshMs,
      accounts: config.accounts.map((a) => ({ id: a.id, max: a.max_concurrency })),
    });
    const pool = new AccountPool(config, ledger);
    const sync = new FleetSync(pool, ledger, config, redis);
    stops.push(() => pool.onModuleDestroy(), () => sync.onApplicationShutdown());
    await sync.onModuleInit();
    return { pool, ledger, redis, account: (id) => pool.snapshot().find((a) => a.id === id)! };
  }

  after(async () => {
    for (const stop of stops) stop();
    const [redis] = clients;
    await deleteKeysWithPrefix(redis, FILE_PREFIX);
    await Promise.all(clients.map((c) => c.quit()));
  });

  it('a 429 seen by one replica keeps every replica off the account until its Retry-After', async () => {
    const prefix = freshPrefix();
    const [a, b] = [await replica(prefix), await replica(prefix)];
    a.pool.reportFailure('first', new UpstreamError('rate_limited', 'slow down', 429, 30_000));
    await until(() => b.account('first').status === 'cooling_down', 'the other replica hears of the cooldown');
    const until30 = Date.parse(b.account('first').cooldown_until!) - Date.now();
    assert.ok(until30 > 25_000 && until30 <= 30_000, `cooldown ends in ${until30} ms`);
    assert.equal(b.account('first').available_slots, 0);
    for (let i = 0; i < 4; i++) {
      const lease = await b.pool.acquire('m');
      assert.equal(lease.account.id, 'second');
      lease.release();
    }
    const stored = await b.redis.pttl(`${prefix}acct:first:cooldown_until`);
    assert.ok(stored > 25_000 && stored <= 30_000, `the mark is stored with its expiry (${stored} ms)`);

    const late = await replica(prefix);
    assert.equal(late.account('first').status, 'cooling_down', 'a replica that starts later reads it');
  });

  it('ejections and auth failures travel too', async () => {
    const prefix = freshPrefix();
    const [a, b] = [await replica(prefix), await replica(prefix)];
    for (let i = 0; i < 3; i++) a.pool.reportFailure('second', new UpstreamError('server', 'bad gateway', 502));
    a.pool.reportFailure('first', new UpstreamError('auth', 'invalid key', 401));
    await until(() => b.account('first').status === 'unhealthy', 'the auth failure arrives');
    await until(() => b.account('second').status === 'cooling_down', 'the ejection arrives');
    assert.equal(b.pool.condition().status, 'unhealthy', 'no account is usable on the other replica either');
  });

  it('an announcement never stretches the cooldown of the replica that made it, nor cuts a longer one short', async () => {
    const prefix = freshPrefix();
    const [a, b] = [await replica(prefix), await replica(prefix)];
    a.pool.reportFailure('first', new UpstreamError('rate_limited', 'slow down', 429, 20_000));
    const own = a.account('first').cooldown_until;
    await until(() => b.account('first').status === 'cooling_down', 'the cooldown arrives');
    const heard = b.account('first').cooldown_until;
    await sleep(50);
    assert.equal(a.account('first').cooldown_until, own, 'its own echo changed nothing');
    b.pool.applySharedHealth('first', { cooldownUntil: Date.now() + 1_000, ejectedUntil: 0, unhealthyUntil: 0 });
    assert.equal(b.account('first').cooldown_until, heard);
  });

  it('a slot freed on one replica goes to a request queued on another at once (slots:freed)', async () => {
    const prefix = freshPrefix();
    // No periodic sync during the test: only the announcement can wake the queued request.
    const quiet = { slots: 1, leaseMs: 600_000, refreshMs: 600_000 };
    const [a, b] = [await replica(prefix, quiet), await replica(prefix, quiet)];
    const held = [await a.pool.acquire('m'), await a.pool.acquire('m')];
    await b.ledger.sync();
    const waiting = b.pool.acquire('m');
    await until(() => b.pool.queueDepth() === 1, 'the request queues on the other replica');
    held[1].release();
    const lease = await waiting;
    assert.equal(lease.account.id, held[1].account.id);
    assert.equal(b.pool.queueDepth(), 0);
    lease.release();
    held[0].release();
  });
});
