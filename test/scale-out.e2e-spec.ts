import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import OpenAI, { APIError } from 'openai';
import { createRedisClient, whenRedisReady } from '../src/redis/redis-client';
import type { FakeUpstream } from './support/fake-upstream';
import { startOpenAIUpstream } from './support/openai-upstream';
import { SpawnedGateway, spawnGateway } from './support/spawn-gateway';
import { TEST_DATABASE_URL, TEST_REDIS_URL } from './support/test-gateway';
import { deleteKeysWithPrefix } from './support/redis-keys';

/*
 * Two gateway processes behind one Redis and one Postgres, as two replicas behind a load
 * balancer: slots, cooldowns, key revocations and rate limits are fleet-wide (DESIGN §4).
 */

const LEASE_MS = 2000;
const HELLO = [{ role: 'user' as const, content: 'Hello from the fleet' }];

interface AccountObject {
  id: string;
  status: 'healthy' | 'cooling_down' | 'unhealthy';
  busy_slots: number;
  available_slots: number;
  cooldown_until: string | null;
}

interface AccountsList {
  data: AccountObject[];
  pool: { total_slots: number; available_slots: number };
}

async function until<T>(probe: () => Promise<T | undefined | false>, what: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await sleep(25);
  }
}

describe('scale-out: two replicas behind one Redis', () => {
  const prefix = `test:scale:${randomBytes(6).toString('hex')}:`;
  const adminToken = `scale-admin-${randomBytes(24).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'drawbridge-scale-'));
  let slow: FakeUpstream;
  let first: FakeUpstream;
  let second: FakeUpstream;
  let a: SpawnedGateway;
  let b: SpawnedGateway;
  let key: string;

  function admin(gw: SpawnedGateway, path: string, method = 'GET', body?: unknown): Promise<Response> {
    return fetch(`${gw.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  async function createKey(fields: Record<string, unknown> = {}): Promise<{ id: string; key: string }> {
    const res = await admin(a, '/admin/keys', 'POST', { name: 'scale-out', ...fields });
    assert.equal(res.status, 201);
    return (await res.json()) as { id: string; key: string };
  }

  async function accounts(gw: SpawnedGateway): Promise<AccountsList> {
    const res = await admin(gw, '/admin/accounts');
    assert.equal(res.status, 200);
    return (await res.json()) as AccountsList;
  }

  async function account(gw: SpawnedGateway, id: string): Promise<AccountObject> {
    return (await accounts(gw)).data.find((x) => x.id === id)!;
  }

  function client(gw: SpawnedGateway, apiKey = key): OpenAI {
    return new OpenAI({ baseURL: `${gw.url}/v1`, apiKey, maxRetries: 0, timeout: 30_000 });
  }

  before(async () => {
    [slow, first, second] = await Promise.all([startOpenAIUpstream({ delayMs: 300 }), startOpenAIUpstream(), startOpenAIUpstream()]);
    const config = join(dir, 'drawbridge.yaml');
    writeFileSync(
      config,
      [
        'server: { drain_timeout_ms: 1000 }',
        'rate_limit: { default_per_minute: 1000 }',
        `pool: { queue_timeout_ms: 10000, retries: 1, cooldown_ms: 30000, lease_ms: ${LEASE_MS} }`,
        `redis: { key_prefix: "${prefix}" }`,
        'models: [{ id: slow }, { id: kiro }, { id: fast }]',
        'accounts:',
        `  - { id: solo, provider: openai, base_url: "${slow.url}", api_key: up-key, max_concurrency: 2, models: [slow] }`,
        `  - { id: first, provider: openai, base_url: "${first.url}", api_key: up-key, max_concurrency: 2, models: [kiro] }`,
        `  - { id: second, provider: openai, base_url: "${second.url}", api_key: up-key, max_concurrency: 2, models: [kiro] }`,
        '  - { id: local, provider: mock, max_concurrency: 20, models: [fast] }',
      ].join('\n'),
    );
    const env = {
      DRAWBRIDGE_CONFIG: config,
      DRAWBRIDGE_DATA_DIR: dir,
      DATABASE_URL: TEST_DATABASE_URL,
      REDIS_URL: TEST_REDIS_URL,
      DRAWBRIDGE_ADMIN_TOKEN: adminToken,
      // `listening on` is logged at info; nothing is logged per request at info.
      LOG_LEVEL: 'info',
    };
    const started = await Promise.allSettled([spawnGateway(env, 60_000), spawnGateway(env, 60_000)]);
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) {
      // Never leave the replica that did start running behind a failed test.
      for (const r of started) if (r.status === 'fulfilled') r.value.child.kill('SIGKILL');
      throw failed.reason;
    }
    [a, b] = started.map((r) => (r as PromiseFulfilledResult<SpawnedGateway>).value);
    key = (await createKey()).key;
  });

  after(async () => {
    for (const gw of [a, b]) {
      if (gw && gw.child.exitCode === null && gw.child.signalCode === null) {
        gw.child.kill('SIGTERM');
        await gw.exited;
      }
    }
    await Promise.all([slow, first, second].map((u) => u?.close()));
    const redis = createRedisClient(TEST_REDIS_URL);
    if (await whenRedisReady(redis, 5000)) {
      await deleteKeysWithPrefix(redis, prefix);
    }
    redis.disconnect();
    rmSync(dir, { recursive: true, force: true });
  });

  it('12 concurrent requests through both replicas never run more than the 2 slots at once, and all succeed', async () => {
    slow.reset();
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) => client(i % 2 ? b : a).chat.completions.create({ model: 'slow', messages: HELLO })),
    );
    assert.equal(answers.length, 12);
    for (const answer of answers) {
      assert.equal(answer.model, 'slow');
      assert.ok(answer.choices[0].message.content);
    }
    assert.equal(slow.requestCount, 12);
    assert.equal(slow.peakConcurrency, 2);
  });

  it('a 429 seen through one replica keeps the other off that account until its Retry-After', async () => {
    first.reset();
    second.reset();
    first.next({ fail: { status: 429, retryAfter: 30 } });
    // Round robin on A reaches `first` within two requests; the 429 is retried on `second`.
    for (let i = 0; i < 2 && first.requestCount === 0; i++) {
      const answer = await client(a).chat.completions.create({ model: 'kiro', messages: HELLO });
      assert.ok(answer.choices[0].message.content);
    }
    assert.equal(first.requestCount, 1);
    const cooling = await until(async () => {
      const view = await account(b, 'first');
      return view.status === 'cooling_down' && view;
    }, 'the other replica sees the cooldown');
    const remaining = Date.parse(cooling.cooldown_until!) - Date.now();
    assert.ok(remaining > 20_000 && remaining <= 30_000, `cooldown ends in ${remaining} ms`);
    for (let i = 0; i < 4; i++) {
      const answer = await client(b).chat.completions.create({ model: 'kiro', messages: HELLO });
      assert.ok(answer.choices[0].message.content);
    }
    assert.equal(first.requestCount, 1, 'no request went to the cooling account');
  });

  it('a key revoked on one replica is refused by the other within 1 s', async () => {
    const revoked = await createKey();
    const onB = client(b, revoked.key);
    assert.ok((await onB.chat.completions.create({ model: 'fast', messages: HELLO })).choices[0].message.content);
    const res = await admin(a, `/admin/keys/${revoked.id}`, 'DELETE');
    assert.equal(res.status, 200);
    const deadline = Date.now() + 1000;
    let status = 200;
    while (status === 200 && Date.now() <= deadline) {
      status = await onB.chat.completions.create({ model: 'fast', messages: HELLO }).then(
        () => 200,
        (err: unknown) => (err instanceof APIError ? (err.status ?? 0) : 0),
      );
      if (status === 200) await sleep(50);
    }
    assert.equal(status, 401);
  });

  it('a key limited to 6 per minute gets exactly 6 of 12 requests admitted across both replicas', async () => {
    const limited = await createKey({ rate_limit_per_minute: 6 });
    const outcomes = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        client(i % 2 ? b : a, limited.key)
          .chat.completions.create({ model: 'fast', messages: HELLO })
          .then(
            () => 'admitted',
            (err: unknown) => (err instanceof APIError && err.status === 429 ? String(err.code) : `unexpected: ${String(err)}`),
          ),
      ),
    );
    assert.equal(outcomes.filter((o) => o === 'admitted').length, 6);
    assert.equal(outcomes.filter((o) => o === 'rate_limit_exceeded').length, 6);
  });

  it('slots held through one replica are busy in the views of the other; killed with SIGKILL, it gives them back within the lease', async () => {
    slow.reset();
    slow.next({ hang: true }, { hang: true });
    const ended: string[] = [];
    const held = [0, 1].map(() =>
      client(a)
        .chat.completions.create({ model: 'slow', messages: HELLO })
        .then(
          () => ended.push('answered'),
          (err: unknown) => ended.push(String(err)),
        ),
    );
    await until(async () => {
      assert.deepEqual(ended, [], 'the requests holding the slots ended early');
      return slow.inFlight === 2;
    }, 'both slots are held through A');

    const busy = await until(async () => {
      const list = await accounts(b);
      const solo = list.data.find((x) => x.id === 'solo')!;
      return solo.busy_slots === 2 && list;
    }, 'B sees both of A\'s slots busy');
    assert.equal(busy.data.find((x) => x.id === 'solo')!.available_slots, 0);
    const health = (await (await fetch(`${b.url}/health`)).json()) as { total_slots: number; available_slots: number };
    assert.equal(health.total_slots - health.available_slots >= 2, true, `health: ${JSON.stringify(health)}`);
    const metrics = await (await fetch(`${b.url}/metrics`)).text();
    assert.match(metrics, /drawbridge_account_slots\{account="solo",state="busy"\} 2/);

    a.child.kill('SIGKILL');
    await a.exited;
    await Promise.all(held);
    // No slot is free until A's leases expire; then B's queued requests get them.
    const served = await Promise.all([0, 1].map(() => client(b).chat.completions.create({ model: 'slow', messages: HELLO })));
    for (const answer of served) assert.ok(answer.choices[0].message.content);
    assert.equal(slow.peakConcurrency, 2);
    await until(async () => (await account(b, 'solo')).busy_slots === 0, 'every slot is free again');
  });
});
