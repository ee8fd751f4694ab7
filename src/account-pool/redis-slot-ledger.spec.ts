import assert from 'node:assert/strict';
import { TcpProxy } from '../../test/support/tcp-proxy';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { buildConfig } from '../config/config.loader';
import { createRedisClient, whenRedisReady } from '../redis/redis-client';
import { AccountPool, Lease } from './account-pool.service';
import { FleetSync } from './fleet-sync.service';
import { RedisSlotLedger } from './redis-slot-ledger';
import { isPromiseLike, SlotToken } from './slot-ledger';
import { deleteKeysWithPrefix } from '../../test/support/redis-keys';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const FILE_PREFIX = `test:slots:${process.pid}:${Date.now()}:`;
/** Commands must fail within 100 ms; the bound is generous so a busy machine cannot flake it. */
const FAST_FAIL_BOUND_MS = 1000;

let prefixes = 0;
/** One Redis namespace per test: the replicas of one test share it, tests never do. */
function freshPrefix(): string {
  return `${FILE_PREFIX}${prefixes++}:`;
}

async function readyClient(url = REDIS_URL): Promise<Redis> {
  const client = createRedisClient(url);
  assert.equal(await whenRedisReady(client, 5000), true, 'Redis did not become ready');
  return client;
}

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await sleep(20);
  }
}

async function take(ledger: RedisSlotLedger, account: string, max: number): Promise<SlotToken | null> {
  return await ledger.tryAcquire(account, max);
}

describe('RedisSlotLedger', () => {
  let redis: Redis;
  let other: Redis;
  const ledgers: RedisSlotLedger[] = [];

  function ledger(client: Redis, keyPrefix: string, leaseMs = 15_000, accounts = [{ id: 'a', max: 2 }]): RedisSlotLedger {
    const created = new RedisSlotLedger(client, { keyPrefix, leaseMs, accounts });
    ledgers.push(created);
    return created;
  }

  before(async () => {
    [redis, other] = await Promise.all([readyClient(), readyClient()]);
  });

  after(async () => {
    for (const created of ledgers) created.stop();
    await deleteKeysWithPrefix(redis, FILE_PREFIX);
    await Promise.all([redis.quit(), other.quit()]);
  });

  it('two replicas never hold more than max leases of an account between them', async () => {
    const prefix = freshPrefix();
    const one = ledger(redis, prefix);
    const two = ledger(other, prefix);
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => take(i % 2 ? one : two, 'a', 3)));
    const tokens = answers.filter((t) => t !== null);
    assert.equal(tokens.length, 3);
    assert.ok(tokens.every((t) => typeof t === 'string'), 'leases live in Redis');
    assert.equal(new Set(tokens).size, 3, 'every lease has its own token');
    assert.equal(await redis.zcard(`${prefix}slots:a`), 3);
    await Promise.all([one.sync(), two.sync()]);
    assert.equal(one.busy('a'), 3, 'busy() is the fleet-wide count');
    assert.equal(two.busy('a'), 3);
  });

  it('answers each acquire with one script call that returns the fleet count; release gives the slot back and announces it', async () => {
    const prefix = freshPrefix();
    const one = ledger(redis, prefix);
    const two = ledger(other, prefix);
    const subscriber = redis.duplicate({ enableOfflineQueue: true });
    const heard: string[] = [];
    subscriber.on('message', (_channel: string, message: string) => heard.push(message));
    await subscriber.subscribe(one.freedChannel);
    try {
      const first = await take(one, 'a', 2);
      const second = await take(two, 'a', 2);
      assert.equal(two.busy('a'), 2, 'the acquire answer carries the fleet count');
      assert.equal(await take(one, 'a', 2), null);
      assert.equal(one.busy('a'), 2, 'a refusal carries it too');
      const released = one.release('a', first!);
      assert.ok(isPromiseLike(released));
      await released;
      assert.equal(one.busy('a'), 1);
      await until(() => heard.length === 1, 'the release is announced');
      assert.deepEqual(heard, ['a']);
      assert.equal(typeof (await take(two, 'a', 2)), 'string');
      await two.release('a', second!);
      // A token released twice (or never ours) does nothing.
      await one.release('a', first!);
      assert.equal(await redis.zcard(`${prefix}slots:a`), 1);
    } finally {
      subscriber.disconnect();
    }
  });

  it('renews the leases of a running replica; a replica that stopped renewing gives its slots back when they expire', async () => {
    const prefix = freshPrefix();
    const leaseMs = 1000;
    const alive = ledger(redis, prefix, leaseMs);
    const crashed = ledger(other, prefix, leaseMs);
    alive.start();
    const kept = await take(alive, 'a', 2);
    const lost = await take(crashed, 'a', 2);
    assert.ok(kept !== null && lost !== null);
    // `crashed` never syncs: like a process killed with SIGKILL, it renews nothing.
    const started = Date.now();
    await until(async () => !(await redis.zrange(`${prefix}slots:a`, 0, -1)).includes(lost as string), 'the unrenewed lease expires');
    await sleep(Math.max(0, started + leaseMs * 2 - Date.now()));
    const members = await redis.zrange(`${prefix}slots:a`, 0, -1);
    assert.deepEqual(members, [kept], 'the renewed lease outlived two lease times');
    assert.equal(typeof (await take(crashed, 'a', 2)), 'string', 'the expired slot can be taken again');
    assert.equal(await take(crashed, 'a', 2), null);
  });

  it('a sync refreshes the fleet count and reports a slot freed elsewhere', async () => {
    const prefix = freshPrefix();
    const one = ledger(redis, prefix);
    const two = ledger(other, prefix);
    const freed: string[] = [];
    two.onFreed = (id) => freed.push(id);
    const leases = [await take(one, 'a', 2), await take(one, 'a', 2)];
    assert.equal(two.busy('a'), 0, 'nothing learnt yet');
    await two.sync();
    assert.equal(two.busy('a'), 2);
    assert.deepEqual(freed, []);
    await one.release('a', leases[0]!);
    await two.sync();
    assert.equal(two.busy('a'), 1);
    assert.deepEqual(freed, ['a']);
  });

  it('an acquire answer that shows more room than the cache knew tells the pool, and so does every sync while requests wait here', async () => {
    const prefix = freshPrefix();
    const accounts = [{ id: 'a', max: 3 }];
    const one = ledger(redis, prefix, 15_000, accounts);
    const two = ledger(other, prefix, 15_000, accounts);
    const freed: string[] = [];
    two.onFreed = (id) => freed.push(id);
    const held = [await take(one, 'a', 3), await take(one, 'a', 3)];
    await two.sync();
    assert.equal(two.busy('a'), 2);
    // Released elsewhere, unheard of here: a request queued here meanwhile needs to hear of the room.
    for (const token of held) await one.release('a', token!);
    const token = await take(two, 'a', 3);
    assert.equal(typeof token, 'string');
    assert.equal(two.busy('a'), 1);
    assert.deepEqual(freed, ['a']);
    await two.sync();
    assert.deepEqual(freed, ['a'], 'nothing changed and nobody waits');
    two.setWaiting('a', true);
    await two.sync();
    assert.deepEqual(freed, ['a', 'a'], 'a slot is free while a request here waits: look again');
    two.setWaiting('a', false);
    await two.release('a', token!);
  });

  it('a freed-slot hint lets a replica try before its next sync', async () => {
    const prefix = freshPrefix();
    const one = ledger(redis, prefix);
    const two = ledger(other, prefix);
    const lease = await take(one, 'a', 1);
    assert.equal(await take(two, 'a', 1), null);
    assert.equal(two.busy('a'), 1);
    await one.release('a', lease!);
    two.noteFreed('a');
    assert.equal(two.busy('a'), 0);
  });

  it('while one replica has requests queued, another replica cannot overtake them: the freed slot goes to the queued one', async () => {
    const prefix = freshPrefix();
    const holder = ledger(redis, prefix, 15_000, [{ id: 'a', max: 1 }]);
    const queued = ledger(other, prefix, 15_000, [{ id: 'a', max: 1 }]);
    const held = await take(holder, 'a', 1);
    assert.equal(await take(queued, 'a', 1), null);
    queued.setWaiting('a', true);
    await queued.sync();
    await holder.release('a', held!);
    assert.equal(await take(holder, 'a', 1), null, 'a newcomer at the holder waits its turn');
    assert.equal(holder.busy('a'), 1, 'so the holder does not keep trying');
    const handed = await take(queued, 'a', 1);
    assert.equal(typeof handed, 'string');
    // The queued replica took its turn and goes to the back; with nobody else waiting, it is done.
    queued.setWaiting('a', false);
    await queued.release('a', handed!);
    await holder.sync();
    assert.equal(typeof (await take(holder, 'a', 1)), 'string');
  });

  it('the waiting replicas take turns, so none starves another', async () => {
    const prefix = freshPrefix();
    const accounts = [{ id: 'a', max: 1 }];
    const one = ledger(redis, prefix, 15_000, accounts);
    const two = ledger(other, prefix, 15_000, accounts);
    one.setWaiting('a', true);
    await one.sync();
    two.setWaiting('a', true);
    await two.sync();
    const order: string[] = [];
    for (let round = 0; round < 4; round++) {
      const [a, b] = await Promise.all([take(one, 'a', 1), take(two, 'a', 1)]);
      assert.ok((a === null) !== (b === null), 'exactly one replica gets the slot');
      order.push(a !== null ? 'one' : 'two');
      if (a !== null) await one.release('a', a);
      else await two.release('a', b!);
    }
    assert.deepEqual(order, ['one', 'two', 'one', 'two']);
  });

  it('a waiting replica that died does not block the others', async () => {
    const prefix = freshPrefix();
    const leaseMs = 1000;
    const dead = ledger(other, prefix, leaseMs, [{ id: 'a', max: 1 }]);
    const alive = ledger(redis, prefix, leaseMs, [{ id: 'a', max: 1 }]);
    dead.setWaiting('a', true);
    await dead.sync();
    assert.equal(await take(alive, 'a', 1), null, 'the queued replica goes first');
    await sleep(leaseMs * 1.5);
    assert.equal(typeof (await take(alive, 'a', 1)), 'string');
  });

  describe('when Redis is unreachable', () => {
    it('counts new leases per replica, gives each back where it was taken, and shares again when Redis returns', async () => {
      const prefix = freshPrefix();
      const proxy = await TcpProxy.start(REDIS_URL);
      const client = await readyClient(proxy.urlFor(REDIS_URL));
      const flaky = ledger(client, prefix, 15_000, [{ id: 'a', max: 3 }]);
      flaky.start();
      try {
        const shared = await take(flaky, 'a', 3);
        assert.equal(typeof shared, 'string');
        assert.equal(await redis.zcard(`${prefix}slots:a`), 1);

        proxy.cut();
        const started = performance.now();
        const local = await take(flaky, 'a', 3);
        assert.ok(performance.now() - started < FAST_FAIL_BOUND_MS, 'the failed command did not hang');
        assert.equal(typeof local, 'number', 'a lease taken in fallback mode is local');
        assert.equal(flaky.shared, false);
        const second = flaky.tryAcquire('a', 3);
        assert.equal(isPromiseLike(second), false, 'while Redis is away, acquires do not even try it');
        assert.equal(typeof second, 'number');
        assert.equal(flaky.tryAcquire('a', 3), null, 'max still holds per replica: the Redis lease counts too');

        flaky.release('a', local!);
        assert.equal(flaky.busy('a'), 2);
        // Releasing the Redis lease while Redis is away must not free a local slot.
        flaky.release('a', shared!);
        assert.equal(flaky.busy('a'), 1);
        assert.equal(await redis.zcard(`${prefix}slots:a`), 1, 'no local release touched Redis');

        proxy.restore();
        await until(() => flaky.shared, 'the ledger notices Redis is back', 10_000);
        await until(async () => (await redis.zcard(`${prefix}slots:a`)) === 0, 'the lease released while away is dropped from Redis');
        // Still one local lease running: it counts against this replica's admissions in Redis.
        const back = [await take(flaky, 'a', 3), await take(flaky, 'a', 3), await take(flaky, 'a', 3)];
        assert.deepEqual(back.map((t) => typeof t), ['string', 'string', 'object']);
        assert.equal(back[2], null);
        assert.equal(await redis.zcard(`${prefix}slots:a`), 2);
        flaky.release('a', second as SlotToken);
        assert.equal(await redis.zcard(`${prefix}slots:a`), 2, 'the local release still does not touch Redis');
      } finally {
        flaky.stop();
        client.disconnect();
        await proxy.close();
      }
    });
  });
});

describe('AccountPool over RedisSlotLedger, two replicas', () => {
  let clients: Redis[] = [];
  const stops: Array<() => unknown> = [];

  function replica(prefix: string, queueTimeoutMs = 10_000): { pool: AccountPool; ledger: RedisSlotLedger; sync: FleetSync } {
    const config = buildConfig({
      models: [{ id: 'm' }],
      accounts: [{ id: 'a', provider: 'mock', max_concurrency: 2 }],
      pool: { queue_timeout_ms: queueTimeoutMs },
      redis: { key_prefix: prefix },
    });
    const client = createRedisClient(REDIS_URL);
    clients.push(client);
    const ledger = new RedisSlotLedger(client, { keyPrefix: prefix, leaseMs: 15_000, accounts: [{ id: 'a', max: 2 }] });
    const pool = new AccountPool(config, ledger);
    const sync = new FleetSync(pool, ledger, config, client);
    stops.push(() => sync.onApplicationShutdown(), () => pool.onModuleDestroy());
    return { pool, ledger, sync };
  }

  after(async () => {
    for (const stop of stops) stop();
    await Promise.all(clients.map((c) => c.quit()));
    clients = [];
  });

  it('never exceed max_concurrency together, and serve every queued request on both', async () => {
    const prefix = freshPrefix();
    const replicas = [replica(prefix), replica(prefix)];
    await Promise.all(clients.map((c) => whenRedisReady(c, 5000)));
    await Promise.all(replicas.map((r) => r.sync.onModuleInit()));
    let inUse = 0;
    let peak = 0;
    const served = [0, 0];
    await Promise.all(
      Array.from({ length: 12 }, async (_, i) => {
        const lease: Lease = await replicas[i % 2].pool.acquire('m');
        inUse++;
        peak = Math.max(peak, inUse);
        await sleep(30);
        inUse--;
        served[i % 2]++;
        lease.release();
      }),
    );
    assert.equal(peak, 2);
    assert.deepEqual(served, [6, 6]);
    await until(async () => (await clients[0].zcard(`${prefix}slots:a`)) === 0, 'every lease is given back');
    for (const r of replicas) assert.equal(r.pool.queueDepth(), 0);
  });
});
