import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RateLimitDecision, RateLimitStore } from './rate-limit-store';

/** What the shared suite needs from one kind of store. Called inside the spec's own describe. */
export interface WindowStoreHarness {
  store(): RateLimitStore;
  /** Two new stores sharing one set of windows, as two replicas would; absent in process. */
  replicas?(): [RateLimitStore, RateLimitStore];
  /** Resolves once the store's clock reads at least `ms` (a settable clock moves to exactly `ms`). */
  waitForClock(ms: number): Promise<void>;
  /** Short enough to wait out in a test, e.g. 1000 ms against a real clock. */
  shortWindowMs: number;
  /** How far `waitForClock` may overshoot: probes meant to land just before a reset aim this much earlier. */
  clockSlackMs: number;
}

const MINUTE = 60_000;

/** Registers the semantics every RateLimitStore must share (DESIGN §3.2, §6.5). */
export function windowStoreBehaviour(harness: WindowStoreHarness): void {
  let buckets = 0;
  const bucket = (): string => `bucket-${++buckets}`;

  const hits = (store: RateLimitStore, name: string, n: number, limit: number, windowMs: number): Promise<RateLimitDecision[]> =>
    Promise.all(Array.from({ length: n }, () => store.hit(name, limit, windowMs)));

  describe('sliding window semantics', () => {
    it('admits exactly the limit, counting remaining down to 0, then refuses', async () => {
      const store = harness.store();
      const name = bucket();
      const remaining: number[] = [];
      for (let i = 0; i < 5; i++) {
        const decision = await store.hit(name, 5, MINUTE);
        assert.equal(decision.allowed, true);
        assert.equal(decision.limit, 5);
        remaining.push(decision.remaining);
      }
      assert.deepEqual(remaining, [4, 3, 2, 1, 0]);
      const refused = await store.hit(name, 5, MINUTE);
      assert.equal(refused.allowed, false);
      assert.equal(refused.limit, 5);
      assert.equal(refused.remaining, 0);
    });

    it('keeps buckets apart', async () => {
      const store = harness.store();
      const first = bucket();
      const second = bucket();
      assert.equal((await store.hit(first, 1, MINUTE)).allowed, true);
      assert.equal((await store.hit(first, 1, MINUTE)).allowed, false);
      assert.equal((await store.hit(second, 1, MINUTE)).allowed, true);
    });

    it('resets when the oldest request leaves: now + window for a lone request, oldest + window after', async () => {
      const store = harness.store();
      const name = bucket();
      const first = await store.hit(name, 3, MINUTE);
      assert.equal(first.resetAtMs, first.nowMs + MINUTE);
      await harness.waitForClock(first.nowMs + 5);
      const second = await store.hit(name, 3, MINUTE);
      assert.ok(second.nowMs >= first.nowMs + 5);
      assert.equal(second.resetAtMs, first.nowMs + MINUTE);
      await store.hit(name, 3, MINUTE);
      const refused = await store.hit(name, 3, MINUTE);
      assert.equal(refused.allowed, false);
      assert.equal(refused.resetAtMs, first.nowMs + MINUTE);
    });

    it('admits exactly the limit out of many concurrent hits', async () => {
      const store = harness.store();
      const decisions = await hits(store, bucket(), 30, 10, MINUTE);
      const admitted = decisions.filter((d) => d.allowed);
      assert.equal(admitted.length, 10);
      assert.deepEqual(admitted.map((d) => d.remaining).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      assert.ok(decisions.filter((d) => !d.allowed).every((d) => d.remaining === 0));
    });

    const replicas = harness.replicas;
    if (replicas) {
      it('admits exactly the limit across two replicas hitting one bucket concurrently', async () => {
        const name = bucket();
        const [first, second] = replicas();
        const [one, two] = await Promise.all([hits(first, name, 15, 10, MINUTE), hits(second, name, 15, 10, MINUTE)]);
        assert.equal([...one, ...two].filter((d) => d.allowed).length, 10);
      });

      it('counts the requests of two replicas together, never one in place of the other', async () => {
        const name = bucket();
        const [first, second] = replicas();
        const remaining: number[] = [];
        for (let i = 0; i < 6; i++) {
          const decision = await (i % 2 === 0 ? first : second).hit(name, 5, MINUTE);
          remaining.push(decision.allowed ? decision.remaining : -1);
        }
        assert.deepEqual(remaining, [4, 3, 2, 1, 0, -1]);
      });
    }

    it('does not count refused requests', async () => {
      const store = harness.store();
      const name = bucket();
      await hits(store, name, 3, 3, MINUTE);
      const refused = await hits(store, name, 5, 3, MINUTE);
      assert.ok(refused.every((d) => !d.allowed));
      // Had the five refusals been stored, the window would hold 8 and a limit of 4 would still refuse.
      const raised = await store.hit(name, 4, MINUTE);
      assert.equal(raised.allowed, true);
      assert.equal(raised.remaining, 0);
    });

    it('admits a request sent at resetAtMs after a refusal, and refuses until then', async () => {
      const store = harness.store();
      const name = bucket();
      const windowMs = harness.shortWindowMs;
      const first = await store.hit(name, 2, windowMs);
      await harness.waitForClock(first.nowMs + Math.floor(windowMs / 2));
      const second = await store.hit(name, 2, windowMs);
      assert.equal(second.allowed, true);
      const refused = await store.hit(name, 2, windowMs);
      assert.equal(refused.allowed, false);
      assert.equal(refused.resetAtMs, first.nowMs + windowMs);

      await harness.waitForClock(refused.resetAtMs - 1 - harness.clockSlackMs);
      let onTime = await store.hit(name, 2, windowMs);
      // A real clock may overshoot the probe past resetAtMs; then the probe is the on-time request.
      if (onTime.nowMs < refused.resetAtMs) {
        assert.equal(onTime.allowed, false);
        await harness.waitForClock(refused.resetAtMs);
        onTime = await store.hit(name, 2, windowMs);
      }
      assert.ok(onTime.nowMs >= refused.resetAtMs);
      assert.equal(onTime.allowed, true);
      if (onTime.nowMs < second.nowMs + windowMs) {
        assert.equal(onTime.remaining, 0);
        assert.equal(onTime.resetAtMs, second.nowMs + windowMs);
      }
    });

    it('applies a lowered limit on the next hit and admits again once the window holds fewer', async () => {
      const store = harness.store();
      const name = bucket();
      const windowMs = harness.shortWindowMs;
      const times: number[] = [];
      for (let i = 0; i < 5; i++) {
        const decision = await store.hit(name, 5, windowMs);
        assert.equal(decision.allowed, true);
        times.push(decision.nowMs);
        await harness.waitForClock(decision.nowMs + 1);
      }
      const lowered = await store.hit(name, 3, windowMs);
      assert.equal(lowered.allowed, false);
      assert.equal(lowered.limit, 3);
      assert.equal(lowered.remaining, 0);
      // The count drops below 3 only when the third-oldest of the five leaves.
      assert.equal(lowered.resetAtMs, times[2] + windowMs);

      await harness.waitForClock(lowered.resetAtMs - 1 - harness.clockSlackMs);
      let admitted = await store.hit(name, 3, windowMs);
      if (admitted.nowMs < lowered.resetAtMs) {
        assert.equal(admitted.allowed, false);
        await harness.waitForClock(lowered.resetAtMs);
        admitted = await store.hit(name, 3, windowMs);
      }
      assert.equal(admitted.allowed, true);
    });

    it('applies a raised limit on the next hit', async () => {
      const store = harness.store();
      const name = bucket();
      await hits(store, name, 2, 2, MINUTE);
      assert.equal((await store.hit(name, 2, MINUTE)).allowed, false);
      const raised = await store.hit(name, 3, MINUTE);
      assert.equal(raised.allowed, true);
      assert.equal(raised.remaining, 0);
    });
  });
}
