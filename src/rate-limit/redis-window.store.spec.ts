import assert from 'node:assert/strict';
import { TcpProxy } from '../../test/support/tcp-proxy';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { createRedisClient, whenRedisReady } from '../redis/redis-client';
import { RedisWindowStore } from './redis-window.store';
import { windowStoreBehaviour } from './window-store.behaviour';
import { deleteKeysWithPrefix } from '../../test/support/redis-keys';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const PREFIX = `test:rl:${process.pid}:${Date.now()}:`;
/** Commands must fail within 100 ms; the bound is generous so a busy machine cannot flake it. */
const FAST_FAIL_BOUND_MS = 1000;

async function redisNowMs(redis: Redis): Promise<number> {
  const [seconds, micros] = await redis.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

async function readyClient(url: string): Promise<Redis> {
  const client = createRedisClient(url);
  assert.equal(await whenRedisReady(client, 5000), true, 'Redis did not become ready');
  return client;
}

async function rejectsWithin(promise: Promise<unknown>, boundMs: number): Promise<Error> {
  const started = performance.now();
  const error = await promise.then(
    () => assert.fail('the hit should have failed'),
    (e: unknown) => e,
  );
  const elapsed = performance.now() - started;
  assert.ok(error instanceof Error);
  assert.ok(elapsed < boundMs, `failed after ${Math.round(elapsed)} ms`);
  return error;
}

describe('RedisWindowStore', () => {
  let one: Redis;
  let two: Redis;
  let store: RedisWindowStore;
  let replica: RedisWindowStore;

  before(async () => {
    [one, two] = await Promise.all([readyClient(REDIS_URL), readyClient(REDIS_URL)]);
    store = new RedisWindowStore(one, PREFIX);
    replica = new RedisWindowStore(two, PREFIX);
  });

  after(async () => {
    await deleteKeysWithPrefix(one, PREFIX);
    await Promise.all([one.quit(), two.quit()]);
  });

  windowStoreBehaviour({
    store: () => store,
    replicas: () => [new RedisWindowStore(one, PREFIX), new RedisWindowStore(two, PREFIX)],
    waitForClock: async (ms) => {
      for (let now = await redisNowMs(one); now < ms; now = await redisNowMs(one)) await sleep(ms - now);
    },
    shortWindowMs: 1000,
    clockSlackMs: 25,
  });

  it('stores one entry per admitted request, scored by Redis TIME, expiring with the window', async () => {
    const admitted = [await store.hit('entries', 2, 5000), await replica.hit('entries', 2, 5000)];
    assert.equal((await store.hit('entries', 2, 5000)).allowed, false);
    const entries = await one.zrange(`${PREFIX}entries`, 0, -1, 'WITHSCORES');
    assert.equal(entries.length, 4);
    assert.notEqual(entries[0], entries[2]);
    assert.deepEqual([Number(entries[1]), Number(entries[3])], admitted.map((d) => d.nowMs));
    const ttl = await one.pttl(`${PREFIX}entries`);
    assert.ok(ttl > 0 && ttl <= 5000, `pttl ${ttl}`);
  });

  it('counts an entry exactly one window old as gone, and one a millisecond younger as present', async () => {
    // One entry per ms around the boundary: whatever ms the script runs at, one entry sits on it.
    const key = `${PREFIX}boundary`;
    const windowMs = 1000;
    const start = await redisNowMs(one);
    const seeded: Array<number | string> = [];
    for (let d = 0; d <= 500; d++) seeded.push(start - windowMs + d, `seed-${d}`);
    await one.zadd(key, ...seeded);
    const decision = await store.hit('boundary', 1000, windowMs);
    const elapsed = decision.nowMs - start;
    assert.ok(elapsed >= 0 && elapsed < 500, `hit ran ${elapsed} ms after seeding`);
    // Left: every d <= elapsed. Still in: d in (elapsed, 500], plus this request.
    assert.equal(decision.allowed, true);
    assert.equal(decision.remaining, 1000 - (500 - elapsed) - 1);
    assert.equal(decision.resetAtMs, decision.nowMs + 1);
  });

  it('lets an idle bucket vanish from Redis', async () => {
    await store.hit('idle', 5, 100);
    assert.equal(await one.exists(`${PREFIX}idle`), 1);
    for (let waited = 0; waited < 2000 && (await one.exists(`${PREFIX}idle`)) === 1; waited += 50) await sleep(50);
    assert.equal(await one.exists(`${PREFIX}idle`), 0);
  });

  describe('when Redis is unreachable', () => {
    it('fails fast on a client pointed at a closed port, before and after its first connect attempt', async () => {
      const client = createRedisClient('redis://127.0.0.1:1');
      try {
        const closed = new RedisWindowStore(client, PREFIX);
        await rejectsWithin(closed.hit('down', 5, 60_000), FAST_FAIL_BOUND_MS);
        await sleep(200);
        await rejectsWithin(closed.hit('down', 5, 60_000), FAST_FAIL_BOUND_MS);
      } finally {
        client.disconnect();
      }
    });

    it('fails fast when a connected Redis stops answering', async () => {
      const proxy = await TcpProxy.start(REDIS_URL);
      const client = await readyClient(proxy.urlFor(REDIS_URL));
      try {
        const silent = new RedisWindowStore(client, PREFIX);
        assert.equal((await silent.hit('silent', 5, 60_000)).allowed, true);
        proxy.silence();
        const error = await rejectsWithin(silent.hit('silent', 5, 60_000), FAST_FAIL_BOUND_MS);
        assert.match(error.message, /timed out/i);
      } finally {
        client.disconnect();
        await proxy.close();
      }
    });

    it('recovers by itself when Redis comes back', async () => {
      const proxy = await TcpProxy.start(REDIS_URL);
      proxy.cut();
      const client = createRedisClient(proxy.urlFor(REDIS_URL));
      try {
        const flaky = new RedisWindowStore(client, PREFIX);
        await rejectsWithin(flaky.hit('back', 5, 60_000), FAST_FAIL_BOUND_MS);
        await sleep(100);
        await rejectsWithin(flaky.hit('back', 5, 60_000), FAST_FAIL_BOUND_MS);
        proxy.restore();
        assert.equal(await whenRedisReady(client, 5000), true);
        const decision = await flaky.hit('back', 5, 60_000);
        assert.equal(decision.allowed, true);
        assert.equal(decision.remaining, 4);
      } finally {
        client.disconnect();
        await proxy.close();
      }
    });
  });
});
