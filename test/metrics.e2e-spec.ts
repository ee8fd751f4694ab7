import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { FakeUpstream } from './support/fake-upstream';
import { startOpenAIUpstream } from './support/openai-upstream';
import { TestGateway, startTestGateway } from './support/test-gateway';

/*
 * prom-client metrics are process-global and every spec file runs in its own process, so the
 * deltas read here are this file's own; the cases run one after the other on purpose.
 */

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const HELLO = [{ role: 'user', content: 'Count these five words' }];
const UPSTREAM_KEY = 'sk-metrics-upstream-secret-0123456789abcdef';

/** The Prometheus text format, simply: one sample per non-comment line. */
function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line.length === 0 || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/.exec(line);
    assert.ok(match, `unreadable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, name, raw] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[name!] = raw!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** Sum of the samples named `name` whose labels include `labels`; 0 when there is none. */
function total(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

function has(samples: Sample[], name: string, labels: Record<string, string>): boolean {
  return samples.some((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

function promtoolCheck(text: string): void {
  const result = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.ifError(result.error);
  assert.equal(result.status, 0, `promtool check metrics failed:\n${result.stdout}${result.stderr}`);
}

describe('Prometheus metrics', () => {
  let up: FakeUpstream;
  let gw: TestGateway;
  let key: { id: string; key: string };
  const secrets: string[] = [UPSTREAM_KEY];

  const scrape = async (): Promise<{ text: string; samples: Sample[] }> => {
    const res = await fetch(`${gw.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const text = await res.text();
    return { text, samples: parseMetrics(text) };
  };

  const post = (apiKey: string, body: Record<string, unknown>, signal?: AbortSignal): Promise<Response> =>
    fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'kiro', messages: HELLO, ...body }),
      signal,
    });

  const requests = (samples: Sample[], status: string, model = 'kiro'): number => total(samples, 'drawbridge_requests_total', { model, status });

  before(async () => {
    up = await startOpenAIUpstream({ apiKey: UPSTREAM_KEY, text: 'one two three four five six seven' });
    gw = await startTestGateway({
      config: {
        models: [{ id: 'kiro', credits: { per_request: 1, per_1k_prompt_tokens: 1, per_1k_completion_tokens: 5 } }, { id: 'mocky' }],
        accounts: [
          { id: 'acct-m1', provider: 'openai', base_url: up.url, api_key: UPSTREAM_KEY, max_concurrency: 4, models: ['kiro'] },
          { id: 'acct-m2', provider: 'mock', max_concurrency: 2, models: ['mocky'] },
        ],
      },
    });
    key = await gw.createKey({ name: 'metrics', rate_limit_per_minute: 100_000 });
    secrets.push(key.key, gw.adminToken);
  });
  beforeEach(() => up.reset());
  after(async () => {
    await gw?.close();
    await up?.close();
  });

  it('has slot gauges for every configured account right after start-up', async () => {
    const { text, samples } = await scrape();
    for (const [account, slots] of [['acct-m1', 4], ['acct-m2', 2]] as const) {
      assert.ok(has(samples, 'drawbridge_account_slots', { account, state: 'busy' }), `no busy gauge for ${account}`);
      assert.equal(total(samples, 'drawbridge_account_slots', { account, state: 'busy' }), 0);
      assert.equal(total(samples, 'drawbridge_account_slots', { account, state: 'available' }), slots);
    }
    assert.ok(has(samples, 'drawbridge_pool_queue_depth', {}));
    assert.ok(has(samples, 'drawbridge_rate_limit_store_errors_total', {}));
    for (const le of ['5', '30', '60']) {
      assert.ok(has(samples, 'drawbridge_request_duration_seconds_bucket', { le }), `no duration bucket le="${le}"`);
    }
    for (const histogram of ['drawbridge_request_duration_seconds', 'drawbridge_time_to_first_token_seconds', 'drawbridge_gateway_overhead_seconds']) {
      assert.match(text, new RegExp(`^# TYPE ${histogram} histogram$`, 'm'));
    }
    for (const counter of ['drawbridge_tokens_total', 'drawbridge_credits_total', 'drawbridge_upstream_requests_total']) {
      assert.match(text, new RegExp(`^# TYPE ${counter} counter$`, 'm'));
    }
    assert.ok(has(samples, 'process_cpu_user_seconds_total', {}), 'no Node process defaults');
  });

  it('a success moves requests, duration, tokens, credits and upstream outcomes', async () => {
    const before = (await scrape()).samples;
    const res = await post(key.key, {});
    assert.equal(res.status, 200);
    const body = (await res.json()) as { usage: { prompt_tokens: number; completion_tokens: number } };
    const after = (await scrape()).samples;

    assert.equal(requests(after, 'success') - requests(before, 'success'), 1);
    for (const status of ['error', 'rate_limited', 'cancelled']) assert.equal(requests(after, status), requests(before, status), status);
    assert.equal(total(after, 'drawbridge_request_duration_seconds_count') - total(before, 'drawbridge_request_duration_seconds_count'), 1);
    assert.equal(
      total(after, 'drawbridge_tokens_total', { model: 'kiro', type: 'prompt' }) - total(before, 'drawbridge_tokens_total', { model: 'kiro', type: 'prompt' }),
      body.usage.prompt_tokens,
    );
    assert.equal(
      total(after, 'drawbridge_tokens_total', { model: 'kiro', type: 'completion' }) -
        total(before, 'drawbridge_tokens_total', { model: 'kiro', type: 'completion' }),
      body.usage.completion_tokens,
    );
    const credits = total(after, 'drawbridge_credits_total', { model: 'kiro' }) - total(before, 'drawbridge_credits_total', { model: 'kiro' });
    assert.ok(Math.abs(credits - (1 + body.usage.prompt_tokens / 1000 + (5 * body.usage.completion_tokens) / 1000)) < 1e-9, `credits delta ${credits}`);
    const upstream = { account: 'acct-m1', outcome: 'success' };
    assert.equal(total(after, 'drawbridge_upstream_requests_total', upstream) - total(before, 'drawbridge_upstream_requests_total', upstream), 1);
  });

  it('an upstream 500 on the only account (502 to the client) counts as error and as a failed upstream call', async () => {
    const before = (await scrape()).samples;
    up.next({ fail: { status: 500 } });
    const res = await post(key.key, {});
    assert.equal(res.status, 502);
    await res.body?.cancel();
    const after = (await scrape()).samples;

    assert.equal(requests(after, 'error') - requests(before, 'error'), 1);
    assert.equal(requests(after, 'success'), requests(before, 'success'));
    const all = total(after, 'drawbridge_upstream_requests_total', { account: 'acct-m1' }) - total(before, 'drawbridge_upstream_requests_total', { account: 'acct-m1' });
    const ok =
      total(after, 'drawbridge_upstream_requests_total', { account: 'acct-m1', outcome: 'success' }) -
      total(before, 'drawbridge_upstream_requests_total', { account: 'acct-m1', outcome: 'success' });
    assert.deepEqual({ failed: all - ok, ok }, { failed: 1, ok: 0 });
  });

  it('a request refused by the rate limit counts as rate_limited', async () => {
    const limited = await gw.createKey({ name: 'metrics-limited', rate_limit_per_minute: 1 });
    secrets.push(limited.key);
    const before = (await scrape()).samples;
    const first = await post(limited.key, {});
    assert.equal(first.status, 200);
    await first.body?.cancel();
    const second = await post(limited.key, {});
    assert.equal(second.status, 429);
    await second.body?.cancel();
    const after = (await scrape()).samples;

    assert.equal(requests(after, 'success') - requests(before, 'success'), 1);
    const labels = after.filter((s) => s.name === 'drawbridge_requests_total' && s.labels.status === 'rate_limited' && s.value > 0).map((s) => s.labels.model);
    assert.equal(requests(after, 'rate_limited') - requests(before, 'rate_limited'), 1, `rate_limited counted under model(s) ${JSON.stringify(labels)}, not kiro`);
    assert.equal(requests(after, 'error'), requests(before, 'error'));
  });

  it('a stream the client abandons counts as cancelled and gives its slot back', async () => {
    const before = (await scrape()).samples;
    up.set({ hangAfterChunks: 1 });
    const abort = new AbortController();
    const res = await post(key.key, { stream: true }, abort.signal);
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    assert.equal((await reader.read()).done, false);

    const during = (await scrape()).samples;
    assert.equal(total(during, 'drawbridge_account_slots', { account: 'acct-m1', state: 'busy' }), 1);
    assert.equal(total(during, 'drawbridge_account_slots', { account: 'acct-m1', state: 'available' }), 3);

    abort.abort();
    await reader.cancel().catch(() => undefined);
    let after = (await scrape()).samples;
    for (const deadline = Date.now() + 2000; requests(after, 'cancelled') === requests(before, 'cancelled') && Date.now() < deadline; ) {
      await sleep(25);
      after = (await scrape()).samples;
    }
    assert.equal(requests(after, 'cancelled') - requests(before, 'cancelled'), 1);
    assert.equal(requests(after, 'success'), requests(before, 'success'));
    assert.equal(requests(after, 'error'), requests(before, 'error'));
    assert.equal(total(after, 'drawbridge_account_slots', { account: 'acct-m1', state: 'busy' }), 0);
    assert.equal(total(after, 'drawbridge_account_slots', { account: 'acct-m1', state: 'available' }), 4);
  });

  it('an unconfigured model is labelled unknown, and no label value carries a key', async () => {
    const before = (await scrape()).samples;
    // A client that puts its own key in the model field must not get it into a label.
    const res = await post(key.key, { model: key.key });
    assert.equal(res.status, 404);
    await res.body?.cancel();
    const mocked = await post(key.key, { model: 'mocky' });
    assert.equal(mocked.status, 200);
    await mocked.body?.cancel();
    const { text, samples: after } = await scrape();

    assert.equal(requests(after, 'error', 'unknown') - requests(before, 'error', 'unknown'), 1);
    assert.equal(requests(after, 'success', 'mocky') - requests(before, 'success', 'mocky'), 1);
    for (const secret of secrets) assert.ok(!text.includes(secret), 'a secret appears in /metrics');
    for (const sample of after) {
      for (const value of Object.values(sample.labels)) {
        assert.ok(!/\bdb-/.test(value) && !/\bsk-/.test(value), `label value ${value} of ${sample.name} looks like a key`);
      }
    }
    const models = new Set(after.filter((s) => s.name === 'drawbridge_requests_total').map((s) => s.labels.model));
    assert.deepEqual([...models].sort(), ['kiro', 'mocky', 'unknown']);
  });

  it('passes promtool check metrics once every series has values', async () => {
    promtoolCheck((await scrape()).text);
  });

  it('GET /admin/metrics is a JSON snapshot of requests by status, latency percentiles, tokens, credits and pool', async () => {
    const res = await gw.admin('/admin/metrics');
    assert.equal(res.status, 200);
    const snapshot = (await res.json()) as {
      requests: { total: number; by_status: Record<string, number> };
      latency_seconds: { p50: number; p95: number; p99: number };
      tokens: { prompt: number; completion: number };
      credits: { total: number };
      pool: { accounts: number; total_slots: number; available_slots: number; queued: number };
    };
    const { samples } = await scrape();

    for (const status of ['success', 'error', 'rate_limited', 'cancelled']) {
      assert.equal(snapshot.requests.by_status[status], total(samples, 'drawbridge_requests_total', { status }), status);
    }
    assert.ok(snapshot.requests.by_status.success! >= 3 && snapshot.requests.by_status.cancelled! >= 1, JSON.stringify(snapshot.requests));
    assert.equal(snapshot.requests.total, total(samples, 'drawbridge_requests_total'));

    const { p50, p95, p99 } = snapshot.latency_seconds;
    for (const p of [p50, p95, p99]) assert.ok(typeof p === 'number' && Number.isFinite(p) && p > 0, `latency ${JSON.stringify(snapshot.latency_seconds)}`);
    assert.ok(p50 <= p95 && p95 <= p99);

    assert.ok(snapshot.tokens.prompt > 0 && snapshot.tokens.completion > 0);
    assert.equal(snapshot.tokens.prompt, total(samples, 'drawbridge_tokens_total', { type: 'prompt' }));
    assert.equal(snapshot.tokens.completion, total(samples, 'drawbridge_tokens_total', { type: 'completion' }));
    assert.ok(snapshot.credits.total > 0);
    assert.ok(Math.abs(snapshot.credits.total - total(samples, 'drawbridge_credits_total')) < 1e-9);
    assert.deepEqual(snapshot.pool, { accounts: 2, total_slots: 6, available_slots: 6, queued: 0 });
  });
});
