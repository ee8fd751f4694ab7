import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import OpenAI, { APIError, APIUserAbortError } from 'openai';
import type { ChatCompletionMessageParam } from 'openai/resources/chat/completions';
import { DEFAULT_REPLY, FakeUpstream } from './support/fake-upstream';
import { apiError, postCompletion } from './support/http';
import { startOpenAIUpstream } from './support/openai-upstream';
import { ErrorEnvelope, TestGateway, startTestGateway } from './support/test-gateway';
import { waitForUsageRows } from './support/usage-rows';
import type { AccountView as AccountObject } from '../src/account-pool/account-pool.service';

const HELLO: ChatCompletionMessageParam[] = [{ role: 'user', content: 'Say hello to the pool' }];

/**
 * Opens a streaming completion with node:http, reads until `events` SSE events arrived, then
 * destroys the socket as a client that goes away does.
 */
function streamThenHangUp(url: string, key: string, body: unknown, events: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    });
    req.on('error', () => undefined);
    req.on('response', (res) => {
      if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
      let text = '';
      res.setEncoding('utf8');
      res.on('error', () => undefined);
      res.on('data', (d: string) => {
        text += d;
        if (text.split('\n\n').length - 1 >= events) {
          req.destroy();
          resolve(text);
        }
      });
      res.on('end', () => reject(new Error(`the stream ended before ${events} events: ${text}`)));
    });
    req.end(JSON.stringify(body));
  });
}

function events(text: string): string[] {
  return text
    .split('\n\n')
    .filter((e) => e.length > 0)
    .map((e) => {
      assert.match(e, /^data: [^\n]*$/);
      return e.slice('data: '.length);
    });
}

describe('account pool', () => {
  let gw: TestGateway;
  let upA: FakeUpstream;
  let upB: FakeUpstream;
  let upSolo: FakeUpstream;
  let client: OpenAI;
  let key: { id: string; key: string };
  const account = (id: string, base: FakeUpstream, models: string[], slots = 2, extra: Record<string, unknown> = {}) => ({
    id,
    provider: 'openai',
    base_url: base.url,
    api_key: `sk-${id}-secret-0123456789`,
    max_concurrency: slots,
    models,
    ...extra,
  });

  const accounts = async (): Promise<Map<string, AccountObject>> => {
    const res = await gw.admin('/admin/accounts');
    assert.equal(res.status, 200);
    return new Map(((await res.json()) as { data: AccountObject[] }).data.map((a) => [a.id, a]));
  };

  before(async () => {
    [upA, upB, upSolo] = await Promise.all([
      startOpenAIUpstream({ text: 'answer from A' }),
      startOpenAIUpstream({ text: 'answer from B' }),
      startOpenAIUpstream({ text: 'answer from solo' }),
    ]);
    gw = await startTestGateway({
      config: {
        pool: { queue_timeout_ms: 300, retries: 2 },
        models: ['solo', 'fo', 'rl', 'auth', 'cut', 'cool', 'slow'].map((id) => ({ id })),
        accounts: [
          account('solo-1', upSolo, ['solo'], 1),
          account('fo-a', upA, ['fo']),
          account('fo-b', upB, ['fo']),
          account('rl-a', upA, ['rl']),
          account('rl-b', upB, ['rl']),
          account('cut-a', upA, ['cut']),
          account('cut-b', upB, ['cut']),
          account('auth-a', upA, ['auth']),
          account('auth-b', upB, ['auth']),
          account('cool-1', upSolo, ['cool'], 1),
          account('slow-1', upSolo, ['slow'], 1, { timeouts: { first_byte_ms: 150, idle_ms: 150 } }),
        ],
      },
    });
    key = await gw.createKey({ name: 'pool', rate_limit_per_minute: 100_000 });
    client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key.key, maxRetries: 0, timeout: 10_000 });
  });
  beforeEach(() => {
    for (const up of [upA, upB, upSolo]) up.reset();
  });
  after(async () => {
    await gw?.close();
    await Promise.all([upA, upB, upSolo].map((up) => up?.close()));
  });

  it('answers 503 pool_exhausted with Retry-After when no slot frees within queue_timeout_ms', async () => {
    const own = await gw.createKey({ name: 'exhausted', rate_limit_per_minute: 100_000 });
    const ownClient = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: own.key, maxRetries: 0, timeout: 10_000 });
    upSolo.next({ hang: true });
    const holder = new AbortController();
    const holding = ownClient.chat.completions.create({ model: 'solo', messages: HELLO }, { signal: holder.signal }).catch((err: unknown) => err);
    await upSolo.waitForRequests(1);

    const res = await postCompletion(gw.url, own.key, { model: 'solo', messages: HELLO });
    assert.equal(res.status, 503);
    const body = (await res.json()) as ErrorEnvelope;
    assert.equal(body.error.code, 'pool_exhausted');
    assert.equal(body.error.type, 'service_unavailable');
    const retryAfter = res.headers.get('retry-after');
    assert.match(retryAfter ?? '', /^\d+$/);
    assert.ok(Number(retryAfter) >= 1);

    const err = await apiError(ownClient.chat.completions.create({ model: 'solo', messages: HELLO, stream: true }));
    assert.equal(err.status, 503);
    assert.equal(err.code, 'pool_exhausted');
    assert.equal(upSolo.requests.length, 1, 'a queued request reached the upstream');

    holder.abort();
    assert.ok((await holding) instanceof APIUserAbortError);
    await upSolo.waitForAbort();
    // Queue timeouts reached the pool: they are recorded, as the cancelled holder is.
    const rows = await waitForUsageRows(own.id, 3);
    assert.deepEqual(rows.map((r) => r.error_code).sort(), ['client_closed', 'pool_exhausted', 'pool_exhausted']);
    assert.deepEqual(rows.map((r) => r.http_status).sort(), [499, 503, 503]);
  });

  it('a client disconnect mid-stream aborts the upstream, frees the slot and is recorded as cancelled', async () => {
    const own = await gw.createKey({ name: 'disconnect', rate_limit_per_minute: 100_000 });
    upSolo.next({ hangAfterChunks: 2 });
    const seen = await streamThenHangUp(gw.url, own.key, { model: 'solo', messages: HELLO, stream: true }, 3);
    assert.ok(seen.includes('answer'));
    const hungUpAt = Date.now();
    const abort = await upSolo.waitForAbort(2000);
    assert.ok(abort.at - hungUpAt < 2000);
    assert.equal(upSolo.requests[0]!.outcome, 'aborted');

    // One slot only, and a 300 ms queue timeout: this succeeds only if the slot came back.
    const next = await new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: own.key, maxRetries: 0, timeout: 10_000 }).chat.completions.create({ model: 'solo', messages: HELLO });
    assert.equal(next.choices[0]!.message.content, 'answer from solo');

    const rows = await waitForUsageRows(own.id, 2);
    const cancelled = rows.find((r) => r.status === 'cancelled');
    assert.ok(cancelled, `no cancelled row in ${JSON.stringify(rows)}`);
    assert.equal(cancelled.stream, true);
    assert.equal(cancelled.account_id, 'solo-1');
    assert.ok(cancelled.prompt_tokens > 0, 'no partial prompt usage');
    assert.ok(cancelled.completion_tokens > 0, 'no partial completion usage');
    assert.equal(rows.filter((r) => r.status === 'success').length, 1);
    assert.equal((await accounts()).get('solo-1')!.busy_slots, 0);
  });

  it('a client that leaves before the first byte aborts the upstream and frees the slot', async () => {
    upSolo.next({ delayMs: 5000 });
    const leaving = new AbortController();
    const call = client.chat.completions.create({ model: 'solo', messages: HELLO }, { signal: leaving.signal });
    await upSolo.waitForRequests(1);
    leaving.abort();
    assert.ok((await call.catch((err: unknown) => err)) instanceof APIUserAbortError);
    await upSolo.waitForAbort(2000);
    const next = await client.chat.completions.create({ model: 'solo', messages: HELLO });
    assert.equal(next.choices[0]!.message.content, 'answer from solo');
  });

  it('fails over from an account answering 500 to the next one', async () => {
    const own = await gw.createKey({ name: 'failover', rate_limit_per_minute: 100_000 });
    const ownClient = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: own.key, maxRetries: 0, timeout: 10_000 });
    upA.set({ fail: { status: 500 } });
    const plain = await ownClient.chat.completions.create({ model: 'fo', messages: HELLO });
    assert.equal(plain.choices[0]!.message.content, 'answer from B');
    let streamed = '';
    for await (const chunk of await ownClient.chat.completions.create({ model: 'fo', messages: HELLO, stream: true })) {
      streamed += chunk.choices[0]?.delta.content ?? '';
    }
    assert.equal(streamed, 'answer from B');
    assert.ok(upA.requests.length >= 1, 'the failing account was never tried');
    assert.ok(upA.requests.every((r) => r.status === 500));
    assert.equal(upB.requests.length, 2);

    // One row per request, not per attempt, on the account that answered.
    const rows = await waitForUsageRows(own.id, 2);
    assert.equal(rows.length, 2);
    assert.deepEqual(rows.map((r) => [r.status, r.account_id]), [['success', 'fo-b'], ['success', 'fo-b']]);
  });

  it("an upstream 429 cools the account down for its Retry-After, then it serves again", async () => {
    upA.next({ fail: { status: 429, retryAfter: 2 } });
    for (let i = 0; i < 3 && upA.requests.length === 0; i++) {
      const answer = await client.chat.completions.create({ model: 'rl', messages: HELLO });
      assert.equal(answer.choices[0]!.message.content, 'answer from B');
    }
    assert.equal(upA.requests.length, 1);
    assert.equal(upA.requests[0]!.status, 429);
    const limitedAt = upA.requests[0]!.endedAt ?? Date.now();

    const cooling = await accounts();
    assert.equal(cooling.get('rl-a')!.status, 'cooling_down');
    assert.equal(cooling.get('rl-a')!.available_slots, 0);
    const until = Date.parse(cooling.get('rl-a')!.cooldown_until ?? '');
    assert.ok(until > Date.now() && until <= limitedAt + 5000, `cooldown_until ${cooling.get('rl-a')!.cooldown_until}`);
    assert.equal(cooling.get('rl-b')!.status, 'healthy');

    for (let i = 0; i < 4; i++) {
      const answer = await client.chat.completions.create({ model: 'rl', messages: HELLO });
      assert.equal(answer.choices[0]!.message.content, 'answer from B');
    }
    assert.equal(upA.requests.length, 1, 'a cooling account was used');

    await sleep(Math.max(0, until - Date.now()) + 50);
    assert.equal((await accounts()).get('rl-a')!.status, 'healthy');
    for (let i = 0; i < 3 && upA.requests.length === 1; i++) await client.chat.completions.create({ model: 'rl', messages: HELLO });
    assert.equal(upA.requests.length, 2, 'the account did not serve again after its cooldown');
  });

  it('an upstream 401 marks the account unhealthy without showing its key; the other account serves from then on', async () => {
    const secret = 'sk-auth-a-secret-0123456789';
    upA.next({ fail: { status: 401, message: `Incorrect API key provided: ${secret}.` } });
    for (let i = 0; i < 3 && upA.requests.length === 0; i++) {
      // Not retryable (DESIGN §6.3): the request that met the 401 may see 502, never the key.
      const answer = await client.chat.completions.create({ model: 'auth', messages: HELLO }).then(
        (completion) => completion.choices[0]!.message.content,
        (err: unknown) => (err instanceof APIError ? `${err.status} ${err.code} ${err.message}` : String(err)),
      );
      assert.ok(answer === 'answer from B' || answer?.startsWith('502 upstream_error'), answer ?? 'null');
      assert.ok(!answer?.includes(secret.slice(3)), 'the upstream key is shown');
    }
    assert.equal(upA.requests.length, 1);

    const res = await gw.admin('/admin/accounts');
    const text = await res.text();
    assert.ok(!text.includes(secret.slice(3)), 'the upstream key is shown');
    const view = (JSON.parse(text) as { data: AccountObject[] }).data.find((a) => a.id === 'auth-a')!;
    assert.equal(view.status, 'unhealthy');
    assert.equal(view.available_slots, 0);

    for (let i = 0; i < 3; i++) await client.chat.completions.create({ model: 'auth', messages: HELLO });
    assert.equal(upA.requests.length, 1, 'an unhealthy account was used');
  });

  it('answers 504 upstream_timeout when nothing comes within first_byte_ms, and an error event when a stream stalls', async () => {
    upSolo.next({ hang: true });
    const err = await apiError(client.chat.completions.create({ model: 'slow', messages: HELLO }));
    assert.equal(err.status, 504);
    assert.equal(err.code, 'upstream_timeout');
    await upSolo.waitForAbort();

    upSolo.next({ hangAfterChunks: 1 });
    const res = await postCompletion(gw.url, key.key, { model: 'slow', messages: HELLO, stream: true });
    assert.equal(res.status, 200);
    const data = events(await res.text());
    assert.ok(!data.includes('[DONE]'), 'a stalled stream ended with [DONE]');
    assert.equal((JSON.parse(data.at(-1)!) as ErrorEnvelope).error.type, 'upstream_error');
    assert.equal(upSolo.requests.length, 2);
  });

  it('while every account is cooling down, requests queue and end as pool_exhausted until the cooldown ends', async () => {
    upSolo.next({ fail: { status: 429, retryAfter: 5 } });
    const first = await apiError(client.chat.completions.create({ model: 'cool', messages: HELLO }));
    assert.equal(first.status, 502);
    assert.equal(first.code, 'upstream_error');

    const res = await postCompletion(gw.url, key.key, { model: 'cool', messages: HELLO });
    assert.equal(res.status, 503);
    assert.equal(((await res.json()) as ErrorEnvelope).error.code, 'pool_exhausted');
    const retryAfter = Number(res.headers.get('retry-after'));
    assert.ok(retryAfter >= 2 && retryAfter <= 5, `Retry-After ${retryAfter}`);
    assert.equal(upSolo.requests.length, 1, 'a cooling account was used');
  });

  it('never retries once the stream has started: the client gets an error event and no [DONE]', async () => {
    const own = await gw.createKey({ name: 'cut', rate_limit_per_minute: 100_000 });
    for (const up of [upA, upB]) up.set({ text: 'one two three four five six', cutAfterChunks: 2 });
    const res = await postCompletion(gw.url, own.key, { model: 'cut', messages: HELLO, stream: true });
    assert.equal(res.status, 200);
    const data = events(await res.text());
    assert.ok(!data.includes('[DONE]'), 'the broken stream ended with [DONE]');
    const last = JSON.parse(data.at(-1)!) as ErrorEnvelope;
    assert.equal(last.error.type, 'upstream_error');
    assert.ok(last.error.code.length > 0 && last.error.message.length > 0);
    const content = data
      .slice(0, -1)
      .map((d) => (JSON.parse(d) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content ?? '')
      .join('');
    assert.equal(content, 'one two');
    assert.equal(upA.requests.length + upB.requests.length, 1, 'the stream was retried after its first byte');

    // The SDK surfaces the error event as an APIError mid-iteration.
    for (const up of [upA, upB]) up.set({ cutAfterChunks: undefined, streamError: { afterChunks: 1, message: 'overloaded mid-stream' } });
    let text = '';
    const failure = await apiError(
      (async () => {
        for await (const chunk of await client.chat.completions.create({ model: 'cut', messages: HELLO, stream: true })) {
          text += chunk.choices[0]?.delta.content ?? '';
        }
      })(),
    );
    assert.equal(failure.type, 'upstream_error');
    assert.equal(text, 'one');
    assert.equal(upA.requests.length + upB.requests.length, 2);

    const rows = await waitForUsageRows(own.id, 1);
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.status, 'error');
    assert.equal(rows[0]!.stream, true);
  });
});

describe('account pool under oversubscription', () => {
  let gw: TestGateway;
  let up: FakeUpstream;

  before(async () => {
    up = await startOpenAIUpstream({ delayMs: 100 });
    gw = await startTestGateway({
      config: {
        pool: { queue_timeout_ms: 10_000 },
        models: [{ id: 'pair' }],
        accounts: [{ id: 'pair-1', provider: 'openai', base_url: up.url, api_key: 'sk-pair-secret-0123456789', max_concurrency: 2 }],
      },
    });
  });
  after(async () => {
    await gw?.close();
    await up?.close();
  });

  it('never runs more upstream requests than max_concurrency, and serves every queued request', async () => {
    const own = await gw.createKey({ name: 'oversubscribed', rate_limit_per_minute: 100_000 });
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: own.key, maxRetries: 0, timeout: 10_000 });
    const answers = await Promise.all(
      Array.from({ length: 10 }, async (_, i) => {
        if (i % 2 === 0) return (await client.chat.completions.create({ model: 'pair', messages: HELLO })).choices[0]!.message.content;
        let text = '';
        for await (const chunk of await client.chat.completions.create({ model: 'pair', messages: HELLO, stream: true })) {
          text += chunk.choices[0]?.delta.content ?? '';
        }
        return text;
      }),
    );
    assert.equal(answers.length, 10);
    assert.ok(answers.every((a) => a === DEFAULT_REPLY));
    assert.equal(up.requests.length, 10);
    assert.equal(up.peakConcurrency, 2);

    const res = await gw.admin('/admin/accounts');
    const pool = ((await res.json()) as { data: AccountObject[] }).data[0]!;
    assert.equal(pool.busy_slots, 0);
    assert.equal(pool.available_slots, 2);
    const rows = await waitForUsageRows(own.id, 10);
    assert.equal(rows.length, 10);
    assert.ok(rows.every((r) => r.status === 'success' && !r.usage_estimated));
  });
});
