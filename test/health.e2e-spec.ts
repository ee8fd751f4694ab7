import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { FakeUpstream } from './support/fake-upstream';
import { startOpenAIUpstream } from './support/openai-upstream';
import { TestGateway, startTestGateway } from './support/test-gateway';
import type { AccountView as AccountObject } from '../src/account-pool/account-pool.service';

interface HealthBody {
  status: string;
  accounts: number;
  total_slots: number;
  available_slots: number;
}

interface AccountList {
  object: string;
  data: AccountObject[];
  pool: { accounts: number; total_slots: number; available_slots: number; queued: number };
}

const HELLO = [{ role: 'user', content: 'Say hello to the probes' }];

function account(id: string, up: FakeUpstream, slots: number) {
  return { id, provider: 'openai', base_url: up.url, api_key: `sk-${id}-upstream-secret-0123456789`, max_concurrency: slots };
}

async function health(gw: TestGateway): Promise<{ status: number; body: HealthBody }> {
  const res = await fetch(`${gw.url}/health`);
  return { status: res.status, body: (await res.json()) as HealthBody };
}

async function accounts(gw: TestGateway): Promise<AccountList> {
  const res = await gw.admin('/admin/accounts');
  assert.equal(res.status, 200);
  return (await res.json()) as AccountList;
}

function complete(gw: TestGateway, key: string, stream = false): Promise<Response> {
  return fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'kiro', messages: HELLO, stream }),
  });
}

/** Polls until `check` passes or `timeoutMs` is over; the last failure is rethrown. */
async function eventually(check: () => Promise<void>, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() >= deadline) throw err;
      await sleep(25);
    }
  }
}

describe('health with one account', () => {
  let up: FakeUpstream;
  let gw: TestGateway;
  let key: string;

  before(async () => {
    up = await startOpenAIUpstream({ text: 'one two three four five six seven eight' });
    gw = await startTestGateway({ config: { models: [{ id: 'kiro' }], accounts: [account('solo', up, 3)], pool: { queue_timeout_ms: 200 } } });
    key = (await gw.createKey({ name: 'health', rate_limit_per_minute: 100_000 })).key;
  });
  beforeEach(() => up.reset());
  after(async () => {
    await gw?.close();
    await up?.close();
  });

  it('/health/live answers 200', async () => {
    const res = await fetch(`${gw.url}/health/live`);
    assert.equal(res.status, 200);
  });

  it('/health/ready answers 200 in Terminus shape when all is well', async () => {
    const res = await fetch(`${gw.url}/health/ready`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { status: string; info: Record<string, { status: string }>; error: object; details: Record<string, { status: string }> };
    assert.equal(body.status, 'ok');
    assert.deepEqual(body.error, {});
    for (const check of ['database', 'pool', 'drain']) {
      assert.equal(body.info[check]?.status, 'up', `${check} in ${JSON.stringify(body)}`);
      assert.equal(body.details[check]?.status, 'up');
    }
  });

  it('slot numbers follow slow streams in flight and return to full after', async () => {
    const idle = await health(gw);
    assert.equal(idle.status, 200);
    assert.deepEqual(
      { status: idle.body.status, accounts: idle.body.accounts, total_slots: idle.body.total_slots, available_slots: idle.body.available_slots },
      { status: 'healthy', accounts: 1, total_slots: 3, available_slots: 3 },
    );

    // Eight chunks 200 ms apart: each stream stays open about 1.4 s after its headers.
    up.set({ chunkDelayMs: 200 });
    const streams = await Promise.all([complete(gw, key, true), complete(gw, key, true)]);
    for (const res of streams) assert.equal(res.status, 200);

    const busy = await health(gw);
    assert.equal(busy.status, 200);
    assert.equal(busy.body.status, 'healthy');
    assert.equal(busy.body.total_slots, 3);
    assert.equal(busy.body.available_slots, 1);

    const list = await accounts(gw);
    assert.equal(list.object, 'list');
    assert.equal(list.data.length, 1);
    const solo = list.data[0]!;
    assert.equal(solo.id, 'solo');
    assert.equal(solo.status, 'healthy');
    assert.equal(solo.total_slots, 3);
    assert.equal(solo.busy_slots, 2);
    assert.equal(solo.available_slots, 1);
    assert.equal(solo.cooldown_until, null);
    assert.deepEqual(list.pool, { accounts: 1, total_slots: 3, available_slots: 1, queued: 0 });

    for (const res of streams) assert.ok((await res.text()).endsWith('data: [DONE]\n\n'));
    await eventually(async () => {
      const done = await health(gw);
      assert.equal(done.body.status, 'healthy');
      assert.equal(done.body.available_slots, 3);
    });
    const settled = await accounts(gw);
    assert.equal(settled.data[0]!.busy_slots, 0);
    assert.equal(settled.data[0]!.available_slots, 3);
    assert.deepEqual(settled.pool, { accounts: 1, total_slots: 3, available_slots: 3, queued: 0 });
  });

  it('an upstream 429 on the only account makes /health unhealthy (503) until the cooldown ends', async () => {
    up.next({ fail: { status: 429, retryAfter: 1 } });
    const limited = await complete(gw, key);
    assert.equal(limited.status, 502);
    await limited.body?.cancel();
    assert.equal(up.requests.length, 1);

    const list = await accounts(gw);
    const solo = list.data[0]!;
    assert.equal(solo.status, 'cooling_down');
    assert.equal(solo.available_slots, 0);
    assert.equal(solo.total_slots, 3);
    const until = Date.parse(solo.cooldown_until ?? '');
    assert.ok(until > Date.now() - 50, `cooldown_until ${solo.cooldown_until}`);
    assert.deepEqual(list.pool, { accounts: 1, total_slots: 3, available_slots: 0, queued: 0 });

    const sick = await health(gw);
    assert.equal(sick.status, 503);
    assert.equal(sick.body.status, 'unhealthy');
    assert.equal(sick.body.total_slots, 3);
    assert.equal(sick.body.available_slots, 0);

    const ready = await fetch(`${gw.url}/health/ready`);
    assert.equal(ready.status, 503);
    await ready.body?.cancel();

    // A cooling-down account is healthy again as soon as its cooldown ends.
    await sleep(Math.max(0, until - Date.now()) + 50);
    const back = await health(gw);
    assert.equal(back.status, 200);
    assert.equal(back.body.status, 'healthy');
    assert.equal(back.body.available_slots, 3);
  });

  it('/health/ready answers 503 in Terminus shape while no account is usable', async () => {
    up.next({ fail: { status: 429, retryAfter: 1 } });
    const limited = await complete(gw, key);
    assert.equal(limited.status, 502);
    await limited.body?.cancel();
    const limitedAt = Date.now();

    const ready = await fetch(`${gw.url}/health/ready`);
    assert.equal(ready.status, 503);
    const body = (await ready.json()) as { status?: string; error?: Record<string, { status: string }>; details?: Record<string, { status: string }> };
    assert.equal(body.status, 'error', `not Terminus's shape: ${JSON.stringify(body)}`);
    assert.equal(body.error?.pool?.status, 'down');
    assert.equal(body.details?.database?.status, 'up');
    assert.equal(body.details?.pool?.status, 'down');

    // Leave the account usable for whatever runs next.
    await sleep(Math.max(0, limitedAt + 1100 - Date.now()));
  });
});

describe('health with two accounts', () => {
  let upA: FakeUpstream;
  let upB: FakeUpstream;
  let gw: TestGateway;
  let key: string;

  before(async () => {
    [upA, upB] = await Promise.all([startOpenAIUpstream({ text: 'from A' }), startOpenAIUpstream({ text: 'from B' })]);
    gw = await startTestGateway({ config: { models: [{ id: 'kiro' }], accounts: [account('acct-a', upA, 3), account('acct-b', upB, 2)], pool: { retries: 1 } } });
    key = (await gw.createKey({ name: 'health-2', rate_limit_per_minute: 100_000 })).key;
  });
  after(async () => {
    await gw?.close();
    await Promise.all([upA?.close(), upB?.close()]);
  });

  it('a 429 puts one account in cooling_down and /health degraded (200) while the other serves', async () => {
    const start = await health(gw);
    assert.deepEqual([start.status, start.body.status, start.body.total_slots, start.body.available_slots], [200, 'healthy', 5, 5]);

    upA.next({ fail: { status: 429, retryAfter: 30 } });
    // Whichever account the pool picks first, acct-a sees a request within a few tries.
    for (let i = 0; i < 4 && upA.requests.length === 0; i++) {
      const res = await complete(gw, key);
      assert.equal(res.status, 200);
      await res.body?.cancel();
    }
    assert.equal(upA.requests.length, 1);
    assert.equal(upA.requests[0]!.status, 429);

    const list = await accounts(gw);
    const byId = new Map(list.data.map((a) => [a.id, a]));
    const a = byId.get('acct-a')!;
    assert.equal(a.status, 'cooling_down');
    assert.equal(a.available_slots, 0);
    assert.equal(a.busy_slots, 0);
    const until = Date.parse(a.cooldown_until ?? '');
    assert.ok(until > Date.now() + 20_000 && until <= Date.now() + 31_000, `cooldown_until ${a.cooldown_until}`);
    const b = byId.get('acct-b')!;
    assert.equal(b.status, 'healthy');
    assert.equal(b.available_slots, 2);
    assert.equal(b.cooldown_until, null);
    assert.deepEqual(list.pool, { accounts: 2, total_slots: 5, available_slots: 2, queued: 0 });

    const degraded = await health(gw);
    assert.equal(degraded.status, 200);
    assert.equal(degraded.body.status, 'degraded');
    assert.equal(degraded.body.accounts, 2);
    assert.equal(degraded.body.total_slots, 5);
    assert.equal(degraded.body.available_slots, 2);

    const ready = await fetch(`${gw.url}/health/ready`);
    assert.equal(ready.status, 200);
    await ready.body?.cancel();
  });
});
