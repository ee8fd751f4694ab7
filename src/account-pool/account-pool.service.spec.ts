import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { GatewayError } from '../common/gateway-error';
import { buildConfig } from '../config/config.loader';
import { UpstreamError } from '../providers/upstream-error';
import { AccountPool, Lease, NoOtherAccountError, PoolOptions, isNoOtherAccount } from './account-pool.service';
import { MemorySlotLedger, SlotLedger, SlotToken } from './slot-ledger';

interface AccountSpec {
  id: string;
  max_concurrency: number;
  models?: string[];
  api_key?: string;
}

function acct(id: string, max = 1, models?: string[]): AccountSpec {
  return models ? { id, max_concurrency: max, models } : { id, max_concurrency: max };
}

function makePool(
  accounts: AccountSpec[],
  pool: Record<string, number> = {},
  options: PoolOptions = {},
  ledger: SlotLedger = new MemorySlotLedger(),
): { pool: AccountPool; ledger: SlotLedger } {
  const config = buildConfig({
    models: [{ id: 'm' }, { id: 'other' }],
    accounts: accounts.map((a) => ({ provider: 'mock', ...a })),
    pool: { queue_timeout_ms: 5_000, ...pool },
  });
  return { pool: new AccountPool(config, ledger, options), ledger };
}

/** A clock the test moves by hand. */
function fakeClock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_700_000_000_000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

function gatewayError(code: string, check?: (err: GatewayError) => void): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof GatewayError, `expected a GatewayError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.equal(err.status, 503);
    assert.equal(err.type, 'service_unavailable');
    assert.ok(Number.isInteger(err.retryAfterSeconds) && err.retryAfterSeconds! >= 1, `Retry-After ${err.retryAfterSeconds}`);
    check?.(err);
    return true;
  };
}

function busyTotal(pool: AccountPool): number {
  return pool.snapshot().reduce((sum, a) => sum + a.busy_slots, 0);
}

const rateLimited = (ms?: number) => new UpstreamError('rate_limited', 'too many requests', 429, ms);
const serverError = () => new UpstreamError('server', 'bad gateway', 502);

describe('AccountPool', () => {
  describe('selection', () => {
    it('spreads requests round robin over equally idle accounts', async () => {
      const { pool } = makePool([acct('a', 2), acct('b', 2), acct('c', 2)]);
      const picked: string[] = [];
      for (let i = 0; i < 6; i++) {
        const lease = await pool.acquire('m');
        picked.push(lease.account.id);
        lease.release();
      }
      assert.deepEqual(picked, ['a', 'b', 'c', 'a', 'b', 'c']);
    });

    it('sends each request to the least busy account, in proportion to its slots', async () => {
      const { pool, ledger } = makePool([acct('big', 4), acct('small', 2)]);
      const leases: Lease[] = [];
      for (let i = 0; i < 3; i++) leases.push(await pool.acquire('m'));
      assert.equal(ledger.busy('big'), 2);
      assert.equal(ledger.busy('small'), 1);
      for (let i = 0; i < 3; i++) leases.push(await pool.acquire('m'));
      assert.equal(ledger.busy('big'), 4);
      assert.equal(ledger.busy('small'), 2);
      for (const lease of leases) lease.release();
      assert.equal(busyTotal(pool), 0);
    });

    it('serves a model only from accounts that list it or list no models', async () => {
      const { pool } = makePool([acct('only-other', 3, ['other']), acct('any', 1)]);
      const lease = await pool.acquire('m');
      assert.equal(lease.account.id, 'any');
      const forOther = await pool.acquire('other');
      assert.equal(forOther.account.id, 'only-other', 'the idle account wins over the busy one');
      lease.release();
      forOther.release();
      const unknown = await pool.acquire('not-configured');
      assert.equal(unknown.account.id, 'any', 'an account without a models list serves every model');
      unknown.release();
    });

    it('answers 503 no_account for a model no account serves', async () => {
      const { pool } = makePool([acct('a', 1, ['m'])]);
      await assert.rejects(pool.acquire('other'), gatewayError('no_account'));
      await assert.rejects(pool.acquire('nope'), gatewayError('no_account'));
      assert.equal(busyTotal(pool), 0);
      assert.equal(pool.queueDepth(), 0);
    });

    it('exclude sends a retry to another account, and says so when none is left', async () => {
      const { pool } = makePool([acct('a', 1), acct('b', 1)]);
      const first = await pool.acquire('m', { exclude: new Set(['a']) });
      assert.equal(first.account.id, 'b');
      first.release();
      await assert.rejects(pool.acquire('m', { exclude: new Set(['a', 'b']) }), (err: unknown) => {
        assert.ok(err instanceof NoOtherAccountError);
        assert.ok(isNoOtherAccount(err));
        return true;
      });
      assert.equal(isNoOtherAccount(new Error('x')), false);
      assert.equal(pool.queueDepth(), 0);
      assert.equal(busyTotal(pool), 0);
    });

    it('a retry does not wait for another account cooling down, but waits for a busy one', async () => {
      const { pool } = makePool([acct('a', 1), acct('b', 1)]);
      pool.reportFailure('b', rateLimited(60_000));
      await assert.rejects(pool.acquire('m', { exclude: new Set(['a']) }), (err) => isNoOtherAccount(err));

      const other = makePool([acct('a', 1), acct('b', 1)]).pool;
      const holder = await other.acquire('m', { exclude: new Set(['a']) });
      const retry = other.acquire('m', { exclude: new Set(['a']) });
      assert.equal(other.queueDepth(), 1);
      holder.release();
      const lease = await retry;
      assert.equal(lease.account.id, 'b');
      lease.release();
    });
  });

  describe('queue', () => {
    it('wakes waiters in FIFO order as slots free', async () => {
      const { pool } = makePool([acct('a', 1)]);
      const holder = await pool.acquire('m');
      const order: number[] = [];
      const waiters = [0, 1, 2, 3].map((i) =>
        pool.acquire('m').then((lease) => {
          order.push(i);
          return lease;
        }),
      );
      assert.equal(pool.queueDepth(), 4);
      holder.release();
      for (const waiter of waiters) (await waiter).release();
      assert.deepEqual(order, [0, 1, 2, 3]);
      assert.equal(pool.queueDepth(), 0);
      assert.equal(busyTotal(pool), 0);
    });

    it('a freed slot goes to the oldest waiter that can use it, past waiters for other models', async () => {
      const { pool } = makePool([acct('for-m', 1, ['m']), acct('for-other', 1, ['other'])]);
      const holdM = await pool.acquire('m');
      const holdOther = await pool.acquire('other');
      let otherGot = false;
      const waitOther = pool.acquire('other').then((lease) => ((otherGot = true), lease));
      const waitM = pool.acquire('m');
      holdM.release();
      const lease = await waitM;
      assert.equal(lease.account.id, 'for-m');
      assert.equal(otherGot, false);
      holdOther.release();
      (await waitOther).release();
      lease.release();
      assert.equal(busyTotal(pool), 0);
    });

    it('a freed slot is handed to the queued request, not left for a newcomer', async () => {
      const { pool } = makePool([acct('a', 1)]);
      const holder = await pool.acquire('m');
      const queued = pool.acquire('m');
      holder.release();
      const late = pool.acquire('m');
      assert.equal(pool.queueDepth(), 1, 'the newcomer queues behind the woken waiter');
      (await queued).release();
      (await late).release();
      assert.equal(busyTotal(pool), 0);
    });

    it('times out with 503 pool_exhausted and Retry-After, holding no slot', async () => {
      const { pool } = makePool([acct('a', 1)], { queue_timeout_ms: 50 });
      const holder = await pool.acquire('m');
      await assert.rejects(pool.acquire('m'), gatewayError('pool_exhausted', (err) => assert.equal(err.retryAfterSeconds, 1)));
      assert.equal(pool.queueDepth(), 0);
      holder.release();
      assert.equal(busyTotal(pool), 0);
    });

    it('answers 503 pool_exhausted at once when the queue is full', async () => {
      const { pool } = makePool([acct('a', 1)], { max_queue: 1, queue_timeout_ms: 60_000 });
      const holder = await pool.acquire('m');
      const queued = pool.acquire('m');
      await assert.rejects(pool.acquire('m'), gatewayError('pool_exhausted'));
      assert.equal(pool.queueDepth(), 1, 'the full-queue refusal happened while the first waiter still waits');
      holder.release();
      (await queued).release();

      const noQueue = makePool([acct('a', 1)], { max_queue: 0 }).pool;
      const held = await noQueue.acquire('m');
      await assert.rejects(noQueue.acquire('m'), gatewayError('pool_exhausted'));
      held.release();
    });

    it('a request aborted while queued leaves the queue at once with the abort reason and takes no slot', async () => {
      const { pool } = makePool([acct('a', 1)], { queue_timeout_ms: 60_000 });
      const holder = await pool.acquire('m');
      const controller = new AbortController();
      const waiting = pool.acquire('m', { signal: controller.signal });
      const next = pool.acquire('m');
      assert.equal(pool.queueDepth(), 2);
      const reason = new Error('client went away');
      controller.abort(reason);
      await assert.rejects(waiting, (err) => err === reason);
      assert.equal(pool.queueDepth(), 1);
      holder.release();
      const lease = await next;
      assert.equal(busyTotal(pool), 1, 'the slot went to the next waiter, not the aborted one');
      lease.release();
      assert.equal(busyTotal(pool), 0);
    });

    it('a request whose signal already aborted takes nothing', async () => {
      const { pool } = makePool([acct('a', 1)]);
      await assert.rejects(pool.acquire('m', { signal: AbortSignal.abort(new Error('gone')) }), /gone/);
      assert.equal(busyTotal(pool), 0);
    });

    it('never holds more than max_concurrency per account at 5x oversubscription', async () => {
      const { pool } = makePool([acct('a', 2), acct('b', 3)], { queue_timeout_ms: 30_000 });
      const inFlight = new Map<string, number>([['a', 0], ['b', 0]]);
      const peak = new Map<string, number>([['a', 0], ['b', 0]]);
      const limit = new Map([['a', 2], ['b', 3]]);
      const run = async (i: number): Promise<void> => {
        const lease = await pool.acquire('m');
        const id = lease.account.id;
        inFlight.set(id, inFlight.get(id)! + 1);
        peak.set(id, Math.max(peak.get(id)!, inFlight.get(id)!));
        assert.ok(inFlight.get(id)! <= limit.get(id)!, `${id} over its limit`);
        await sleep(1 + (i % 4));
        inFlight.set(id, inFlight.get(id)! - 1);
        lease.release();
      };
      await Promise.all(Array.from({ length: 25 }, (_, i) => run(i)));
      assert.equal(peak.get('a'), 2);
      assert.equal(peak.get('b'), 3);
      assert.equal(busyTotal(pool), 0);
      assert.equal(pool.queueDepth(), 0);
    });
  });

  describe('leases', () => {
    it('a lease released twice gives its slot back once', async () => {
      const { pool, ledger } = makePool([acct('a', 2)]);
      const first = await pool.acquire('m');
      const second = await pool.acquire('m');
      first.release();
      first.release();
      assert.equal(ledger.busy('a'), 1);
      second.release();
      assert.equal(ledger.busy('a'), 0);
    });

    it('never leaks a slot over random acquires, releases, failures, timeouts and aborts', async () => {
      const { pool } = makePool([acct('a', 2), acct('b', 1), acct('c', 2, ['other'])], { queue_timeout_ms: 15, max_queue: 20 });
      let seed = 42;
      const random = (): number => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed / 2 ** 31;
      };
      const limits: Record<string, number> = { a: 2, b: 1, c: 2 };
      let outcomes = 0;
      const one = async (): Promise<void> => {
        const controller = new AbortController();
        const roll = random();
        if (roll < 0.15) setTimeout(() => controller.abort(new Error('gone')), Math.floor(random() * 10));
        const model = random() < 0.3 ? 'other' : 'm';
        let lease: Lease | undefined;
        try {
          lease = await pool.acquire(model, { signal: controller.signal, exclude: random() < 0.2 ? new Set(['a']) : undefined });
          for (const view of pool.snapshot()) assert.ok(view.busy_slots <= limits[view.id]);
          await sleep(Math.floor(random() * 6));
          controller.signal.throwIfAborted();
          const fate = random();
          if (fate < 0.1) pool.reportFailure(lease.account.id, serverError());
          else if (fate < 0.15) pool.reportFailure(lease.account.id, rateLimited(5));
          else pool.reportSuccess(lease.account.id);
        } catch {
          // Abort, timeout, queue full or no other account: all fine here.
        } finally {
          lease?.release();
          if (random() < 0.3) lease?.release();
          outcomes++;
        }
      };
      await Promise.all(Array.from({ length: 300 }, async (_, i) => {
        await sleep(Math.floor(i / 10));
        await one();
      }));
      assert.equal(outcomes, 300);
      assert.equal(busyTotal(pool), 0);
      assert.equal(pool.queueDepth(), 0);
    });

    it('a request that lost ledger races still takes a slot that is free', async () => {
      const memory = new MemorySlotLedger();
      let refuse = 3;
      const racing: SlotLedger = {
        busy: (id) => memory.busy(id),
        // Another replica wins the first three races.
        tryAcquire: (id, max) => new Promise((resolve) => setImmediate(() => resolve(refuse-- > 0 ? null : memory.tryAcquire(id, max)))),
        release: (id) => memory.release(id),
      };
      const { pool } = makePool([acct('a', 1)], { queue_timeout_ms: 2_000 }, {}, racing);
      const lease = await pool.acquire('m');
      assert.equal(memory.busy('a'), 1);
      lease.release();
      assert.equal(memory.busy('a'), 0);
    });

    it('works with a ledger that answers with promises', async () => {
      const memory = new MemorySlotLedger();
      const asyncLedger: SlotLedger = {
        busy: (id) => memory.busy(id),
        tryAcquire: (id, max) => new Promise<SlotToken | null>((resolve) => setImmediate(() => resolve(memory.tryAcquire(id, max)))),
        release: (id) => new Promise<void>((resolve) => setImmediate(() => resolve(memory.release(id)))),
      };
      const { pool } = makePool([acct('a', 2), acct('b', 1)], { queue_timeout_ms: 30_000 }, {}, asyncLedger);
      let peak = 0;
      const aborted = new AbortController();
      const runs = Array.from({ length: 15 }, async (_, i) => {
        const lease = await pool.acquire('m', i === 7 ? { signal: aborted.signal } : {});
        peak = Math.max(peak, memory.busy('a') + memory.busy('b'));
        assert.ok(memory.busy('a') <= 2 && memory.busy('b') <= 1);
        await sleep(2);
        lease.release();
      });
      aborted.abort(new Error('gone'));
      const results = await Promise.allSettled(runs);
      assert.equal(results.filter((r) => r.status === 'rejected').length, 1);
      await sleep(20);
      assert.equal(peak, 3);
      assert.equal(memory.busy('a') + memory.busy('b'), 0);
      assert.equal(pool.queueDepth(), 0);
    });
  });

  describe('account health', () => {
    it('when a cooldown ends, queued requests get the account before newcomers', async () => {
      const clock = fakeClock();
      const { pool } = makePool([acct('a', 1)], { queue_timeout_ms: 60_000 }, { now: clock.now });
      pool.reportFailure('a', rateLimited(1_000));
      const order: string[] = [];
      const queued = pool.acquire('m').then((lease) => (order.push('queued'), lease));
      clock.advance(1_000);
      const newcomer = pool.acquire('m').then((lease) => (order.push('newcomer'), lease));
      (await queued).release();
      (await newcomer).release();
      assert.deepEqual(order, ['queued', 'newcomer']);
    });


    it('an account cooling down after a 429 is skipped, shown as cooling_down, and back when it ends', async () => {
      const clock = fakeClock();
      const { pool } = makePool([acct('a', 2), acct('b', 2)], {}, { now: clock.now });
      pool.reportFailure('a', rateLimited(10_000));
      for (let i = 0; i < 4; i++) {
        const lease = await pool.acquire('m');
        assert.equal(lease.account.id, 'b');
        lease.release();
      }
      const view = pool.snapshot().find((a) => a.id === 'a')!;
      assert.equal(view.status, 'cooling_down');
      assert.equal(view.available_slots, 0);
      assert.equal(view.cooldown_until, new Date(clock.now() + 10_000).toISOString());
      assert.deepEqual(pool.totals(), { accounts: 2, total_slots: 4, available_slots: 2, queued: 0 });
      assert.equal(pool.condition().status, 'degraded');

      clock.advance(10_000);
      assert.equal(pool.snapshot()[0].status, 'healthy');
      assert.equal(pool.snapshot()[0].cooldown_until, null);
      const picked = new Set<string>();
      for (let i = 0; i < 2; i++) {
        const lease = await pool.acquire('m');
        picked.add(lease.account.id);
        lease.release();
      }
      assert.ok(picked.has('a'));
      assert.equal(pool.condition().status, 'healthy');
    });

    it('a request waiting on a cooling account gets it when the cooldown ends by itself', async () => {
      const { pool } = makePool([acct('a', 1)], { queue_timeout_ms: 10_000 });
      pool.reportFailure('a', rateLimited(150));
      assert.equal(pool.condition().status, 'unhealthy');
      const lease = await pool.acquire('m');
      assert.equal(lease.account.id, 'a');
      assert.equal(pool.snapshot()[0].status, 'healthy');
      lease.release();
    });

    it('when every account is cooling down, pool_exhausted carries the time to the first cooldown end', async () => {
      const clock = fakeClock();
      const { pool } = makePool([acct('a', 1), acct('b', 1)], { queue_timeout_ms: 30 }, { now: clock.now });
      pool.reportFailure('a', rateLimited(12_000));
      pool.reportFailure('b', rateLimited(4_500));
      await assert.rejects(pool.acquire('m'), gatewayError('pool_exhausted', (err) => assert.equal(err.retryAfterSeconds, 5)));
      assert.equal(pool.queueDepth(), 0);
      const full = makePool([acct('a', 1)], { max_queue: 0 }, { now: clock.now }).pool;
      full.reportFailure('a', rateLimited(7_200));
      await assert.rejects(full.acquire('m'), gatewayError('pool_exhausted', (err) => assert.equal(err.retryAfterSeconds, 8)));
    });

    it('ejects an account after 3 consecutive failures with growing backoff; it comes back by itself', async () => {
      const clock = fakeClock();
      const { pool } = makePool([acct('a', 1), acct('b', 1)], {}, { now: clock.now });
      for (let i = 0; i < 3; i++) pool.reportFailure('a', serverError());
      const view = pool.snapshot()[0];
      assert.equal(view.status, 'cooling_down', 'an ejected account shows as cooling down');
      assert.equal(view.cooldown_until, new Date(clock.now() + 1_000).toISOString());
      for (let i = 0; i < 3; i++) {
        const lease = await pool.acquire('m');
        assert.equal(lease.account.id, 'b');
        lease.release();
      }
      clock.advance(1_000);
      assert.equal(pool.snapshot()[0].status, 'healthy');
      pool.reportFailure('a', serverError());
      assert.equal(pool.snapshot()[0].cooldown_until, new Date(clock.now() + 2_000).toISOString(), 'the next ejection is twice as long');
      pool.reportSuccess('a');
      assert.equal(pool.snapshot()[0].status, 'healthy', 'a success ends the ejection');
    });

    it('when every account is ejected, the one that failed least recently is still tried', async () => {
      const clock = fakeClock();
      const { pool } = makePool([acct('a', 1), acct('b', 1)], {}, { now: clock.now });
      for (let i = 0; i < 3; i++) pool.reportFailure('b', serverError());
      clock.advance(100);
      for (let i = 0; i < 3; i++) pool.reportFailure('a', serverError());
      assert.equal(pool.condition().status, 'unhealthy');
      const lease = await pool.acquire('m');
      assert.equal(lease.account.id, 'b');
      const queued = pool.acquire('m');
      assert.equal(pool.queueDepth(), 1, 'the fallback account is full: wait for it');
      lease.release();
      const next = await queued;
      assert.equal(next.account.id, 'b');
      next.release();
    });

    it('an account that fails authentication is unhealthy and never selected until its recheck', async () => {
      const clock = fakeClock();
      const { pool } = makePool([acct('a', 1), { ...acct('b', 1), api_key: 'sk-test-secret-value-123' }], {}, { now: clock.now });
      pool.reportFailure('b', new UpstreamError('auth', 'Incorrect API key provided: sk-test-secret-value-123', 401));
      for (let i = 0; i < 5; i++) {
        const lease = await pool.acquire('m');
        assert.equal(lease.account.id, 'a');
        lease.release();
      }
      const view = pool.snapshot()[1];
      assert.equal(view.status, 'unhealthy');
      assert.equal(view.available_slots, 0);
      assert.equal(view.cooldown_until, null);
      assert.equal(view.errors, 1);
      assert.match(view.last_error!, /^auth \(HTTP 401\)/);
      assert.ok(!JSON.stringify(pool.snapshot()).includes('secret-value'));

      pool.reportFailure('a', new UpstreamError('auth', 'forbidden', 403));
      await assert.rejects(pool.acquire('m'), gatewayError('no_account'));
      await assert.rejects(pool.acquire('m', { exclude: new Set(['x']) }), (err) => isNoOtherAccount(err));
      assert.equal(pool.queueDepth(), 0);

      clock.advance(5 * 60_000);
      const lease = await pool.acquire('m');
      lease.release();
      assert.equal(pool.condition().status, 'healthy');
    });

    it('a waiter whose only account turns unhealthy is answered at once', async () => {
      const { pool } = makePool([acct('a', 1)], { queue_timeout_ms: 60_000 });
      const holder = await pool.acquire('m');
      const waiting = pool.acquire('m');
      pool.reportFailure('a', new UpstreamError('auth', 'revoked', 401));
      await assert.rejects(waiting, gatewayError('no_account'));
      holder.release();
      assert.equal(busyTotal(pool), 0);
    });

    it('counts requests, errors and credits per account', async () => {
      const { pool } = makePool([acct('a', 1)]);
      for (let i = 0; i < 3; i++) (await pool.acquire('m')).release();
      pool.reportFailure('a', new UpstreamError('connect', 'connection refused'));
      pool.reportFailure('a', new UpstreamError('client', 'bad request', 400));
      pool.addCredits('a', 0.1);
      pool.addCredits('a', 0.2);
      pool.addCredits('a', Number.NaN);
      pool.addCredits('nobody', 5);
      const view = pool.snapshot()[0];
      assert.deepEqual(
        { requests: view.requests, errors: view.errors, last_error: view.last_error, credits_used: view.credits_used },
        { requests: 3, errors: 1, last_error: 'connect: connection refused', credits_used: 0.3 },
      );
      assert.deepEqual(Object.keys(view).sort(), [
        'available_slots', 'busy_slots', 'cooldown_until', 'credits_used', 'errors', 'id', 'last_error', 'provider', 'requests', 'status', 'total_slots',
      ]);
    });
  });

  describe('shared state', () => {
    it('tells a ledger that wants to know when this replica starts and stops waiting for each account', async () => {
      const memory = new MemorySlotLedger();
      const calls: string[] = [];
      const ledger: SlotLedger = {
        busy: (id) => memory.busy(id),
        tryAcquire: (id, max) => memory.tryAcquire(id, max),
        release: (id) => memory.release(id),
        setWaiting: (id, waiting) => calls.push(`${id}:${waiting}`),
      };
      const { pool } = makePool([acct('a', 1), acct('b', 1, ['other'])], { queue_timeout_ms: 60_000 }, {}, ledger);
      const holders = [await pool.acquire('m'), await pool.acquire('other')];
      const first = pool.acquire('m');
      const second = pool.acquire('m');
      const retry = pool.acquire('other', { exclude: new Set(['a']) });
      assert.deepEqual(calls, ['a:true', 'b:true']);
      holders[0].release();
      const lease = await first;
      assert.deepEqual(calls, ['a:true', 'b:true'], 'one request still waits for a');
      lease.release();
      assert.deepEqual(calls, ['a:true', 'b:true', 'a:false']);
      (await second).release();
      holders[1].release();
      (await retry).release();
      assert.deepEqual(calls, ['a:true', 'b:true', 'a:false', 'b:false']);
    });

    it('a slot freed by another replica goes to the oldest waiter here', async () => {
      const memory = new MemorySlotLedger();
      const { pool } = makePool([acct('a', 1)], { queue_timeout_ms: 60_000 }, {}, memory);
      const holder = await pool.acquire('m');
      const order: number[] = [];
      const waiters = [0, 1].map((i) => pool.acquire('m').then((lease) => (order.push(i), lease)));
      // Another replica held it: this ledger's count drops without a release through this pool.
      memory.release('a');
      pool.slotFreedElsewhere('a');
      const lease = await waiters[0];
      assert.deepEqual(order, [0]);
      lease.release();
      (await waiters[1]).release();
      assert.deepEqual(order, [0, 1]);
      void holder;
    });

    it('reports an account it took out of service, and applies restrictions another replica saw', async () => {
      const clock = fakeClock();
      const { pool } = makePool([acct('a', 1), acct('b', 1)], {}, { now: clock.now });
      const heard: Array<[string, number]> = [];
      pool.watchHealth((id, marks) => heard.push([id, marks.cooldownUntil - clock.now()]));
      pool.reportFailure('a', rateLimited(4_000));
      pool.reportFailure('a', rateLimited(1_000));
      assert.deepEqual(heard, [['a', 4_000]], 'only a change is reported');
      pool.applySharedHealth('b', { cooldownUntil: clock.now() + 2_000, ejectedUntil: 0, unhealthyUntil: 0 });
      assert.deepEqual(heard, [['a', 4_000]], 'what others saw is not reported back');
      assert.equal(pool.snapshot()[1].status, 'cooling_down');
      await assert.rejects(pool.acquire('m', { exclude: new Set(['x']) }), isNoOtherAccount);
      clock.advance(2_000);
      assert.equal((await pool.acquire('m')).account.id, 'b');
    });
  });

  it('ends queued requests with 503 draining when the module is destroyed', async () => {
    const { pool } = makePool([acct('a', 1)], { queue_timeout_ms: 60_000 });
    const holder = await pool.acquire('m');
    const waiting = pool.acquire('m');
    pool.onModuleDestroy();
    await assert.rejects(waiting, (err) => err instanceof GatewayError && err.code === 'draining');
    holder.release();
    assert.equal(pool.queueDepth(), 0);
  });
});
