import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { MemoryWindowStore } from './memory-window.store';
import { windowStoreBehaviour } from './window-store.behaviour';

const START = 1_700_000_000_000;

function fakeClock(): { now: number; read: () => number } {
  const clock = { now: START, read: () => clock.now };
  return clock;
}

describe('MemoryWindowStore', () => {
  const clock = fakeClock();
  const store = new MemoryWindowStore({ clock: clock.read, sweepIntervalMs: 0 });

  windowStoreBehaviour({
    store: () => store,
    waitForClock: async (ms) => {
      if (ms > clock.now) clock.now = ms;
    },
    shortWindowMs: 1000,
    clockSlackMs: 0,
  });

  it('drops idle buckets on sweep and keeps those with requests still in their window', async () => {
    const clock = fakeClock();
    const store = new MemoryWindowStore({ clock: clock.read, sweepIntervalMs: 0 });
    for (let i = 0; i < 1000; i++) await store.hit(`idle-${i}`, 5, 1000);
    clock.now += 500;
    await store.hit('busy', 5, 1000);
    assert.equal(store.bucketCount, 1001);

    clock.now = START + 999;
    store.sweep();
    assert.equal(store.bucketCount, 1001);

    clock.now = START + 1000;
    store.sweep();
    assert.equal(store.bucketCount, 1);
    assert.equal((await store.hit('busy', 5, 1000)).remaining, 3);

    clock.now = START + 1999;
    store.sweep();
    assert.equal(store.bucketCount, 1);
    clock.now = START + 2000;
    store.sweep();
    assert.equal(store.bucketCount, 0);
  });

  it('sweeps idle buckets by itself on its timer', async () => {
    const clock = fakeClock();
    const store = new MemoryWindowStore({ clock: clock.read, sweepIntervalMs: 10 });
    try {
      for (let i = 0; i < 100; i++) await store.hit(`idle-${i}`, 5, 1000);
      clock.now += 1000;
      for (let waited = 0; store.bucketCount > 0 && waited < 2000; waited += 10) await sleep(10);
      assert.equal(store.bucketCount, 0);
    } finally {
      store.close();
    }
  });

  it('never lets a clock stepping back reopen a full window', async () => {
    const clock = fakeClock();
    const store = new MemoryWindowStore({ clock: clock.read, sweepIntervalMs: 0 });
    await store.hit('k', 1, 1000);
    clock.now += 900;
    assert.equal((await store.hit('k', 1, 1000)).allowed, false);
    clock.now -= 5000;
    const refused = await store.hit('k', 1, 1000);
    assert.equal(refused.allowed, false);
    assert.equal(refused.nowMs, START + 900);
  });

  it('grows a bucket past its initial capacity without losing order', async () => {
    const clock = fakeClock();
    const store = new MemoryWindowStore({ clock: clock.read, sweepIntervalMs: 0 });
    for (let i = 0; i < 50; i++) {
      const decision = await store.hit('k', 50, 10_000);
      assert.equal(decision.allowed, true);
      assert.equal(decision.resetAtMs, START + 10_000);
      clock.now += 10;
    }
    assert.equal((await store.hit('k', 50, 10_000)).allowed, false);
    // Entries leave one by one in the order they came, 10 ms apart.
    clock.now = START + 10_000;
    const next = await store.hit('k', 50, 10_000);
    assert.equal(next.allowed, true);
    assert.equal(next.resetAtMs, START + 10_010);
    assert.equal((await store.hit('k', 50, 10_000)).allowed, false);
    // The ring has wrapped; growing it for a raised limit keeps the oldest first.
    clock.now = START + 10_010;
    assert.equal((await store.hit('k', 50, 10_000)).resetAtMs, START + 10_020);
    for (let i = 0; i < 10; i++) assert.equal((await store.hit('k', 60, 10_000)).resetAtMs, START + 10_020);
    const full = await store.hit('k', 60, 10_000);
    assert.equal(full.allowed, false);
    assert.equal(full.resetAtMs, START + 10_020);
  });
});
