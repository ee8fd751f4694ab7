import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import OpenAI from 'openai';
import type { ChatCompletionFunctionTool, ChatCompletionMessageParam } from 'openai/resources/chat/completions';
import { DEFAULT_REPLY, FakeUpstream } from './support/fake-upstream';
import { apiError, postCompletion, sseData } from './support/http';
import { startOpenAIUpstream } from './support/openai-upstream';
import { ErrorEnvelope, TestGateway, startTestGateway } from './support/test-gateway';
import { waitForUsageRows } from './support/usage-rows';

const UPSTREAM_KEY = 'sk-upstream-completions-0123456789';
const HELLO: ChatCompletionMessageParam[] = [{ role: 'user', content: 'Say hello to the gateway' }];
const WEATHER: ChatCompletionFunctionTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather for a city',
    parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city'] },
  },
};

type Json = Record<string, unknown>;

/** A raw POST, read whole. */
async function post(url: string, key: string, body: unknown): Promise<{ status: number; headers: Headers; text: string }> {
  const res = await postCompletion(url, key, body);
  return { status: res.status, headers: res.headers, text: await res.text() };
}

describe('chat completions', () => {
  let gw: TestGateway;
  let up: FakeUpstream;
  let client: OpenAI;
  let key: string;

  const sdk = (secret: string) => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: secret, maxRetries: 0, timeout: 10_000 });
  const received = (i = 0) => up.requests[i]!.body as Json;

  before(async () => {
    up = await startOpenAIUpstream({ apiKey: UPSTREAM_KEY });
    gw = await startTestGateway({
      config: {
        models: [
          { id: 'gpt-x', upstream_model: 'upstream-gpt', credits: { per_1k_prompt_tokens: 1, per_1k_completion_tokens: 2 } },
          { id: 'other' },
          { id: 'pricey', credits: { per_request: 1 } },
          { id: 'kiro' },
        ],
        accounts: [
          { id: 'oa-1', provider: 'openai', base_url: up.url, api_key: UPSTREAM_KEY, max_concurrency: 4, models: ['gpt-x', 'other', 'pricey'] },
          { id: 'mock-1', provider: 'mock', max_concurrency: 3, models: ['kiro'] },
        ],
      },
    });
    key = (await gw.createKey({ name: 'completions', rate_limit_per_minute: 100_000 })).key;
    client = sdk(key);
  });
  beforeEach(() => up.reset());
  after(async () => {
    await gw?.close();
    await up?.close();
  });

  it('answers a text completion under the requested model id, sending upstream_model upstream', async () => {
    const completion = await client.chat.completions.create({ model: 'gpt-x', messages: HELLO });
    assert.equal(completion.object, 'chat.completion');
    assert.equal(completion.model, 'gpt-x');
    assert.equal(completion.choices[0]!.message.content, DEFAULT_REPLY);
    assert.equal(completion.choices[0]!.finish_reason, 'stop');
    assert.deepEqual(completion.usage, up.requests[0]!.reply!.usage);

    assert.equal(up.requests.length, 1);
    assert.equal(received().model, 'upstream-gpt');
    assert.equal(received().stream, undefined);
    assert.equal(up.requests[0]!.path, '/v1/chat/completions');
    assert.equal(up.requests[0]!.headers.authorization, `Bearer ${UPSTREAM_KEY}`);
  });

  it('streams a text completion chunk by chunk under the requested model id', async () => {
    up.set({ text: 'one two three four', chunks: 4 });
    const stream = await client.chat.completions.create({ model: 'gpt-x', messages: HELLO, stream: true });
    let text = '';
    let chunks = 0;
    let finish: string | null = null;
    for await (const chunk of stream) {
      chunks++;
      assert.equal(chunk.object, 'chat.completion.chunk');
      assert.equal(chunk.model, 'gpt-x');
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(text, 'one two three four');
    assert.equal(finish, 'stop');
    assert.ok(chunks >= 5, `only ${chunks} chunks: the stream was not relayed chunk by chunk`);

    assert.equal(up.requests.length, 1);
    assert.equal(received().model, 'upstream-gpt');
    assert.equal(received().stream, true);
  });

  it('relays a tool call and takes the tool result on the next turn', async () => {
    const completion = await client.chat.completions.create({ model: 'gpt-x', messages: HELLO, tools: [WEATHER], tool_choice: 'auto' });
    const choice = completion.choices[0]!;
    assert.equal(choice.finish_reason, 'tool_calls');
    assert.equal(choice.message.content, null);
    const call = choice.message.tool_calls![0]!;
    assert.ok(call.type === 'function');
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Paris', days: 42 });
    assert.equal(call.id, up.requests[0]!.reply!.toolCall!.id);
    assert.deepEqual(received().tools, [WEATHER]);
    assert.equal(received().tool_choice, 'auto');

    const answer = await client.chat.completions.create({
      model: 'gpt-x',
      messages: [...HELLO, choice.message, { role: 'tool', tool_call_id: call.id, content: 'sunny, 21 C' }],
      tools: [WEATHER],
    });
    assert.equal(answer.choices[0]!.message.content, 'Tool result: sunny, 21 C');
    assert.equal(up.requests[1]!.status, 200);
  });

  it('streams a tool call whose name and arguments the SDK reassembles', async () => {
    up.set({ toolArguments: { city: 'Reykjavik', days: 3, note: 'a fairly long argument split over many chunks' } });
    const runner = client.chat.completions.stream({ model: 'gpt-x', messages: HELLO, tools: [WEATHER] });
    let argumentDeltas = 0;
    runner.on('tool_calls.function.arguments.delta', () => argumentDeltas++);
    const final = await runner.finalChatCompletion();
    assert.equal(final.model, 'gpt-x');
    assert.equal(final.choices[0]!.finish_reason, 'tool_calls');
    const call = final.choices[0]!.message.tool_calls![0]!;
    assert.ok(call.type === 'function');
    assert.equal(call.id, up.requests[0]!.reply!.toolCall!.id);
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), { city: 'Reykjavik', days: 3, note: 'a fairly long argument split over many chunks' });
    assert.ok(argumentDeltas > 1, 'the arguments came in one piece');
    assert.equal(received().stream, true);
  });

  it('with stream_options.include_usage the last chunk before [DONE] carries usage and no choices', async () => {
    const res = await post(gw.url, key, { model: 'gpt-x', messages: HELLO, stream: true, stream_options: { include_usage: true } });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    assert.ok(res.headers.get('x-request-id'), 'no X-Request-Id on a stream');
    assert.equal(res.headers.get('x-ratelimit-limit'), '100000');
    const data = sseData(res.text);
    assert.equal(data.at(-1), '[DONE]');
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d) as Json & { choices: unknown[] });
    const last = chunks.at(-1)!;
    assert.deepEqual(last.choices, []);
    assert.deepEqual(last.usage, up.requests[0]!.reply!.usage);
    assert.ok(chunks.slice(0, -1).every((c) => c.choices.length > 0 && !c.usage), 'usage before the last chunk');
    assert.ok(chunks.every((c) => c.model === 'gpt-x'));
  });

  it('without include_usage the client never sees usage, though the upstream was asked for it', async () => {
    const body = { model: 'gpt-x', messages: HELLO, stream: true, seed: 3, x_custom: { a: [1] } };
    const res = await post(gw.url, key, body);
    assert.equal(res.status, 200);
    const data = sseData(res.text);
    assert.equal(data.at(-1), '[DONE]');
    assert.ok(data.length > 2);
    for (const d of data.slice(0, -1)) {
      const chunk = JSON.parse(d) as Json & { choices: unknown[] };
      assert.ok(!('usage' in chunk), `usage shown: ${d}`);
      assert.ok(chunk.choices.length > 0, `a usage-only chunk shown: ${d}`);
    }
    assert.ok(up.requests[0]!.reply!.usage, 'the upstream sent no usage');
    assert.deepEqual(received(), { ...body, model: 'upstream-gpt', stream_options: { include_usage: true } });
  });

  it('forwards unknown and known fields unchanged, only model rewritten', async () => {
    const request = {
      model: 'gpt-x',
      messages: [
        { role: 'developer', content: 'Be brief.' },
        { role: 'user', content: [{ type: 'text', text: 'Hi ☃ \u{1F600}' }] },
      ],
      metadata: { team: 'search', ticket: '42' },
      seed: 7,
      temperature: 0.2,
      top_p: 0.9,
      max_completion_tokens: 50,
      stop: ['\n\n'],
      user: 'user-1',
      logit_bias: { '50256': -100 },
      response_format: { type: 'text' },
      x_custom: { a: [1] },
    };
    const completion = await client.chat.completions.create(request as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming);
    assert.equal(completion.model, 'gpt-x');
    assert.deepEqual(received(), { ...request, model: 'upstream-gpt' });
  });

  it('refuses a model outside the key allow-list (403), an unknown model (404), and hides it from /v1/models', async () => {
    const restricted = await gw.createKey({ name: 'restricted', models: ['gpt-x'] });
    const limited = sdk(restricted.key);

    const forbidden = await apiError(limited.chat.completions.create({ model: 'other', messages: HELLO }));
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.code, 'model_not_allowed');
    assert.equal(forbidden.type, 'permission_error');

    const unknown = await apiError(limited.chat.completions.create({ model: 'no-such-model', messages: HELLO }));
    assert.equal(unknown.status, 404);
    assert.equal(unknown.code, 'model_not_found');

    const hidden = await apiError(limited.models.retrieve('other'));
    assert.equal(hidden.status, 404);
    assert.equal(hidden.code, 'model_not_found');
    assert.equal((await limited.models.retrieve('gpt-x')).id, 'gpt-x');
    const listed = [];
    for await (const model of limited.models.list()) listed.push(model.id);
    assert.deepEqual(listed, ['gpt-x']);
    assert.equal(up.requests.length, 0);

    // Refused requests leave no usage: the one admitted request after them is the only row.
    assert.equal((await limited.chat.completions.create({ model: 'gpt-x', messages: HELLO })).model, 'gpt-x');
    const rows = await waitForUsageRows(restricted.id, 1);
    assert.deepEqual(rows.map((r) => r.model), ['gpt-x']);
  });

  it('refuses with 429 insufficient_quota once the key has used its credit limit', async () => {
    const capped = await gw.createKey({ name: 'capped', credit_limit: 2, rate_limit_per_minute: 100_000 });
    const spender = sdk(capped.key);
    for (let i = 0; i < 2; i++) await spender.chat.completions.create({ model: 'pricey', messages: HELLO });

    const refused = await apiError(spender.chat.completions.create({ model: 'pricey', messages: HELLO }));
    assert.equal(refused.status, 429);
    assert.equal(refused.code, 'insufficient_quota');
    const raw = await post(gw.url, capped.key, { model: 'gpt-x', messages: HELLO });
    assert.equal(raw.status, 429);
    assert.equal((JSON.parse(raw.text) as ErrorEnvelope).error.code, 'insufficient_quota');
    assert.ok(Number(raw.headers.get('retry-after')) >= 1, 'no Retry-After');
    assert.equal(up.requests.length, 2);

    const rows = await waitForUsageRows(capped.id, 2);
    assert.deepEqual(rows.map((r) => r.credits), [1, 1]);
    const shown = (await (await gw.admin(`/admin/keys/${capped.id}`)).json()) as { credits_used: number };
    assert.equal(shown.credits_used, 2);
  });

  it('answers invalid fields with 400 invalid_value naming the param, before any upstream call', async () => {
    const cases: [Json, string][] = [
      [{ messages: [] }, 'messages'],
      [{ messages: [{ role: 'robot', content: 'hi' }] }, 'messages[0].role'],
      [{ temperature: 3 }, 'temperature'],
      [{ max_tokens: '10' }, 'max_tokens'],
      [{ messages: [...HELLO, { role: 'user', content: 5 }] }, 'messages[1].content'],
      [{ stream_options: { include_usage: true } }, 'stream_options'],
      [{ tools: [{ type: 'function', function: { name: '' } }] }, 'tools[0].function.name'],
    ];
    for (const [fields, param] of cases) {
      const request = { model: 'gpt-x', messages: HELLO, ...fields } as unknown as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming;
      const err = await apiError(client.chat.completions.create(request));
      assert.equal(err.status, 400, param);
      assert.equal(err.code, 'invalid_value', param);
      assert.equal(err.type, 'invalid_request_error', param);
      assert.equal(err.param, param);
    }
    const raw = await post(gw.url, key, { model: 'gpt-x', messages: HELLO, max_tokens: '10' });
    const envelope = JSON.parse(raw.text) as ErrorEnvelope;
    assert.equal(raw.status, 400);
    assert.deepEqual(Object.keys(envelope.error).sort(), ['code', 'message', 'param', 'type']);
    assert.ok(envelope.error.message.length > 0);
    assert.equal(up.requests.length, 0);
  });

  it('refuses null content on an assistant message without tool_calls', async () => {
    const messages = [...HELLO, { role: 'assistant', content: null }, { role: 'user', content: 'and?' }];
    const err = await apiError(client.chat.completions.create({ model: 'gpt-x', messages } as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming));
    assert.equal(err.status, 400);
    assert.equal(err.code, 'invalid_value');
    assert.equal(err.param, 'messages[1].content');
    assert.equal(up.requests.length, 0);
  });

  it("passes an upstream's client errors through with their status and message", async () => {
    const message = "Invalid 'logit_bias': token ids must be in the vocabulary.";
    up.next({ fail: { status: 400, message } });
    const bad = await apiError(client.chat.completions.create({ model: 'gpt-x', messages: HELLO }));
    assert.equal(bad.status, 400);
    assert.equal((bad.error as { message: string }).message, message);

    up.next({ fail: { status: 422, message: 'Unprocessable: image too small.' } });
    const streamed = await apiError(client.chat.completions.create({ model: 'gpt-x', messages: HELLO, stream: true }));
    assert.equal(streamed.status, 422);
    assert.equal((streamed.error as { message: string }).message, 'Unprocessable: image too small.');
    assert.equal(up.requests.length, 2, "a client error was retried");
  });

  it('answers through a mock-provider account, plain and streamed', async () => {
    const completion = await client.chat.completions.create({ model: 'kiro', messages: HELLO });
    assert.equal(completion.model, 'kiro');
    const content = completion.choices[0]!.message.content!;
    assert.ok(content.length > 0);
    assert.ok(completion.usage!.prompt_tokens > 0 && completion.usage!.completion_tokens > 0);

    const stream = await client.chat.completions.create({ model: 'kiro', messages: HELLO, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      assert.equal(chunk.model, 'kiro');
      text += chunk.choices[0]?.delta.content ?? '';
      usage = chunk.usage ?? usage;
    }
    assert.equal(text, content);
    assert.deepEqual(usage, completion.usage);
    assert.equal(up.requests.length, 0);
  });

  it("records one usage row per admitted request with the upstream's token counts, stream or not", async () => {
    const metered = await gw.createKey({ name: 'metered', rate_limit_per_minute: 100_000 });
    const meteredClient = sdk(metered.key);
    await meteredClient.chat.completions.create({ model: 'gpt-x', messages: HELLO });
    for await (const chunk of await meteredClient.chat.completions.create({ model: 'gpt-x', messages: HELLO, stream: true })) void chunk;
    const withUsage = await meteredClient.chat.completions.create({
      model: 'gpt-x',
      messages: [{ role: 'user', content: 'a longer prompt than the others, so the counts differ' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    for await (const chunk of withUsage) void chunk;
    await apiError(meteredClient.chat.completions.create({ model: 'gpt-x', messages: [] }));

    const rows = await waitForUsageRows(metered.id, 3);
    assert.equal(rows.length, 3);
    assert.deepEqual(rows.map((r) => r.stream), [false, true, true]);
    rows.forEach((row, i) => {
      const usage = up.requests[i]!.reply!.usage as { prompt_tokens: number; completion_tokens: number; total_tokens: number };
      assert.equal(row.prompt_tokens, usage.prompt_tokens, `row ${i}`);
      assert.equal(row.completion_tokens, usage.completion_tokens, `row ${i}`);
      assert.equal(row.total_tokens, usage.total_tokens, `row ${i}`);
      assert.equal(row.usage_estimated, false, `row ${i}`);
      assert.equal(row.status, 'success');
      assert.equal(row.http_status, 200);
      assert.equal(row.model, 'gpt-x');
      assert.equal(row.account_id, 'oa-1');
      assert.equal(row.error_code, null);
      assert.equal(row.credits, Math.round(usage.prompt_tokens * 1000 + usage.completion_tokens * 2000) / 1e6);
    });
  });

  it('still ends an include_usage stream with a usage chunk when the upstream reports none', async () => {
    up.set({ omitUsage: true });
    const res = await post(gw.url, key, { model: 'gpt-x', messages: HELLO, stream: true, stream_options: { include_usage: true } });
    const data = sseData(res.text);
    assert.equal(data.at(-1), '[DONE]');
    const last = JSON.parse(data.at(-2)!) as { choices: unknown[]; usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number } };
    assert.deepEqual(last.choices, []);
    assert.ok(last.usage && last.usage.prompt_tokens > 0 && last.usage.completion_tokens > 0, JSON.stringify(last));
    assert.equal(last.usage.total_tokens, last.usage.prompt_tokens + last.usage.completion_tokens);
  });

  it('estimates usage with the tokenizer, flagged, when the upstream reports none', async () => {
    const estimated = await gw.createKey({ name: 'estimated', rate_limit_per_minute: 100_000 });
    const estimatedClient = sdk(estimated.key);
    up.set({ omitUsage: true });
    const completion = await estimatedClient.chat.completions.create({ model: 'gpt-x', messages: HELLO });
    assert.equal(completion.usage, undefined);
    for await (const chunk of await estimatedClient.chat.completions.create({ model: 'gpt-x', messages: HELLO, stream: true })) void chunk;
    assert.ok(up.requests.every((r) => r.reply!.usage === undefined));

    const rows = await waitForUsageRows(estimated.id, 2);
    assert.equal(rows.length, 2);
    for (const row of rows) {
      assert.equal(row.usage_estimated, true);
      assert.equal(row.status, 'success');
      assert.ok(row.prompt_tokens > 0, 'no prompt estimate');
      assert.ok(row.completion_tokens > 0, 'no completion estimate');
      assert.equal(row.total_tokens, row.prompt_tokens + row.completion_tokens);
    }
  });
});
